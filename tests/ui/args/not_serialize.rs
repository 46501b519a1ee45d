use cache_runtime::cached;

struct Db;

#[cached(ttl = 60)]
async fn get(db: &Db, id: u64) -> u64 {
    let _ = db;
    id
}

fn main() {
    let _ = get(&Db, 1);
}
