use cache_runtime::cached;

#[cached(ttl = "long", none_ttl = "short")]
async fn find(id: u64) -> Option<u64> {
    Some(id)
}

fn main() {
    let _ = find(1);
}
