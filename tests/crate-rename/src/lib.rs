//! A crate that depends on the runtime under another name. Without
//! `crate = my_cache` the expansion would name `::cache_runtime` and fail to
//! compile; this crate compiling is half of the test.

use my_cache::{cache_evict, cache_put, cached};
use std::sync::atomic::{AtomicUsize, Ordering};

/// How often [`double`] ran its body.
pub static CALLS: AtomicUsize = AtomicUsize::new(0);

/// Doubles `x`, cached under `double:{x}`.
#[cached(crate = my_cache, ttl = 60, key = "double:{x}")]
pub async fn double(x: u64) -> u64 {
    CALLS.fetch_add(1, Ordering::SeqCst);
    x * 2
}

/// Hashed key, renamed crate.
#[cached(crate = my_cache)]
pub async fn triple(x: u64) -> u64 {
    CALLS.fetch_add(1, Ordering::SeqCst);
    x * 3
}

/// Write-through to [`double`]'s key, renamed crate.
#[cache_put(crate = my_cache, key = "double:{x}", tags = ["doubles"])]
pub async fn put_double(x: u64, value: u64) -> u64 {
    value
}

/// Evicts [`double`]'s key, renamed crate.
#[cache_evict(crate = my_cache, key = "double:{x}", pattern = "double:{x}*")]
pub async fn forget_double(x: u64) {
    let _ = x;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn renamed_dependency_caches() {
        let cache = my_cache::Cache::builder().memory().build().unwrap();
        assert_eq!(cache.scope(double(4)).await, 8);
        assert_eq!(cache.scope(double(4)).await, 8);
        assert_eq!(cache.scope(triple(4)).await, 12);
        assert_eq!(cache.scope(triple(4)).await, 12);
        assert_eq!(CALLS.load(Ordering::SeqCst), 2);
        assert!(cache.exists("double:4").await.unwrap());

        // The companions, write-through and eviction name `my_cache` too.
        assert!(cache.scope(triple_invalidate(4)).await.unwrap());
        assert_eq!(double_uncached(5).await, 10);
        assert_eq!(cache.scope(put_double(5, 11)).await, 11);
        assert_eq!(cache.scope(double(5)).await, 11);
        cache.scope(forget_double(5)).await;
        assert!(!cache.exists("double:5").await.unwrap());
    }
}
