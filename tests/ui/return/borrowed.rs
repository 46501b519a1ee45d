use cache_runtime::cached;

#[cached(ttl = 60)]
async fn first_word(text: &str) -> &str {
    text.split(' ').next().unwrap_or_default()
}

fn main() {
    let _ = first_word("a b");
}
