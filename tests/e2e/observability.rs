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

/// The metrics example as a process, killed on drop.
struct Exporter {
    child: std::process::Child,
    addr: String,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Exporter {
    /// Starts `examples/metrics` on a free port, with `env`, and reads the
    /// address it prints.
    fn start(env: &[(&str, String)]) -> Exporter {
        use std::io::BufRead as _;
        let exe = example_binary("metrics");
        let mut command = std::process::Command::new(&exe);
        command
            .env("METRICS_ADDR", "127.0.0.1:0")
            .env_remove("REDIS_URL")
            .env_remove("REDIS_CLUSTER_NODES")
            .env_remove("CACHE_L1_CAPACITY")
            .stdout(std::process::Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("running {}: {e}", exe.display()));
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("the example printed {line:?}"))
            .to_owned();
        Exporter { child, addr }
    }

    /// `GET path` with hyper's HTTP/1 client: the status and the body.
    async fn get(&self, path: &str) -> (u16, String) {
        use http_body_util::BodyExt as _;
        let stream = tokio::net::TcpStream::connect(&self.addr).await.unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        let request = hyper::Request::get(path)
            .header("host", &self.addr)
            .body(http_body_util::Empty::<hyper::body::Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    /// [`Exporter::metric`] once it has stopped moving: read until two
    /// reads a flush apart (1 s) agree, for at most 5 s.
    async fn settled(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut last = self.metric(name, labels).await;
        for _ in 0..5 {
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
            let now = self.metric(name, labels).await;
            if now == last {
                return now;
            }
            last = now;
        }
        last
    }

    /// The Prometheus text's value of the series `name` whose labels
    /// include every one of `labels` (summed; 0 if absent).
    async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let (status, text) = self.get("/metrics").await;
        assert_eq!(status, 200);
        sample(&text, name, labels)
    }
}

/// The value of the series `name{...}` in Prometheus text whose labels hold
/// every one of `labels`, summed over the matching lines.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            let all = labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            (metric == name && all).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

const PRODUCT: &str = "metrics::product";

async fn the_exporter_serves_counters_that_move_by_what_was_called(server: Redis) {
    let url = match &server {
        Redis::Server(s) => s.url(),
        Redis::Cluster(..) => unreachable!("one server"),
    };
    let exporter = Exporter::start(&[
        ("REDIS_URL", url),
        ("CACHE_L1_CAPACITY", (1u64 << 20).to_string()),
        ("CACHE_PREFIX", "exporter".into()),
    ]);
    let gets = |tier: &'static str, result: &'static str| {
        [("function", PRODUCT), ("tier", tier), ("result", result)]
    };
    let before = exporter.get("/metrics").await.1;
    assert_eq!(sample(&before, "cache_gets_total", &gets("l2", "hit")), 0.0);

    // One miss, then hits: the first from Redis (the L1 had not seen the
    // key), the rest from the L1; and a product that does not exist.
    for _ in 0..5 {
        let (status, body) = exporter.get("/product/7").await;
        assert_eq!(
            (status, body.as_str()),
            (200, "{\"id\":7,\"name\":\"product 7\"}")
        );
    }
    assert_eq!(exporter.get("/product/5000").await.0, 404);

    // The hit path's counts reach the recorder within about a second.
    let settled = |name: &'static str, labels: Vec<(&'static str, &'static str)>| {
        let exporter = &exporter;
        async move { exporter.settled(name, &labels).await }
    };
    assert_eq!(
        settled("cache_gets_total", gets("l2", "miss").to_vec()).await,
        2.0
    );
    assert_eq!(
        settled("cache_gets_total", gets("l2", "hit").to_vec()).await,
        1.0
    );
    assert_eq!(
        settled("cache_gets_total", gets("l1", "hit").to_vec()).await,
        3.0
    );
    assert_eq!(
        settled("cache_gets_total", gets("l1", "miss").to_vec()).await,
        3.0,
        "the two misses and the L2 hit"
    );
    let loads = [("function", PRODUCT), ("result", "ok")];
    assert_eq!(exporter.metric("cache_loads_total", &loads).await, 2.0);
    assert_eq!(
        exporter
            .metric(
                "cache_load_duration_seconds_count",
                &[("function", PRODUCT)]
            )
            .await,
        2.0
    );
    assert_eq!(
        settled(
            "cache_redis_command_duration_seconds_count",
            vec![("command", "get")]
        )
        .await,
        3.0,
        "Redis was asked for the key three times"
    );
    // The L1 holds product 7 (the gauges are updated each second).
    assert_eq!(settled("cache_l1_entries", vec![]).await, 1.0);
    assert!(exporter.metric("cache_l1_bytes", &[]).await > 0.0);
    // Help texts and types for dashboards.
    let text = exporter.get("/metrics").await.1;
    assert!(text.contains("# TYPE cache_gets_total counter"), "{text}");
    assert!(text.contains("# HELP cache_gets_total "), "{text}");
    assert!(
        text.contains("# TYPE cache_load_duration_seconds summary"),
        "{text}"
    );

    // Another process changes the key: the L1 hears of it.
    server.cmd(&["DEL", "exporter:product:7"]);
    assert_eq!(
        settled("cache_invalidations_total", vec![("source", "redis")]).await,
        1.0
    );
    assert_eq!(exporter.get("/product/7").await.0, 200);
    assert_eq!(
        exporter.metric("cache_loads_total", &loads).await,
        3.0,
        "loaded again"
    );

    // Redis gone: the call still answers; the failure is counted by
    // operation, and the L1, which can no longer hear of changes, is emptied.
    drop(server);
    assert_eq!(exporter.get("/product/8").await.0, 200);
    assert_eq!(
        exporter
            .metric("cache_errors_total", &[("operation", "get")])
            .await,
        1.0
    );
    assert!(settled("cache_invalidations_total", vec![("source", "flush")]).await >= 1.0);
    assert_eq!(settled("cache_l1_entries", vec![]).await, 0.0);
}

#[tokio::test]
async fn the_metrics_example_serves_prometheus_text_whose_counters_move_by_what_was_called() {
    the_exporter_serves_counters_that_move_by_what_was_called(Redis::server()).await;
}
