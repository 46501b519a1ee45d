// `skip(self)` on a method with a hashed key: the result does not depend on
// the instance, and every receiver form accepts it.
use cache_runtime::{cached, Cache};
use std::sync::Arc;

struct Catalog {
    cache: Cache,
}

impl Catalog {
    #[cached(ttl = 60, cache = self.cache, skip(self))]
    async fn count(&self, category: &str) -> usize {
        category.len()
    }

    #[cached(skip(self, page))]
    async fn search(&mut self, query: String, page: u32) -> Vec<String> {
        vec![format!("{query}:{page}")]
    }

    #[cached(skip(self))]
    async fn shared(self: Arc<Self>, id: u64) -> u64 {
        id
    }

    #[cached(skip(self))]
    async fn consumed(self, id: u64) -> u64 {
        id
    }
}

async fn callers(mut catalog: Catalog) -> usize {
    let n = catalog.count("lamps").await + catalog.count_uncached("desks").await;
    let _ = catalog.count_invalidate("lamps").await;
    let _ = catalog.search("lamp".into(), 1).await;
    let _ = catalog.search_invalidate("lamp".into(), 1).await;
    let catalog = Arc::new(catalog);
    let _ = catalog.clone().shared(1).await;
    n
}

fn main() {
    let catalog = Catalog {
        cache: Cache::builder().build().unwrap(),
    };
    let _ = callers(catalog);
    let _ = Catalog::consumed;
}
