use cache_runtime::cached;

#[derive(Clone)]
struct Counter(u64);

impl Counter {
    #[cached(ttl = 60, early_refresh, key = "n:{id}")]
    async fn get(&mut self, id: u64) -> u64 {
        self.0 += 1;
        id
    }
}

fn main() {
    let mut c = Counter(0);
    let _ = c.get(1);
}
