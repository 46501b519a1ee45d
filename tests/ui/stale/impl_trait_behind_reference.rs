use cache_runtime::cached;

#[cached(ttl = 60, stale = "1h", key = "n:{id}")]
async fn get(id: u64, label: &impl std::fmt::Display) -> String {
    format!("{id} {label}")
}

fn main() {
    let _ = get(1, &"x");
}
