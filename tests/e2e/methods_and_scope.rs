//! Methods with `cache = self.cache`, and `scope` isolation.

use crate::support::*;
use cache_runtime::{cached, Cache};
use std::sync::Arc;

struct ProductService {
    cache: Cache,
    tenant: String,
    calls: Calls,
}

impl ProductService {
    #[cached(ttl = 60, key = "t:{self.tenant}:product:{id}", cache = self.cache)]
    async fn product(&self, id: u64) -> Result<String, String> {
        self.calls.hit();
        Ok(format!("{}-{id}", self.tenant))
    }

    /// Hashed key: `self` is never part of it, which `skip(self)` says.
    #[cached(ttl = 60, cache = self.cache, skip(self))]
    async fn count(&self, category: &str) -> usize {
        self.calls.hit();
        category.len()
    }
}

#[tokio::test]
async fn methods_use_their_own_cache_field() {
    let server = RedisServer::start();
    let service = ProductService {
        cache: Cache::builder()
            .redis(server.url())
            .prefix("svc")
            .build()
            .unwrap(),
        tenant: "acme".into(),
        calls: Calls::default(),
    };
    // No scope, nothing installed: the method's own cache is used.
    assert_eq!(service.product(1).await.unwrap(), "acme-1");
    assert_eq!(service.product(1).await.unwrap(), "acme-1");
    assert_eq!(service.count("lamps").await, 5);
    assert_eq!(service.count("lamps").await, 5);
    assert_eq!(service.calls.get(), 2);
    let stored = keys(&server, "*");
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert!(stored.contains(&"svc:t:acme:product:1".to_string()));

    // Another instance (another tenant, same cache) shares hashed keys:
    // `self` is not hashed.
    let other = ProductService {
        cache: service.cache.clone(),
        tenant: "globex".into(),
        calls: Calls::default(),
    };
    assert_eq!(other.count("lamps").await, 5);
    assert_eq!(other.calls.get(), 0);
    assert_eq!(other.product(1).await.unwrap(), "globex-1");
    assert_eq!(
        other.calls.get(),
        1,
        "the tenant is in the template, so this is another key"
    );
}

#[cached(ttl = 60, key = "shared")]
async fn shared(calls: Arc<Calls>, marker: &'static str) -> String {
    calls.hit();
    tokio::task::yield_now().await;
    marker.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_isolate_concurrent_tests() {
    // Two "tests" run at once, each with its own memory cache, calling the
    // same function with the same key: neither sees the other's value.
    let run = |marker: &'static str| async move {
        let cache = Cache::builder().memory().build().unwrap();
        let calls = Arc::new(Calls::default());
        let mut seen = Vec::new();
        for _ in 0..50 {
            seen.push(cache.scope(shared(calls.clone(), marker)).await);
        }
        (seen, calls.get(), cache.stats())
    };
    let (a, b) = tokio::join!(tokio::spawn(run("a")), tokio::spawn(run("b")));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(
        a.0.iter().all(|v| v == "a"),
        "scope a saw another scope's value"
    );
    assert!(
        b.0.iter().all(|v| v == "b"),
        "scope b saw another scope's value"
    );
    assert_eq!((a.1, b.1), (1, 1));
    assert_eq!((a.2.hits, a.2.misses), (49, 1));
}

#[tokio::test]
async fn without_any_cache_the_body_runs_uncached() {
    // Nothing installed in this test binary, no scope: runs uncached.
    let calls = Arc::new(Calls::default());
    assert_eq!(shared(calls.clone(), "x").await, "x");
    assert_eq!(shared(calls.clone(), "x").await, "x");
    assert_eq!(calls.get(), 2);
}
