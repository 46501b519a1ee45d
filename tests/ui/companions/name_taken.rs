// A function already named like a companion.
use cache_runtime::cached;

#[cached(key = "product:{id}")]
async fn product(id: u64) -> String {
    format!("{id}")
}

async fn product_uncached(id: u64) -> String {
    format!("{id}")
}

fn main() {
    let _ = product(1);
    let _ = product_uncached(1);
}
