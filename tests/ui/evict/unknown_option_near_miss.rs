use cache_runtime::cache_evict;

#[cache_evict(keyz = ["product:{id}"])]
async fn delete(id: u64) -> Result<(), String> {
    let _ = id;
    Ok(())
}

fn main() {
    let _ = delete(1);
}
