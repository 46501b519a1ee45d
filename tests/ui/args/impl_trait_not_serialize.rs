use cache_runtime::cached;

#[cached(ttl = 60)]
async fn describe(value: impl std::fmt::Display) -> String {
    value.to_string()
}

fn main() {
    let _ = describe(1);
}
