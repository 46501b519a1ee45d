//! The README's "Testing code that uses the cache" example, verbatim: if this
//! file stops compiling or passing, the README is wrong.

use cache_runtime::cached;
use cache_runtime::testing::MockBackend;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub id: u64,
    pub name: String,
}

/// The service under test; `db_calls` stands in for a real database.
#[derive(Default)]
pub struct Catalog {
    db_calls: AtomicUsize,
}

impl Catalog {
    #[cached(ttl = 600, key = "product:{id}")]
    pub async fn product(&self, id: u64) -> Result<Product, String> {
        self.db_calls.fetch_add(1, Ordering::SeqCst);
        Ok(Product {
            id,
            name: format!("Lamp #{id}"),
        })
    }
}

#[tokio::test(start_paused = true)]
async fn catalog_caches_products() {
    let mock = MockBackend::new();
    let cache = mock.cache();
    let catalog = Catalog::default();
    let db_calls = || catalog.db_calls.load(Ordering::SeqCst);

    cache
        .scope(async {
            catalog.product(1).await.unwrap(); // miss: one database call
            catalog.product(1).await.unwrap(); // hit
            assert_eq!(db_calls(), 1);
            assert_eq!(mock.ttl_of("product:1"), Some(Duration::from_secs(600)));

            tokio::time::advance(Duration::from_secs(601)).await; // no real waiting
            catalog.product(1).await.unwrap(); // expired: refreshed
            assert_eq!(db_calls(), 2);

            mock.fail_all(true); // Redis is down: the service still answers
            assert_eq!(catalog.product(2).await.unwrap().name, "Lamp #2");
            assert_eq!(db_calls(), 3);
        })
        .await;
    assert_eq!((mock.hits(), mock.misses()), (1, 2));
}
