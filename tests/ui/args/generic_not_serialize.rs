use cache_runtime::cached;

#[cached(ttl = 60)]
async fn describe<T: std::fmt::Display>(value: T) -> String {
    value.to_string()
}

fn main() {
    let _ = describe(1);
}
