use cache_runtime::cached;

#[cached(ttl = "10m", none_ttl = "1h")]
async fn find(id: u64) -> Option<u64> {
    Some(id)
}

fn main() {
    let _ = find(1);
}
