use cache_runtime::cache_evict;

#[cache_evict(before)]
async fn delete(id: u64) -> Result<(), String> {
    let _ = id;
    Ok(())
}

fn main() {
    let _ = delete(1);
}
