use cache_runtime::cached;

#[cached(ttl = "1h", none_ttl = "30s")]
async fn get(id: u64) -> Result<u64, String> {
    Ok(id)
}

fn main() {
    let _ = get(1);
}
