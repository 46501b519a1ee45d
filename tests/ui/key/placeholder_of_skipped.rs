use cache_runtime::cached;

#[cached(key = "product:{id}", skip(id))]
async fn get(id: u64) -> u64 {
    id
}

fn main() {
    let _ = get(1);
}
