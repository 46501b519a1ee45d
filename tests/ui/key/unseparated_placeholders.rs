use cache_runtime::{cache_evict, cached};

// `("1", "23")` and `("12", "3")` would render one key.
#[cached(ttl = 60, key = "pair:{a}{b}")]
async fn adjacent(a: String, b: String) -> String {
    a + &b
}

// Letters, digits and non-ASCII characters can be in a value too.
#[cached(ttl = 60, key = "v{a}x{b}9{c}", tags = ["t:{a}→{b}"])]
async fn letters(a: String, b: String, c: String) -> String {
    a + &b + &c
}

#[cache_evict(keys = ["ok:{a}:{b}", "{a}{b}"], pattern = "p:{a}{b}*")]
async fn evict(a: String, b: String) {
    drop((a, b));
}

fn main() {}
