use cache_runtime::cached;

#[cached(key = "t:{self.tenant}:{id}")]
async fn get(id: u64) -> u64 {
    id
}

fn main() {
    let _ = get(1);
}
