// Without `no_companions`, the `_uncached` and `_invalidate` companions of a
// method in a trait impl are methods the trait does not declare.
#![allow(async_fn_in_trait)]

use cache_runtime::{cached, Cache};

trait Catalog {
    async fn price(&self, id: u64) -> u64;
}

struct Shop {
    cache: Cache,
}

impl Catalog for Shop {
    #[cached(cache = self.cache, key = "price:{id}")]
    async fn price(&self, id: u64) -> u64 {
        id * 100
    }
}

fn main() {}
