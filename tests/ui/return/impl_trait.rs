use cache_runtime::cached;

#[cached(ttl = 60)]
async fn get(id: u64) -> impl std::fmt::Display {
    id
}

fn main() {
    let _ = get(1);
}
