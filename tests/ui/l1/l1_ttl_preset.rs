use cache_runtime::cached;

#[cached(ttl = "long", l1_ttl = "short")]
async fn get(id: u64) -> u64 {
    id
}

fn main() {
    let _ = get(1);
}
