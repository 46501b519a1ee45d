use cache_runtime::cache_put;

#[cache_put(ttl = 60)]
async fn save(id: u64) -> u64 {
    id
}

fn main() {
    let _ = save(1);
}
