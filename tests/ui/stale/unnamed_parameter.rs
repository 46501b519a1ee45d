use cache_runtime::cached;

#[cached(ttl = 60, stale = "1h", key = "n:{id}")]
async fn get(id: u64, _: bool) -> u64 {
    id
}

fn main() {
    let _ = get(1, true);
}
