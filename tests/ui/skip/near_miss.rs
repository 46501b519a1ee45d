use cache_runtime::cached;

#[cached(skip(pol))]
async fn get(pool: &str, id: u64) -> u64 {
    let _ = pool;
    id
}

fn main() {
    let _ = get("", 1);
}
