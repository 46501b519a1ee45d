use async_trait::async_trait;
use cache_runtime::cached;

#[async_trait]
trait Repo {
    async fn get(&self, id: u64) -> u64;
}

struct Db;

#[async_trait]
impl Repo for Db {
    #[cached(ttl = 60, skip(self))]
    async fn get(&self, id: u64) -> u64 {
        id
    }
}

fn main() {
    let _ = Db.get(1);
}
