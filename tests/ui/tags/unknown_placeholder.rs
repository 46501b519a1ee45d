use cache_runtime::cached;

#[cached(key = "product:{id}", tags = ["products", "category:{cat}"])]
async fn product(id: u64, category: &str) -> String {
    format!("{category}:{id}")
}

fn main() {
    let _ = product(1, "lamps");
}
