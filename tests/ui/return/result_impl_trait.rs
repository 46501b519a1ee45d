use cache_runtime::cached;

#[cached(ttl = 60)]
async fn get(id: u64) -> Result<impl std::fmt::Display, String> {
    Ok(id)
}

fn main() {
    let _ = get(1);
}
