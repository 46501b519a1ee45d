// A mistake in the attribute is one error: the `_uncached` and `_invalidate`
// companions are still emitted (as stand-ins), so their callers compile.
use cache_runtime::cached;

#[cached(ttl = "10 minutes")]
async fn product(id: u64) -> u64 {
    id
}

struct Shop;

impl Shop {
    #[cached(key = "price:{idd}")]
    async fn price(&self, id: u64) -> u64 {
        id * 100
    }
}

async fn callers() -> u64 {
    let fresh = product_uncached(1).await;
    let removed: bool = product_invalidate(1).await.unwrap_or_default();
    let price = Shop.price_uncached(2).await;
    let _ = Shop.price_invalidate(2).await;
    fresh + price + u64::from(removed) + product(1).await
}

fn main() {
    let _ = callers();
}
