use cache_runtime::cache_evict;

#[cache_evict(key = "user:{id}", none_ttl = "30s")]
async fn delete(id: u64) -> Option<()> {
    let _ = id;
    Some(())
}

fn main() {
    let _ = delete(1);
}
