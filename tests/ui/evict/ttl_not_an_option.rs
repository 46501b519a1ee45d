use cache_runtime::cache_evict;

#[cache_evict(key = "product:{id}", ttl = 60)]
async fn delete(id: u64) -> Result<(), String> {
    let _ = id;
    Ok(())
}

fn main() {
    let _ = delete(1);
}
