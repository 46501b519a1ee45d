use cache_runtime::cached;

#[cached(ttl = "10m", l1_ttl = "1h")]
async fn get(id: u64) -> u64 {
    id
}

fn main() {
    let _ = get(1);
}
