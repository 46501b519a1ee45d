use cache_runtime::cached;

#[cached(ttl = "99999999999999999999s")]
async fn get(id: u64) -> u64 {
    id
}

fn main() {
    let _ = get(1);
}
