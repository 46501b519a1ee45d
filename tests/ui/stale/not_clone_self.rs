use cache_runtime::cached;

// The refresh clones `self`: a type that is not `Clone` is an error.
struct Repo;

impl Repo {
    #[cached(ttl = 60, stale = "1h", key = "n:{id}")]
    async fn get(&self, id: u64) -> u64 {
        id
    }
}

fn main() {
    let _ = Repo.get(1);
}
