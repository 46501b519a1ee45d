use cache_runtime::cached;

#[cached(ttl = 60)]
async fn get((a, b): (u32, u32)) -> u32 {
    a + b
}

fn main() {
    let _ = get((1, 2));
}
