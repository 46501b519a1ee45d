use cache_runtime::cached;

trait Repo {
    #[cached(ttl = 60)]
    async fn get(&self, id: u64) -> u64;
}

fn main() {}
