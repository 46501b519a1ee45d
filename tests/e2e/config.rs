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
