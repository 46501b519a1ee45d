// `none_ttl` in its forms: alone, with `cache_none` (accepted: it implies it),
// equal to `ttl`, against a preset, and on `#[cache_put]`.
use cache_runtime::{cache_put, cached};

#[cached(ttl = "1h", none_ttl = "30s")]
async fn find(id: u64) -> Option<u64> {
    Some(id)
}

#[cached(ttl = 30, none_ttl = 30, cache_none, key = "user:{id}")]
async fn find_both(id: u64) -> Option<String> {
    Some(id.to_string())
}

#[cached(ttl = "short", none_ttl = 5)]
async fn find_preset(id: u64) -> Option<u64> {
    None.filter(|_: &u64| id > 0)
}

#[cache_put(key = "user:{id}", ttl = "1h", none_ttl = "30s")]
async fn save(id: u64) -> Option<String> {
    Some(id.to_string())
}

fn main() {
    let _ = (find(1), find_both(1), find_preset(1), save(1));
}
