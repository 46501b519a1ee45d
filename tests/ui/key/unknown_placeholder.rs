use cache_runtime::cached;

#[cached(key = "product:{idd}")]
async fn get(id: u64, region: String) -> u64 {
    let _ = region;
    id
}

fn main() {
    let _ = get(1, String::new());
}
