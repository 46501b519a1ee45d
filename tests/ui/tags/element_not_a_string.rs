use cache_runtime::cached;

const PRODUCTS: &str = "products";

#[cached(key = "product:{id}", tags = [PRODUCTS, "all"])]
async fn product(id: u64) -> String {
    format!("{id}")
}

fn main() {
    let _ = product(1);
}
