//! TLS (`rediss://`, a private CA, mutual TLS) and ACL users, against real
//! `redis-server` processes: what works, and what a misconfiguration says.

use crate::support::*;
use cache_runtime::{cached, Cache, CacheError};
use cache_test_support::ClientAuth;
use std::time::Duration;

const TTL: Duration = Duration::from_secs(60);

#[cached(ttl = 60, key = "secure:{id}")]
async fn secure_call(calls: &Calls, id: u64) -> u64 {
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

/// The first error of `cache` is an authentication failure that names
/// `setting` and shows none of `secrets`; `#[cached]` calls fail open.
async fn refused_without_secrets(cache: &Cache, setting: &str, secrets: &[&str]) {
    let err = first_error(cache).await;
    let shown = format!("{err} / {err:?}");
    println!("{shown}");
    assert!(shown.contains("authentication failed"), "{shown}");
    assert!(shown.contains(setting), "names the setting: {shown}");
    for secret in secrets {
        assert!(!shown.contains(secret), "{shown}");
    }
    let calls = Calls::default();
    assert_eq!(cache.scope(secure_call(&calls, 3)).await, 4, "fail-open");
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
    assert_eq!(cache.scope(secure_call(&calls, 1)).await, 2);
    assert_eq!(cache.scope(secure_call(&calls, 1)).await, 2);
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
    assert_eq!(cache.scope(secure_call(&calls, 2)).await, 3, "fail-open");
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
    refused_without_secrets(&cache, "`password`", &["wrong-secret", "right-secret"]).await;

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
    refused_without_secrets(&cache, "username", &["pw-of-nobody"]).await;
}

/// The least-privilege ACL rules the README gives for a cache whose prefix
/// is `acl`: keys under the prefix only, no channels, and exactly the
/// commands the library sends (connection setup, reads, writes, scripts,
/// scans, client tracking for the L1, streams for write-behind).
const ACL_RULES: &[&str] = &[
    "resetkeys",
    "~acl:*",
    "resetchannels",
    "-@all",
    "+hello",
    "+auth",
    "+ping",
    "+select",
    "+client|id",
    "+client|tracking",
    "+client|caching",
    "+client|unblock",
    "+get",
    "+set",
    "+exists",
    "+unlink",
    "+scan",
    "+zrange",
    "+zscore",
    "+zadd",
    "+zrem",
    "+rename",
    "+pexpire",
    "+pttl",
    "+time",
    "+evalsha",
    "+script|load",
    "+multi",
    "+exec",
    "+xadd",
    "+xack",
    "+xdel",
    "+xrange",
    "+xreadgroup",
    "+xautoclaim",
    "+xpending",
    "+xinfo|consumers",
    "+xgroup|create",
    "+xgroup|delconsumer",
];

#[cached(ttl = 60, key = "product:{id}", tags = ["products"])]
async fn acl_product(calls: &Calls, id: u64) -> u64 {
    calls.hit();
    id * 10
}

#[cache_runtime::cache_evict(keys = ["product:{id}"], tags = ["products"], pattern = "list:*")]
async fn acl_evict(id: u64) {
    let _ = id;
}

#[cache_runtime::cache_put(ttl = 60, key = "product:{id}", tags = ["products"])]
async fn acl_put(id: u64) -> u64 {
    id * 100
}

#[cache_runtime::cache_put(ttl = 60, key = "plain:{id}")]
async fn acl_put_plain(id: u64) -> u64 {
    id
}

/// A sink that keeps what it is given.
#[derive(Clone, Default)]
struct Kept(std::sync::Arc<std::sync::Mutex<Vec<(String, u64)>>>);

impl cache_runtime::write_behind::Sink<u64> for Kept {
    async fn write(
        &self,
        batch: Vec<cache_runtime::write_behind::Item<u64>>,
    ) -> Result<(), cache_runtime::write_behind::SinkError> {
        let mut kept = self.0.lock().unwrap();
        kept.extend(batch.into_iter().map(|i| (i.key, i.value)));
        Ok(())
    }
}

/// What the README shows, on `cache` (prefix `acl`): read-through with a
/// tag, L1 hits, the direct API, eviction by key, tag and pattern, and a
/// write-behind log flushed and shut down.
async fn everything(cache: &Cache) {
    let calls = Calls::default();
    assert_eq!(cache.scope(acl_product(&calls, 1)).await, 10);
    assert_eq!(cache.scope(acl_product(&calls, 1)).await, 10);
    assert_eq!(cache.scope(acl_product(&calls, 1)).await, 10);
    assert_eq!(calls.get(), 1);
    assert!(cache.stats().l1_hits >= 1, "{:?}", cache.stats());
    // Write-through, tagged and plain, and the companions.
    assert_eq!(cache.scope(acl_put(1)).await, 100);
    assert_eq!(cache.scope(acl_product(&calls, 1)).await, 100);
    assert_eq!(cache.scope(acl_put_plain(7)).await, 7);
    assert!(cache.exists("plain:7").await.unwrap());
    assert_eq!(cache.scope(acl_product_uncached(&calls, 1)).await, 10);
    assert!(cache
        .scope(acl_product_invalidate(&calls, 1))
        .await
        .unwrap());
    assert_eq!(cache.scope(acl_product(&calls, 1)).await, 10);
    cache.set("list:1", &vec![1u64], TTL).await.unwrap();
    cache
        .set_tagged("product:2", &20u64, TTL, &["products"])
        .await
        .unwrap();
    assert!(cache.exists("product:2").await.unwrap());
    assert_eq!(cache.get::<u64>("product:2").await.unwrap(), Some(20));
    cache.scope(acl_evict(1)).await;
    assert!(!cache.exists("product:1").await.unwrap());
    assert!(!cache.exists("product:2").await.unwrap(), "tag invalidated");
    assert!(!cache.exists("list:1").await.unwrap(), "pattern cleared");
    cache.set("list:2", &2u8, TTL).await.unwrap();
    assert_eq!(cache.clear_pattern("list:*").await.unwrap(), 1);
    cache
        .set_tagged("product:3", &30u64, TTL, &["products"])
        .await
        .unwrap();
    assert_eq!(cache.invalidate_tags(&["products"]).await.unwrap(), 1);
    assert!(cache.delete("nothing").await.is_ok());
    // A tag's expired members are pruned by the next tagged write.
    for (key, ttl) in [("product:4", TTL), ("product:5", Duration::from_millis(1))] {
        cache.set_tagged(key, &4u64, ttl, &["short"]).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    cache
        .set_tagged("product:6", &6u64, TTL, &["short"])
        .await
        .unwrap();

    let kept = Kept::default();
    let wb = cache
        .write_behind::<u64, _>("orders", kept.clone())
        // Long: after the flush, the flusher is back in a blocking read
        // when the shutdown comes, and ends it with CLIENT UNBLOCK (a 20 ms
        // read could end by itself first, and the command go unsent).
        .interval(Duration::from_secs(1))
        .start()
        .unwrap();
    wb.write("order:1", &5).await.unwrap();
    wb.flush().await.unwrap();
    wb.shutdown().await.unwrap();
    assert_eq!(
        kept.0.lock().unwrap().as_slice(),
        [("order:1".to_owned(), 5)]
    );
    let stats = cache.stats();
    assert_eq!(stats.errors, 0, "{stats:?}");
}

#[tokio::test]
async fn everything_works_under_the_least_privilege_acl_and_values_outside_the_prefix_are_refused()
{
    let server = RedisServer::start();
    let mut setuser = vec!["ACL", "SETUSER", "cache", "reset", "on", ">acl-secret"];
    setuser.extend_from_slice(ACL_RULES);
    assert_eq!(server.cmd(&setuser).as_string().as_deref(), Some("OK"));
    server.cmd(&["SET", "elsewhere", "private"]);
    let cache = builder(&server.url())
        .username("cache")
        .password("acl-secret")
        .prefix("acl")
        .l1_capacity(1 << 20)
        .build()
        .unwrap();
    everything(&cache).await;
    let log = server.cmd(&["ACL", "LOG"]);
    assert!(log.as_array().is_empty(), "denied: {log:?}");

    // Outside the prefix: refused by the server, and said so.
    let other = builder(&server.url())
        .username("cache")
        .password("acl-secret")
        .prefix("elsewhere-prefix")
        .build()
        .unwrap();
    let err = other.get::<String>("x").await.unwrap_err();
    assert!(
        err.to_string()
            .contains("permission denied by the server's ACL"),
        "{err}"
    );
    assert_eq!(
        server.cmd(&["GET", "elsewhere"]).as_string().as_deref(),
        Some("private")
    );
}

#[tokio::test]
async fn the_acl_rules_allow_exactly_the_commands_the_library_sends() {
    // The same workload as the default user on a fresh server: what it
    // ran, by Redis's own command statistics (scripts' commands included).
    let server = RedisServer::start();
    server.cmd(&["CONFIG", "RESETSTAT"]);
    let cache = builder(&server.url())
        .prefix("acl")
        .l1_capacity(1 << 20)
        .build()
        .unwrap();
    everything(&cache).await;
    let info = server.cmd(&["INFO", "commandstats"]).as_string().unwrap();
    let mut sent: Vec<String> = info
        .lines()
        .filter_map(|l| l.strip_prefix("cmdstat_")?.split_once(':'))
        .map(|(name, _)| name.to_owned())
        // This test's own commands.
        .filter(|name| name != "info" && name != "config|resetstat")
        .collect();
    sent.sort();
    let mut allowed: Vec<String> = ACL_RULES
        .iter()
        .filter_map(|r| r.strip_prefix('+'))
        // Sent only with a password (AUTH), a database other than 0
        // (SELECT), or once a second by the L1's heartbeat (PING).
        .filter(|c| !["auth", "select", "ping"].contains(c))
        .map(str::to_owned)
        .collect();
    allowed.sort();
    assert_eq!(sent, allowed, "the README's ACL line and the commands sent");

    // The README shows these rules, for the prefix `cache`.
    let readme = include_str!("../../README.md");
    let line = readme
        .lines()
        .find(|l| l.starts_with("ACL SETUSER cache on >PASSWORD "))
        .expect("the README's ACL line");
    let shown: Vec<&str> = line.split(' ').skip(5).collect();
    let rules: Vec<String> = ACL_RULES
        .iter()
        .map(|r| r.replace("~acl:", "~cache:"))
        .collect();
    assert_eq!(shown, rules, "the README's ACL line");
}

/// A builder for the cluster at `urls`, with the deadlines of [`builder`].
fn cluster_builder(urls: Vec<String>) -> cache_runtime::CacheBuilder {
    Cache::builder()
        .redis_cluster(urls)
        .command_timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(5))
}

/// What a cluster needs beyond [`ACL_RULES`]: the slot map, which the
/// client asks any node for, and `ASKING`, sent before a command for a
/// slot that is being moved to another node.
const CLUSTER_ACL_RULES: &[&str] = &["+cluster|slots", "+asking"];

/// Creates the least-privilege user `cache` (password `acl-secret`) on
/// every node: a cluster's nodes do not share ACL users.
fn create_acl_user_on_every_node(nodes: &[RedisServer]) {
    let mut setuser = vec!["ACL", "SETUSER", "cache", "reset", "on", ">acl-secret"];
    setuser.extend_from_slice(ACL_RULES);
    setuser.extend_from_slice(CLUSTER_ACL_RULES);
    for node in nodes {
        assert_eq!(node.cmd(&setuser).as_string().as_deref(), Some("OK"));
        // What an earlier test on the shared cluster was denied.
        node.cmd(&["ACL", "LOG", "RESET"]);
    }
}

/// Every node's `ACL LOG` is empty.
#[track_caller]
fn nothing_denied(nodes: &[RedisServer]) {
    for node in nodes {
        let log = node.cmd(&["ACL", "LOG"]);
        assert!(
            log.as_array().is_empty(),
            "denied on port {}: {log:?}",
            node.port()
        );
    }
}

#[tokio::test]
async fn a_tls_cluster_with_mutual_tls_and_the_least_privilege_acl_runs_everything() {
    let cluster = RedisCluster::start_tls_with(ClientAuth::Required);
    create_acl_user_on_every_node(cluster.nodes());
    cluster.cmd(&["SET", "elsewhere", "private"]);
    let secure = || {
        cluster_builder(cluster.urls())
            .tls_ca_file(cluster.ca_file())
            .tls_client_cert_files(cluster.client_cert_file(), cluster.client_key_file())
            .username("cache")
            .password("acl-secret")
    };
    let cache = secure().prefix("acl").l1_capacity(1 << 20).build().unwrap();
    everything(&cache).await;
    nothing_denied(cluster.nodes());
    // The values are on the cluster, written over TLS (its nodes have no
    // plain port) by the user `cache`, which holds connections to every
    // master.
    assert_eq!(cluster.cmd(&["EXISTS", "acl:plain:7"]).as_int(), 1);
    for m in cluster.masters() {
        let node = &cluster.nodes()[m];
        let clients = node.cmd(&["CLIENT", "LIST"]).as_string().unwrap();
        let tls_port = format!("laddr=127.0.0.1:{} ", node.port());
        let ours = clients
            .lines()
            .filter(|c| c.contains(" user=cache ") && c.contains(&tls_port))
            .count();
        assert!(
            ours >= 1,
            "no connection of `cache` on port {}:\n{clients}",
            node.port()
        );
    }

    // Outside the prefix: refused by the nodes, and said so.
    let other = secure().prefix("elsewhere-prefix").build().unwrap();
    let err = other.get::<String>("x").await.unwrap_err();
    assert!(
        err.to_string()
            .contains("permission denied by the server's ACL"),
        "{err}"
    );
    assert_eq!(
        cluster.cmd(&["GET", "elsewhere"]).as_string().as_deref(),
        Some("private")
    );

    // A CA that signed nothing here, and no client certificate: each
    // named, and `#[cached]` calls fail open.
    let untrusted = cluster_builder(cluster.urls())
        .tls_ca_file(cluster.other_ca_file())
        .tls_client_cert_files(cluster.client_cert_file(), cluster.client_key_file())
        .build()
        .unwrap();
    let shown = first_error(&untrusted).await.to_string();
    println!("{shown}");
    assert!(shown.contains("untrusted certificate"), "{shown}");
    assert!(shown.contains("tls_ca_file"), "{shown}");
    let calls = Calls::default();
    assert_eq!(
        untrusted.scope(secure_call(&calls, 2)).await,
        3,
        "fail-open"
    );
    assert_eq!(calls.get(), 1);
    let without_cert = cluster_builder(cluster.urls())
        .tls_ca_file(cluster.ca_file())
        .build()
        .unwrap();
    let shown = first_error(&without_cert).await.to_string();
    println!("{shown}");
    assert!(shown.contains("tls_client_cert_files"), "{shown}");
}

#[tokio::test]
async fn a_wrong_password_on_a_cluster_says_so_without_the_password() {
    let redis = Redis::cluster();
    let Redis::Cluster(cluster, _turn) = &redis else {
        unreachable!("Redis::cluster")
    };
    create_acl_user_on_every_node(cluster.nodes());
    let wrong = cluster_builder(cluster.urls())
        .username("cache")
        .password("wrong-secret")
        .build()
        .unwrap();
    refused_without_secrets(&wrong, "`password`", &["wrong-secret", "acl-secret"]).await;
    drop(wrong);
    for node in cluster.nodes() {
        let log = node.cmd(&["ACL", "LOG"]);
        let refused = log.as_array().iter().all(|e| {
            let e = e.as_array();
            e.iter().any(|f| *f == Reply::Bulk(b"auth".to_vec()))
        });
        assert!(refused, "only the wrong password was refused: {log:?}");
        node.cmd(&["ACL", "LOG", "RESET"]);
    }

    // The right password, in the URLs this time.
    let urls = cluster
        .urls()
        .iter()
        .map(|u| u.replace("redis://", "redis://cache:acl-secret@"))
        .collect::<Vec<_>>();
    let right = cluster_builder(urls).prefix("acl").build().unwrap();
    right.set("k", &1u8, TTL).await.unwrap();
    assert_eq!(right.get::<u8>("k").await.unwrap(), Some(1));
    nothing_denied(cluster.nodes());
}

#[tokio::test]
async fn the_acl_rules_allow_exactly_the_commands_the_library_sends_on_a_cluster() {
    // As on one server: the same work as the default user, and what the
    // masters ran. (A replica's statistics also count what it replays
    // from its master, so they are left out; the test above runs the
    // same work as `cache` with every node's ACL LOG empty.)
    let redis = Redis::cluster();
    let Redis::Cluster(cluster, _turn) = &redis else {
        unreachable!("Redis::cluster")
    };
    for node in cluster.nodes() {
        // Earlier tests loaded the scripts; this one must, too.
        node.cmd(&["SCRIPT", "FLUSH"]);
        node.cmd(&["CONFIG", "RESETSTAT"]);
    }
    let cache = cluster_builder(cluster.urls())
        .prefix("acl")
        .l1_capacity(1 << 20)
        .build()
        .unwrap();
    everything(&cache).await;
    let mut sent: Vec<String> = cluster
        .masters()
        .into_iter()
        .flat_map(|m| {
            let info = cluster.nodes()[m].cmd(&["INFO", "commandstats"]);
            let info = info.as_string().unwrap();
            info.lines()
                .filter_map(|l| l.strip_prefix("cmdstat_")?.split_once(':'))
                .map(|(name, _)| name.to_owned())
                .collect::<Vec<_>>()
        })
        // This test's own commands (`ROLE`: finding the masters), and the
        // replicas' acknowledgements (`REPLCONF`).
        .filter(|name| {
            !["info", "config|resetstat", "role", "ping", "replconf"].contains(&name.as_str())
        })
        .collect();
    sent.sort();
    sent.dedup();
    let mut allowed: Vec<String> = ACL_RULES
        .iter()
        .chain(CLUSTER_ACL_RULES)
        .filter_map(|r| r.strip_prefix('+'))
        // Sent only with a password (AUTH), a database other than 0
        // (SELECT: never on a cluster), while a slot moves (ASKING), or
        // now and then by the L1's heartbeat and the client's checks (PING).
        .filter(|c| !["auth", "select", "asking", "ping"].contains(c))
        .map(str::to_owned)
        .collect();
    allowed.sort();
    assert_eq!(
        sent, allowed,
        "the README's ACL lines and the commands sent"
    );

    let readme = include_str!("../../README.md");
    let line = readme
        .lines()
        .find(|l| l.starts_with("ACL SETUSER cache on >PASSWORD ") && l.contains("cluster|slots"))
        .expect("the README's ACL line for a cluster");
    let shown: Vec<&str> = line.split(' ').skip(5).collect();
    let rules: Vec<String> = ACL_RULES
        .iter()
        .chain(CLUSTER_ACL_RULES)
        .map(|r| r.replace("~acl:", "~cache:"))
        .collect();
    assert_eq!(shown, rules, "the README's ACL line for a cluster");
}
