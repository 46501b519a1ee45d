use cache_runtime::cache_put;

#[cache_put(key = "n:{id}", l1)]
async fn get(id: u64) -> u64 {
    id
}

fn main() {
    let _ = get(1);
}
