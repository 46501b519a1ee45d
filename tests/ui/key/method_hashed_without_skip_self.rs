// A hashed key never includes `self`: two instances (two tenants) would share
// the method's entries. The method must say `skip(self)`, or name what it
// depends on in a template.
use cache_runtime::{cached, Cache};

struct Catalog {
    cache: Cache,
    tenant: String,
}

impl Catalog {
    #[cached(ttl = 60, cache = self.cache)]
    async fn count(&self, category: &str) -> usize {
        self.tenant.len() + category.len()
    }
}

async fn callers(catalog: &Catalog) -> usize {
    let _ = catalog.count_invalidate("lamps").await;
    catalog.count("lamps").await + catalog.count_uncached("desks").await
}

fn main() {
    let catalog = Catalog {
        cache: Cache::builder().build().unwrap(),
        tenant: "acme".into(),
    };
    let _ = callers(&catalog);
}
