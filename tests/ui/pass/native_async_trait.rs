// `#[cached]` on native `async fn` in traits (Rust 1.75+): a default method
// in the trait, and a method in an impl; the way to cache trait methods
// instead of `#[async_trait]` (see `signature/async_trait.rs`). The impl's
// method has `no_companions`: an impl may define only the trait's methods.
#![allow(async_fn_in_trait)]

use cache_runtime::{cached, Cache};

trait Catalog {
    fn tenant(&self) -> &str;

    #[cached(ttl = 60, key = "title:{id}")]
    async fn title(&self, id: u64) -> String {
        format!("{}:{id}", self.tenant())
    }

    async fn price(&self, id: u64) -> Option<u64>;
}

struct Shop {
    cache: Cache,
    tenant: String,
}

impl Catalog for Shop {
    fn tenant(&self) -> &str {
        &self.tenant
    }

    #[cached(cache = self.cache, key = "price:{self.tenant}:{id}", cache_none, no_companions)]
    async fn price(&self, id: u64) -> Option<u64> {
        id.checked_mul(100)
    }
}

// A generic caller: the trait's futures are used through the trait.
async fn both<C: Catalog>(c: &C) -> (String, Option<u64>) {
    (c.title(1).await, c.price(1).await)
}

fn main() {
    let shop = Shop {
        cache: Cache::builder().memory().build().unwrap(),
        tenant: "acme".into(),
    };
    let _ = both(&shop);
}
