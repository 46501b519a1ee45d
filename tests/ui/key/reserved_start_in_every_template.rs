// Tags, eviction keys and patterns are templates too: none may start with `__`.
use cache_runtime::{cache_evict, cache_put};

#[cache_put(key = "product:{id}", tags = ["__wb:{id}"])]
async fn save(id: u64) -> u64 {
    id
}

#[cache_evict(keys = ["product:{id}", "__x:{id}"], pattern = "__*")]
async fn delete(id: u64) -> Result<(), String> {
    let _ = id;
    Ok(())
}

fn main() {
    let _ = save(1);
    let _ = delete(1);
}
