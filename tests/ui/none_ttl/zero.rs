use cache_runtime::cached;

#[cached(ttl = "1h", none_ttl = "0s")]
async fn find(id: u64) -> Option<u64> {
    Some(id)
}

fn main() {
    let _ = find(1);
}
