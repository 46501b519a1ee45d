//! Tags on Redis: invalidation removes exactly the tagged entries, in
//! bounded batches, and the bookkeeping goes away with the entries.

use crate::support::*;
use cache_runtime::Cache;
use std::time::{Duration, Instant};

const MINUTE: Duration = Duration::from_secs(60);

/// The tag bookkeeping keys on the server, by SCAN (never KEYS).
fn tag_keys(server: &impl Inspect, prefix: &str) -> Vec<String> {
    keys(server, &format!("{prefix}:__tag*"))
}

async fn invalidating_a_tag_removes_its_entries_and_keeps_the_others(server: Redis) {
    let cache = server.cache("shop");
    for id in 0..5 {
        let key = format!("product:{id}");
        cache
            .set_tagged(&key, &id, MINUTE, &["products"])
            .await
            .unwrap();
    }
    cache
        .set_tagged("category:1", &"lamps", MINUTE, &["categories"])
        .await
        .unwrap();
    cache
        .set_tagged("product:9", &9, MINUTE, &["products", "featured"])
        .await
        .unwrap();
    cache.set("untagged", &1, MINUTE).await.unwrap();

    assert_eq!(cache.invalidate_tags(&["products"]).await.unwrap(), 6);
    for id in [0, 1, 2, 3, 4, 9] {
        assert!(
            !cache.exists(&format!("product:{id}")).await.unwrap(),
            "product:{id}"
        );
    }
    assert_eq!(
        cache.get::<String>("category:1").await.unwrap().as_deref(),
        Some("lamps")
    );
    assert_eq!(cache.get::<u32>("untagged").await.unwrap(), Some(1));
    // Invalidating again finds nothing; the other tag still works.
    assert_eq!(cache.invalidate_tags(&["products"]).await.unwrap(), 0);
    assert_eq!(
        cache
            .invalidate_tags(&["categories", "featured"])
            .await
            .unwrap(),
        1
    );
    assert_eq!(server.cmd(&["EXISTS", "shop:category:1"]).as_int(), 0);
}

async fn tag_bookkeeping_expires_with_its_entries(server: Redis) {
    let cache = server.cache("shop");
    for id in 0..50 {
        let tags = ["products".to_owned(), format!("category:{}", id % 5)];
        cache
            .set_tagged(
                &format!("product:{id}"),
                &id,
                Duration::from_millis(300),
                &tags,
            )
            .await
            .unwrap();
    }
    let live = tag_keys(&server, "shop");
    assert_eq!(live.len(), 6, "one record per tag: {live:?}");
    let usage = server
        .cmd(&["MEMORY", "USAGE", "shop:__tag:products"])
        .as_int();
    assert!(usage > 0, "the record takes memory while entries live");
    // Every record expires no earlier than its last entry, and no later.
    for key in &live {
        let ttl = server.cmd(&["PTTL", key]).as_int();
        assert!(
            (1..=300).contains(&ttl),
            "{key} expires with its entries: {ttl} ms"
        );
    }

    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        server.cmd(&["DBSIZE"]).as_int(),
        0,
        "entries and records are gone"
    );
    assert!(tag_keys(&server, "shop").is_empty());
    assert!(server
        .cmd(&["MEMORY", "USAGE", "shop:__tag:products"])
        .is_nil());
}

async fn a_tag_written_repeatedly_drops_its_expired_members(server: Redis) {
    let cache = server.cache("shop");
    // Short-lived entries under a tag that a long-lived entry keeps alive.
    cache
        .set_tagged("anchor", &0, MINUTE, &["feed"])
        .await
        .unwrap();
    for i in 0..100 {
        let key = format!("item:{i}");
        cache
            .set_tagged(&key, &i, Duration::from_secs(1), &["feed"])
            .await
            .unwrap();
    }
    // A second is far more than 100 writes take, even on a busy machine.
    assert_eq!(server.cmd(&["ZCARD", "shop:__tag:feed"]).as_int(), 101);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Each write prunes up to 64 expired members.
    cache
        .set_tagged("fresh:1", &1, MINUTE, &["feed"])
        .await
        .unwrap();
    cache
        .set_tagged("fresh:2", &2, MINUTE, &["feed"])
        .await
        .unwrap();
    assert_eq!(
        server.cmd(&["ZCARD", "shop:__tag:feed"]).as_int(),
        3,
        "only live members remain"
    );
}

/// 100,000 entries under one tag: removed in bounded batches. The slow log
/// records every command of the invalidation; the longest is printed (run
/// with `--nocapture` to see it), and every command's shape is checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidates_a_hundred_thousand_entries_in_batches() {
    const N: usize = 100_000;
    let server = RedisServer::start_with(&["--slowlog-max-len", "100000"]);
    let cache = Cache::builder()
        .redis(server.url())
        .prefix("big")
        .command_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let cache = cache.clone();
            tokio::spawn(async move {
                for i in (w..N).step_by(8) {
                    cache
                        .set_tagged(&format!("item:{i}"), &i, MINUTE, &["bulk"])
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    cache.set("other", &1, MINUTE).await.unwrap();
    assert_eq!(server.cmd(&["ZCARD", "big:__tag:bulk"]).as_int(), N as i64);

    server.cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    server.cmd(&["SLOWLOG", "RESET"]);
    let started = Instant::now();
    let removed = cache.invalidate_tags(&["bulk"]).await.unwrap();
    let total = started.elapsed();
    server.cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "10000"]);
    let log = server.cmd(&["SLOWLOG", "GET", "100000"]);

    assert_eq!(removed, N as u64);
    assert_eq!(
        server.cmd(&["DBSIZE"]).as_int(),
        2,
        "`other` and the tag's new version remain"
    );
    assert_eq!(server.cmd(&["EXISTS", "big:other"]).as_int(), 1);

    let mut longest = (0, String::new());
    let mut pops = 0;
    for entry in log.as_array() {
        let fields = entry.as_array();
        let micros = fields[2].as_int();
        let args: Vec<String> = fields[3]
            .as_array()
            .iter()
            .map(|a| a.as_string().unwrap_or_default())
            .collect();
        let command = args[0].to_uppercase();
        match command.as_str() {
            "ZRANGE" => {
                pops += 1;
                let (start, stop): (usize, usize) =
                    (args[2].parse().unwrap(), args[3].parse().unwrap());
                assert_eq!(stop + 1 - start, 1000, "read in batches of 1000");
            }
            // The slow log shows at most 32 arguments (the rest as "... (N
            // more arguments)"): read the count from there.
            "UNLINK" => {
                let more = args
                    .last()
                    .and_then(|a| a.strip_prefix("... ("))
                    .and_then(|a| a.split(' ').next())
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap_or(0);
                let keys = args.len() - 1 - usize::from(more > 0) + more;
                assert!(keys <= 1000, "UNLINK of {keys} keys");
            }
            // The script that moves the tag's record aside, and the
            // commands it runs (the slow log lists those too).
            "EVALSHA" | "EVAL" | "SCRIPT" | "EXISTS" | "RENAME" | "ZADD" | "PTTL" | "PEXPIRE" => {}
            "CONFIG" | "SLOWLOG" => {}
            other => panic!("unexpected command during invalidation: {other}"),
        }
        if std::env::var_os("TAGS_SLOWLOG").is_some() {
            println!("{micros:>6} us  {command}");
        }
        if micros > longest.0 {
            longest = (micros, command);
        }
    }
    assert!(pops >= N / 1000, "{pops} ZRANGE batches");
    println!(
        "invalidated {removed} entries in {total:?}; {} commands, the longest {} us ({})",
        log.as_array().len(),
        longest.0,
        longest.1
    );
}

on_server_and_cluster!(
    invalidating_a_tag_removes_its_entries_and_keeps_the_others,
    tag_bookkeeping_expires_with_its_entries,
    a_tag_written_repeatedly_drops_its_expired_members,
);
