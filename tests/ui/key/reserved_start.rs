// The runtime keeps its own keys under `{prefix}:__tag:`, `{prefix}:__wb:`, ...:
// no template may start there.
use cache_runtime::cached;

#[cached(ttl = 60, key = "__tag:{id}")]
async fn product(id: u64) -> u64 {
    id
}

fn main() {
    let _ = product(1);
}
