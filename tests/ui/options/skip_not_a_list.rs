use cache_runtime::cached;

#[cached(skip = db)]
async fn get(db: &str, id: u64) -> u64 {
    let _ = db;
    id
}

fn main() {
    let _ = get("", 1);
}
