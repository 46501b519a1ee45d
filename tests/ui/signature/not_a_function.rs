use cache_runtime::cached;

#[cached(ttl = 60)]
struct Product {
    id: u64,
}

fn main() {
    let _ = Product { id: 1 }.id;
}
