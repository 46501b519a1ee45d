//! `clear_pattern`: SCAN + UNLINK in batches, confined to the prefix.

use crate::support::*;
use cache_runtime::Cache;

/// Fills the server with `n` keys per prefix through a pipeline-free loop of
/// MSET batches (fast enough for 10,000 keys).
fn fill(server: &RedisServer, prefix: &str, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let pairs: Vec<String> = chunk
            .iter()
            .flat_map(|i| [format!("{prefix}{i}"), "v".to_string()])
            .collect();
        let mut args = vec!["MSET"];
        args.extend(pairs.iter().map(String::as_str));
        server.cmd(&args);
    }
}

#[tokio::test]
async fn removes_ten_thousand_keys_and_nothing_outside_the_prefix() {
    let server = RedisServer::start_with(&[
        "--slowlog-log-slower-than",
        "0",
        "--slowlog-max-len",
        "100000",
    ]);
    // A prefix with glob characters: they must be matched literally.
    let cache = Cache::builder()
        .redis(server.url())
        .prefix("sh*p")
        .build()
        .unwrap();
    fill(&server, "sh*p:products:list:", 10_000);
    fill(&server, "sh*p:products:item:", 100); // same prefix, other pattern
    fill(&server, "shop:products:list:", 100); // would match an unescaped `sh*p`
    fill(&server, "sh-p:products:list:", 100);
    fill(&server, "products:list:", 100); // no prefix at all

    server.cmd(&["SLOWLOG", "RESET"]);
    let removed = cache.clear_pattern("products:list:*").await.unwrap();
    let log = server.cmd(&["SLOWLOG", "GET", "100000"]);
    assert_eq!(removed, 10_000);
    assert_eq!(
        server.cmd(&["DBSIZE"]).as_int(),
        400,
        "only the cache's own matching keys went"
    );
    assert_eq!(keys(&server, "sh\\*p:products:list:*").len(), 0);
    assert_eq!(keys(&server, "sh\\*p:products:item:*").len(), 100);
    assert_eq!(keys(&server, "shop:*").len(), 100);

    // Batches, never KEYS: the slow log saw SCAN and UNLINK only.
    let commands: Vec<String> = log
        .as_array()
        .iter()
        .map(|entry| {
            entry.as_array()[3].as_array()[0]
                .as_string()
                .unwrap()
                .to_uppercase()
        })
        .collect();
    assert!(
        commands
            .iter()
            .all(|c| c == "SCAN" || c == "UNLINK" || c == "SLOWLOG"),
        "clear_pattern used other commands: {commands:?}"
    );
    let unlinks = commands.iter().filter(|c| *c == "UNLINK").count();
    assert!(
        unlinks >= 10,
        "deleted in batches of at most 1000: {unlinks} UNLINKs"
    );
    let biggest_unlink = log
        .as_array()
        .iter()
        .filter(|e| {
            e.as_array()[3].as_array()[0]
                .as_string()
                .unwrap()
                .eq_ignore_ascii_case("UNLINK")
        })
        .map(|e| e.as_array()[3].as_array().len() - 1)
        .max()
        .unwrap();
    assert!(biggest_unlink <= 1000, "an UNLINK of {biggest_unlink} keys");
}

#[tokio::test]
async fn memory_store_clear_pattern_matches_the_same_way() {
    let cache = Cache::builder().memory().prefix("sh*p").build().unwrap();
    for i in 0..50 {
        cache
            .set(&format!("products:list:{i}"), &i, SHORT * 1000)
            .await
            .unwrap();
        cache
            .set(&format!("products:item:{i}"), &i, SHORT * 1000)
            .await
            .unwrap();
    }
    assert_eq!(cache.clear_pattern("products:list:*").await.unwrap(), 50);
    assert_eq!(cache.clear_pattern("products:list:*").await.unwrap(), 0);
    assert!(cache.exists("products:item:7").await.unwrap());
}

async fn a_pattern_that_matches_everything_leaves_the_librarys_own_keys(server: Redis) {
    let cache = server.cache("own");
    cache
        .set_tagged("product:1", &1u8, SHORT * 1000, &["products"])
        .await
        .unwrap();
    cache.set("list:1", &1u8, SHORT * 1000).await.unwrap();
    // A write-behind log with an entry its sink has not taken yet.
    #[derive(Clone)]
    struct Never;
    impl cache_runtime::write_behind::Sink<u8> for Never {
        async fn write(
            &self,
            _: Vec<cache_runtime::write_behind::Item<u8>>,
        ) -> Result<(), cache_runtime::write_behind::SinkError> {
            Err("the database is down".into())
        }
    }
    let wb = cache
        .write_behind::<u8, _>("orders", Never)
        .start()
        .unwrap();
    wb.write("order:1", &1).await.unwrap();
    let own = keys(&server, "own:__*");
    assert!(own.len() >= 2, "a tag record and a log: {own:?}");

    // `*`, `_*`, `?_*`: each would match the library's keys, none removes them.
    for pattern in ["*", "_*", "?_*"] {
        cache.clear_pattern(pattern).await.unwrap();
    }
    assert_eq!(keys(&server, "own:__*"), own, "the library's keys stay");
    assert!(!cache.exists("product:1").await.unwrap());
    assert!(!cache.exists("list:1").await.unwrap());
    drop(wb);
}

on_server_and_cluster!(a_pattern_that_matches_everything_leaves_the_librarys_own_keys,);
