// `l1` and `l1_ttl` in their forms, on `#[cached]` and `#[cache_put]`.
use cache_runtime::{cache_put, cached, Cache};

#[cached(l1 = false)]
async fn uncopied(id: u64) -> u64 {
    id
}

#[cached(ttl = 60, l1 = true)]
async fn copied(id: u64) -> u64 {
    id
}

#[cached(ttl = "10m", l1_ttl = "5s", key = "price:{id}")]
async fn price(id: u64) -> u64 {
    id
}

// A preset `ttl` is known at run time only: any `l1_ttl` is accepted.
#[cached(ttl = "short", l1_ttl = "1h30m")]
async fn short(id: u64) -> u64 {
    id
}

#[cached(ttl = 5, l1_ttl = 5, l1 = true)]
async fn equal(id: u64) -> u64 {
    id
}

#[cache_put(key = "price:{id}", ttl = "10m", l1_ttl = 5)]
async fn set_price(id: u64) -> u64 {
    id
}

#[cache_put(key = "n:{id}", l1 = false)]
async fn set_uncopied(id: u64) -> u64 {
    id
}

struct Service {
    cache: Cache,
}

impl Service {
    #[cached(cache = self.cache, key = "s:{id}", l1 = false)]
    async fn get(&self, id: u64) -> u64 {
        id
    }
}

async fn call(s: &Service) -> u64 {
    s.get(1).await
}

fn main() {
    let _ = (uncopied(1), copied(1), price(1), short(1), equal(1));
    let _ = (price_uncached(1), price_invalidate(1));
    let _ = (set_price(1), set_uncopied(1));
    let _ = call;
}
