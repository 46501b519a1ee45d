use cache_runtime::cache_put;

struct Db;

#[cache_put(key = "product:{id}", skip(db))]
async fn save(db: &Db, id: u64) -> u64 {
    let _ = db;
    id
}

fn main() {
    let _ = save(&Db, 1);
}
