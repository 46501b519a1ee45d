use cache_runtime::cached;

#[cached(key = "product:{id}", tags = "products")]
async fn product(id: u64) -> String {
    format!("{id}")
}

fn main() {
    let _ = product(1);
}
