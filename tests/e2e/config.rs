//! Connection settings against a real server: password, database number.

use crate::support::*;
use cache_runtime::{cached, Cache};
use std::time::Duration;

const PASSWORD: &str = "s3cret-pw-for-tests";

#[cached(ttl = 60, key = "answer")]
async fn answer(calls: &Calls) -> u32 {
    calls.hit();
    42
}

#[tokio::test]
async fn password_and_database_from_the_builder() {
    let server = protected_server();
    let url = format!("redis://127.0.0.1:{}/0", server.port());
    let cache = Cache::builder()
        .redis(&url)
        .password(PASSWORD)
        .db(3)
        .build()
        .unwrap();
    let calls = Calls::default();
    assert_eq!(cache.scope(answer(&calls)).await, 42);
    assert_eq!(cache.scope(answer(&calls)).await, 42);
    assert_eq!(calls.get(), 1, "authenticated, so cached");
    let replies = server.cmd_pipeline(&[
        &["AUTH", PASSWORD],
        &["SELECT", "3"],
        &["EXISTS", "cache:answer"],
    ]);
    assert_eq!(replies[2].as_int(), 1, "the key went to database 3");
    assert!(!format!("{cache:?}").contains(PASSWORD));
}

#[tokio::test]
async fn a_wrong_password_fails_open_without_leaking_it() {
    let server = protected_server();
    let wrong = "wrong-password-123";
    let url = format!("redis://:{wrong}@127.0.0.1:{}/0", server.port());
    let cache = Cache::builder()
        .redis(url)
        .command_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let calls = Calls::default();
    assert_eq!(cache.scope(answer(&calls)).await, 42);
    assert_eq!(calls.get(), 1);
    let err = cache.get::<u32>("answer").await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(wrong), "the password leaked: {shown}");
    assert!(cache.stats().errors >= 2);
}

/// A server that requires `PASSWORD` (set after start, so the harness's
/// readiness check needs no password).
fn protected_server() -> RedisServer {
    let server = RedisServer::start();
    server.cmd(&["CONFIG", "SET", "requirepass", PASSWORD]);
    server
}

#[tokio::test]
async fn with_caching_turned_off_redis_is_never_touched() {
    let server = RedisServer::start();
    let cache = Cache::builder()
        .redis(server.url())
        .l1_capacity(1 << 20)
        .health_check_interval(Duration::from_millis(50))
        .disabled()
        .build()
        .unwrap();
    let calls = Calls::default();
    for _ in 0..3 {
        assert_eq!(cache.scope(answer(&calls)).await, 42);
    }
    assert_eq!(calls.get(), 3, "the body ran every time");
    assert!(cache.set("k", &1, Duration::from_secs(9)).await.is_err());
    // Health checks would have run by now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.cmd(&["DBSIZE"]).as_int(), 0, "nothing written");
    let clients = server
        .cmd(&["CLIENT", "LIST", "TYPE", "normal"])
        .as_string()
        .expect("CLIENT LIST");
    let others: Vec<_> = clients
        .lines()
        .filter(|line| !line.contains(" cmd=client|list "))
        .collect();
    assert!(
        others.is_empty(),
        "the cache connected to Redis: {others:?}"
    );
    // The same cache enabled does connect (the check above can fail).
    let on = Cache::builder().redis(server.url()).build().unwrap();
    assert_eq!(on.scope(answer(&calls)).await, 42);
    let clients = server
        .cmd(&["CLIENT", "LIST", "TYPE", "normal"])
        .as_string()
        .expect("CLIENT LIST");
    assert!(
        clients.lines().any(|l| !l.contains(" cmd=client|list ")),
        "{clients}"
    );
}
