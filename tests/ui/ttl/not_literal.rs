use cache_runtime::cached;

const TTL: u64 = 60;

#[cached(ttl = TTL)]
async fn get(id: u64) -> u64 {
    id
}

fn main() {
    let _ = get(1);
}
