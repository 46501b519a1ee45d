use cache_runtime::cached;

struct Region;

#[cached(key = "r:{region}")]
async fn get(region: Region) -> u64 {
    let _ = region;
    1
}

fn main() {
    let _ = get(Region);
}
