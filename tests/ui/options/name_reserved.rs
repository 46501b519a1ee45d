use cache_runtime::cached;

// Hashed keys are `{prefix}:{name}:{hash}`: this one would be `{prefix}:__tag:...`.
#[cached(name = "__tag")]
async fn get(id: u64) -> u64 {
    id
}

#[cached(name = "___")]
async fn other(id: u64) -> u64 {
    id
}

fn main() {
    let _ = get(1);
    let _ = other(1);
}
