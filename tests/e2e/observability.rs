//! What the cache shows of itself and of Redis: `Cache::server_info`.

use crate::support::*;
use cache_runtime::{CacheError, Operation, ServerInfo};
use std::time::Duration;

async fn info(cache: &cache_runtime::Cache) -> ServerInfo {
    cache.server_info().await.expect("INFO answers")
}

async fn server_info_moves_as_the_cache_reads_and_writes(server: Redis) {
    // With an L1, the shared connection speaks RESP3 (INFO's reply is then a
    // verbatim string); without, RESP2.
    for l1 in [false, true] {
        let prefix = format!("info{l1}");
        let mut builder = server.builder().prefix(&prefix);
        if l1 {
            builder = builder.l1_capacity(100);
        }
        let cache = builder.build().unwrap();
        let before = info(&cache).await;
        let asked = server.masters().len();
        assert_eq!(
            before.nodes.len(),
            asked,
            "one entry per primary: {before:?}"
        );
        assert!(before.connected_clients >= 1, "{before:?}");
        assert!(before.used_memory > 0 && before.used_memory_peak >= before.used_memory);

        for i in 0..5 {
            cache
                .set(&format!("k{i}"), &i, Duration::from_secs(60))
                .await
                .unwrap();
        }
        assert_eq!(cache.get::<u32>("k1").await.unwrap(), Some(1));
        assert_eq!(cache.get::<u32>("k2").await.unwrap(), Some(2));
        assert_eq!(cache.get::<u32>("absent").await.unwrap(), None);
        // A key past its TTL, read: Redis counts the expiry.
        let gone = format!("{prefix}:gone");
        server.cmd(&["SET", &gone, "1", "PX", "1"]);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(server.cmd(&["EXISTS", &gone]).as_int(), 0);

        let after = info(&cache).await;
        let l1_note = format!("l1 = {l1}: {before:?} -> {after:?}");
        // The L1 reads Redis once per key it has not seen, as without it.
        assert_eq!(after.keyspace_hits - before.keyspace_hits, 2, "{l1_note}");
        // The EXISTS of the expired key is a miss too.
        assert_eq!(
            after.keyspace_misses - before.keyspace_misses,
            2,
            "{l1_note}"
        );
        assert_eq!(after.keys - before.keys, 5, "{l1_note}");
        assert!(after.expired_keys > before.expired_keys, "{l1_note}");
        assert!(
            after.total_commands_processed >= before.total_commands_processed + 8,
            "five writes, three reads and the test's own commands: {l1_note}"
        );
        assert!((0.0..=1.0).contains(&after.hit_rate()));
        assert_eq!(
            after.hit_rate(),
            after.keyspace_hits as f64 / (after.keyspace_hits + after.keyspace_misses) as f64
        );

        // The sums are the nodes' sums, and every node is a distinct primary.
        let sum = |f: fn(&ServerInfo) -> u64| after.nodes.iter().map(|n| f(&n.info)).sum::<u64>();
        assert_eq!(after.keys, sum(|i| i.keys));
        assert_eq!(after.keyspace_hits, sum(|i| i.keyspace_hits));
        assert_eq!(after.used_memory, sum(|i| i.used_memory));
        assert_eq!(after.connected_clients, sum(|i| i.connected_clients));
        let mut addresses: Vec<_> = after.nodes.iter().map(|n| n.address.clone()).collect();
        addresses.dedup();
        assert_eq!(addresses.len(), asked, "{addresses:?}");
        for (node, master) in after.nodes.iter().zip(sorted_ports(&server)) {
            assert!(
                node.address.ends_with(&format!(":{master}")),
                "{addresses:?}"
            );
            assert!(node.info.nodes.is_empty());
        }
    }
}

/// The primaries' ports, in the order `server_info` lists them (by address).
fn sorted_ports(server: &Redis) -> Vec<u16> {
    let mut addresses: Vec<String> = server
        .masters()
        .iter()
        .map(|m| format!("127.0.0.1:{}", m.port()))
        .collect();
    addresses.sort();
    addresses
        .iter()
        .map(|a| a.rsplit(':').next().unwrap().parse().unwrap())
        .collect()
}

on_server_and_cluster!(server_info_moves_as_the_cache_reads_and_writes,);

#[tokio::test]
async fn server_info_on_the_memory_store_is_an_error_naming_the_operation() {
    let cache = cache_runtime::Cache::builder().memory().build().unwrap();
    match cache.server_info().await {
        Err(CacheError::Backend { op, .. }) => assert_eq!(op, Operation::ServerInfo),
        other => panic!("expected a backend error, got {other:?}"),
    }
}

#[tokio::test]
async fn server_info_with_redis_down_fails_within_the_deadline() {
    let mut server = RedisServer::start();
    let cache = cache_runtime::Cache::builder()
        .redis(server.url())
        .build()
        .unwrap();
    assert!(info(&cache).await.connected_clients >= 1);
    server.kill();
    let err = cache.server_info().await.unwrap_err();
    assert!(
        matches!(
            err,
            CacheError::Backend {
                op: Operation::ServerInfo,
                ..
            }
        ),
        "{err}"
    );
}
