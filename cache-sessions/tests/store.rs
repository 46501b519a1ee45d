//! The store's contract, on the memory store and on a real Redis: create,
//! load, save, delete, expiry, an id collision, and a revoked session on a
//! second instance with an L1.

use cache_runtime::Cache;
use cache_sessions::CacheSessionStore;
use cache_test_support::RedisServer;
use std::collections::HashMap;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store::Error;
use tower_sessions_core::SessionStore;

fn record(seconds: i64) -> Record {
    let mut data = HashMap::new();
    data.insert("user".to_owned(), serde_json::json!("demo"));
    Record {
        id: Id::default(),
        data,
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::seconds(seconds),
    }
}

async fn contract(cache: Cache) {
    let store = CacheSessionStore::new(cache.clone());

    // create, load
    let mut r = record(60);
    store.create(&mut r).await.unwrap();
    assert_eq!(store.load(&r.id).await.unwrap().as_ref(), Some(&r));
    assert!(
        cache.exists(&format!("session:{}", r.id)).await.unwrap(),
        "one key per session"
    );

    // save changes it
    r.data.insert("cart".to_owned(), serde_json::json!([1, 2]));
    store.save(&r).await.unwrap();
    assert_eq!(
        store.load(&r.id).await.unwrap().unwrap().data["cart"],
        serde_json::json!([1, 2])
    );

    // delete
    store.delete(&r.id).await.unwrap();
    assert_eq!(store.load(&r.id).await.unwrap(), None);
    store.delete(&r.id).await.unwrap(); // twice is fine

    // an id another session holds is not overwritten: a new one is drawn
    let mut first = record(60);
    store.create(&mut first).await.unwrap();
    let mut second = record(60);
    second.id = first.id;
    second
        .data
        .insert("user".to_owned(), serde_json::json!("mallory"));
    store.create(&mut second).await.unwrap();
    assert_ne!(second.id, first.id, "a new id on collision");
    assert_eq!(
        store.load(&first.id).await.unwrap().unwrap().data["user"],
        "demo"
    );
    assert_eq!(
        store.load(&second.id).await.unwrap().unwrap().data["user"],
        "mallory"
    );

    // expiry: the key lives as long as the session
    let mut short = record(1);
    store.create(&mut short).await.unwrap();
    assert!(store.load(&short.id).await.unwrap().is_some());
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    assert_eq!(store.load(&short.id).await.unwrap(), None, "expired");
    assert!(!cache
        .exists(&format!("session:{}", short.id))
        .await
        .unwrap());

    // a record already past its expiry is not kept
    let mut gone = record(-5);
    store.create(&mut gone).await.unwrap();
    assert_eq!(store.load(&gone.id).await.unwrap(), None);
    store.save(&first_expired(&first)).await.unwrap();
    assert_eq!(
        store.load(&first.id).await.unwrap(),
        None,
        "saved as expired: removed"
    );
}

fn first_expired(r: &Record) -> Record {
    Record {
        expiry_date: time::OffsetDateTime::now_utc() - time::Duration::seconds(1),
        ..r.clone()
    }
}

#[tokio::test]
async fn the_contract_holds_on_the_memory_store() {
    contract(Cache::builder().prefix("s").build().unwrap()).await;
}

#[tokio::test]
async fn the_contract_holds_on_redis() {
    let server = RedisServer::start();
    let cache = Cache::builder()
        .redis(server.url())
        .prefix("s")
        .build()
        .unwrap();
    contract(cache).await;
    // Each session's key expires with it.
    let store = CacheSessionStore::new(
        Cache::builder()
            .redis(server.url())
            .prefix("s")
            .build()
            .unwrap(),
    );
    let mut r = record(600);
    store.create(&mut r).await.unwrap();
    let pttl = server
        .cmd(&["PTTL", &format!("s:session:{}", r.id)])
        .as_int();
    assert!(pttl > 590_000 && pttl <= 600_000, "{pttl}");
}

#[tokio::test]
async fn a_session_deleted_on_one_instance_is_never_served_by_another_with_an_l1() {
    let server = RedisServer::start();
    let instance = || {
        Cache::builder()
            .redis(server.url())
            .prefix("s")
            .l1_capacity(1 << 20)
            .build()
            .unwrap()
    };
    let (a, b) = (
        CacheSessionStore::new(instance()),
        CacheSessionStore::new(instance()),
    );
    for _ in 0..50 {
        let mut r = record(60);
        a.create(&mut r).await.unwrap();
        // B reads it (twice: an L1 would hold it now) ...
        assert!(b.load(&r.id).await.unwrap().is_some());
        assert!(b.load(&r.id).await.unwrap().is_some());
        // ... A revokes it, and B's very next read does not serve it.
        a.delete(&r.id).await.unwrap();
        assert_eq!(b.load(&r.id).await.unwrap(), None);
    }
}

#[tokio::test]
async fn a_failing_store_is_a_backend_error_with_its_cause() {
    let mut server = RedisServer::start();
    let cache = Cache::builder()
        .redis(server.url())
        .without_breaker()
        .build()
        .unwrap();
    let store = CacheSessionStore::new(cache);
    server.kill();
    let err = store.load(&Id::default()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Backend(m) if m.contains("get")),
        "{err}"
    );
    let mut r = record(60);
    let err = store.create(&mut r).await.unwrap_err();
    assert!(
        matches!(&err, Error::Backend(m) if m.contains("set")),
        "{err}"
    );
}

#[tokio::test]
async fn the_contract_holds_on_a_redis_cluster() {
    let cluster = cache_test_support::RedisCluster::start();
    let cache = Cache::builder()
        .redis_cluster(cluster.urls())
        .prefix("s")
        .build()
        .unwrap();
    contract(cache).await;
}
