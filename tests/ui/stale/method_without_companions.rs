use cache_runtime::cached;

#[derive(Clone)]
struct Repo;

impl Repo {
    #[cached(ttl = 60, stale = "1h", key = "n:{id}", no_companions)]
    async fn get(&self, id: u64) -> u64 {
        id
    }
}

fn main() {
    let _ = Repo.get(1);
}
