use cache_runtime::cached;

#[cached(l1 = "no")]
async fn get(id: u64) -> u64 {
    id
}

fn main() {
    let _ = get(1);
}
