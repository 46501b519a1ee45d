use cache_runtime::cached;

#[cached(ttl = 60, l1 = false, l1_ttl = "5s")]
async fn get(id: u64) -> u64 {
    id
}

fn main() {
    let _ = get(1);
}
