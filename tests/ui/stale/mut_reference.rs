use cache_runtime::cached;

#[cached(ttl = 60, stale = "1h", key = "n:{id}")]
async fn get(id: u64, seen: &mut Vec<u64>) -> u64 {
    seen.push(id);
    id
}

fn main() {
    let mut seen = Vec::new();
    let _ = get(1, &mut seen);
}
