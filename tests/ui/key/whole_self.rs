use cache_runtime::cached;

struct Repo {
    tenant: String,
}

impl Repo {
    #[cached(key = "t:{self}:{id}")]
    async fn get(&self, id: u64) -> u64 {
        let _ = &self.tenant;
        id
    }
}

fn main() {
    let repo = Repo {
        tenant: String::new(),
    };
    let _ = repo.get(1);
}
