use cache_runtime::cached;

#[cached(cache_none = true)]
async fn get(id: u64) -> Option<u64> {
    Some(id)
}

fn main() {
    let _ = get(1);
}
