use cache_runtime::cached;

#[cached(cache_none)]
async fn get(id: u64) -> Result<u64, String> {
    Ok(id)
}

fn main() {
    let _ = get(1);
}
