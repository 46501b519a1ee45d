use cache_runtime::cache_put;

#[derive(serde::Serialize, serde::Deserialize)]
struct Product {
    id: u64,
}

#[cache_put(key = "product:{prodcut.id}")]
async fn save(product: Product) -> Product {
    product
}

fn main() {
    let _ = save(Product { id: 1 });
}
