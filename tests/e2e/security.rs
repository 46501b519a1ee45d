//! TLS (`rediss://`, a private CA, mutual TLS) and ACL users, against real
//! `redis-server` processes: what works, and what a misconfiguration says.

use crate::support::*;
use cache_runtime::{cached, Cache, CacheError};
use cache_test_support::ClientAuth;
use std::time::Duration;

const TTL: Duration = Duration::from_secs(60);

#[cached(ttl = 60, key = "secure:{id}")]
async fn secure(calls: &Calls, id: u64) -> u64 {
    calls.hit();
    id + 1
}

/// The first error of the direct API on `cache`.
async fn first_error(cache: &Cache) -> CacheError {
    cache
        .set("probe", &1u8, TTL)
        .await
        .expect_err("the misconfigured cache must fail")
}

/// A builder for Redis at `url` whose deadlines leave room for a TLS
/// handshake in a debug build on a loaded machine: these tests check what
/// a handshake says, not how fast it is.
fn builder(url: &str) -> cache_runtime::CacheBuilder {
    Cache::builder()
        .redis(url)
        .command_timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(5))
}

#[tokio::test]
async fn tls_with_a_private_ca_caches_and_reads_back() {
    let server = RedisServer::start_tls();
    let cache = builder(&server.url())
        .tls_ca_file(server.ca_file())
        .prefix("tls")
        .build()
        .unwrap();
    cache.set("k", &"over tls", TTL).await.unwrap();
    assert_eq!(
        cache.get::<String>("k").await.unwrap().as_deref(),
        Some("over tls")
    );
    let calls = Calls::default();
    assert_eq!(cache.scope(secure(&calls, 1)).await, 2);
    assert_eq!(cache.scope(secure(&calls, 1)).await, 2);
    assert_eq!(calls.get(), 1, "the second call is a hit");
    // The value went through the TLS server.
    assert_eq!(server.cmd(&["EXISTS", "tls:secure:1"]).as_int(), 1);
}

#[tokio::test]
async fn an_untrusted_certificate_is_named_and_calls_fail_open() {
    let server = RedisServer::start_tls();
    let cache = builder(&server.url())
        .tls_ca_file(server.other_ca_file())
        .build()
        .unwrap();
    let err = first_error(&cache).await;
    let shown = err.to_string();
    println!("{shown}");
    assert!(shown.contains("TLS handshake failed"), "{shown}");
    assert!(shown.contains("untrusted certificate"), "{shown}");
    assert!(shown.contains("tls_ca_file"), "{shown}");
    let calls = Calls::default();
    assert_eq!(cache.scope(secure(&calls, 2)).await, 3, "fail-open");
    // Without a CA file the system's roots do not trust a test CA either.
    let cache = builder(&server.url()).build().unwrap();
    let shown = first_error(&cache).await.to_string();
    assert!(shown.contains("untrusted certificate"), "{shown}");
}

#[tokio::test]
async fn mutual_tls_presents_the_client_certificate() {
    let server = RedisServer::start_tls_with(ClientAuth::Required, &[]);
    let without = builder(&server.url())
        .tls_ca_file(server.ca_file())
        .build()
        .unwrap();
    let shown = first_error(&without).await.to_string();
    println!("{shown}");
    assert!(shown.contains("tls_client_cert_files"), "{shown}");

    let with = builder(&server.url())
        .tls_ca_file(server.ca_file())
        .tls_client_cert_files(server.client_cert_file(), server.client_key_file())
        .build()
        .unwrap();
    with.set("k", &7u8, TTL).await.unwrap();
    assert_eq!(with.get::<u8>("k").await.unwrap(), Some(7));
}

#[tokio::test]
async fn a_wrong_password_says_so_without_the_password() {
    let server = RedisServer::start();
    let set = server.cmd(&[
        "ACL",
        "SETUSER",
        "app",
        "on",
        ">right-secret",
        "~*",
        "+@all",
    ]);
    assert_eq!(set.as_string().as_deref(), Some("OK"));
    let url = server
        .url()
        .replace("redis://", "redis://app:wrong-secret@");
    let cache = builder(&url).build().unwrap();
    let err = first_error(&cache).await;
    let shown = format!("{err} / {err:?}");
    println!("{shown}");
    assert!(shown.contains("authentication failed"), "{shown}");
    assert!(shown.contains("`password`"), "names the setting: {shown}");
    assert!(!shown.contains("wrong-secret"), "{shown}");
    assert!(!shown.contains("right-secret"), "{shown}");
    let calls = Calls::default();
    assert_eq!(cache.scope(secure(&calls, 3)).await, 4, "fail-open");

    // The same user with the right password, by the builder's settings.
    let cache = builder(&server.url())
        .username("app")
        .password("right-secret")
        .build()
        .unwrap();
    cache.set("k", &1u8, TTL).await.unwrap();
    assert_eq!(cache.get::<u8>("k").await.unwrap(), Some(1));
}

#[tokio::test]
async fn an_unknown_user_says_so() {
    let server = RedisServer::start();
    let cache = builder(&server.url())
        .username("nobody")
        .password("pw-of-nobody")
        .build()
        .unwrap();
    let err = first_error(&cache).await;
    let shown = format!("{err} / {err:?}");
    println!("{shown}");
    assert!(shown.contains("authentication failed"), "{shown}");
    assert!(shown.contains("username"), "{shown}");
    assert!(!shown.contains("pw-of-nobody"), "{shown}");
}
