//! Keys: templates with fields, hashed keys, their stability.

use crate::support::*;
use cache_runtime::{cache_evict, cached, Cache};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    id: u64,
    org: Org,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Org {
    slug: String,
}

#[cached(
    ttl = 60,
    key = "org:{user.org.slug}:user:{user.id}:{{literal}}:{pair.1}"
)]
async fn profile(calls: &Calls, user: &User, pair: (u8, u16)) -> String {
    calls.hit();
    format!("{}-{}", user.id, pair.1)
}

#[tokio::test]
async fn templates_reach_nested_fields_and_tuple_fields() {
    let (server, cache) = redis_cache("app");
    let calls = Calls::default();
    let user = User {
        id: 9,
        org: Org {
            slug: "acme".into(),
        },
    };
    let v = cache.scope(profile(&calls, &user, (1, 500))).await;
    assert_eq!(v, "9-500");
    assert_eq!(keys(&server, "*"), ["app:org:acme:user:9:{literal}:500"]);
    cache.scope(profile(&calls, &user, (2, 500))).await;
    assert_eq!(calls.get(), 1, "pair.0 is not in the key, so this is a hit");
}

#[cached(ttl = 60, skip(calls))]
async fn price_list(calls: &Calls, region: String, quantities: HashMap<String, u32>) -> u64 {
    calls.hit();
    quantities.values().map(|&q| u64::from(q)).sum::<u64>() + region.len() as u64
}

fn quantities(reverse: bool) -> HashMap<String, u32> {
    let mut items: Vec<(String, u32)> = (0..20).map(|i| (format!("sku-{i}"), i)).collect();
    if reverse {
        items.reverse();
    }
    // A fresh map with its own random hash seed each time.
    let mut map = HashMap::new();
    map.extend(items);
    map
}

#[tokio::test]
async fn hashed_keys_ignore_map_order_and_skip_skipped_args() {
    let (server, cache) = redis_cache("app");
    let calls = Calls::default();
    let other_calls = Calls::default();
    cache
        .scope(async {
            price_list(&calls, "eu".into(), quantities(false)).await;
            // Another counter (skipped), another insertion order, another seed: same key.
            price_list(&other_calls, "eu".into(), quantities(true)).await;
            assert_eq!((calls.get(), other_calls.get()), (1, 0));
            price_list(&calls, "us".into(), quantities(false)).await;
            assert_eq!(calls.get(), 2, "another region is another key");
        })
        .await;
    let stored = keys(&server, "*");
    assert_eq!(stored.len(), 2, "{stored:?}");
    let name = "app:e2e::keys::price_list:";
    assert!(
        stored
            .iter()
            .all(|k| k.starts_with(name) && k.len() == name.len() + 64),
        "{stored:?}"
    );
}

#[cached(ttl = 60, name = "pinned-v1")]
async fn pinned(id: u64, tags: Vec<String>) -> usize {
    tags.len() + id as usize
}

#[tokio::test]
async fn a_hashed_key_is_pinned_across_releases() {
    // If this key changes, every deployed cache misses after an upgrade:
    // that needs a new KEY_ENCODING_VERSION, not an edit of this string.
    let cache = Cache::builder().memory().prefix("p").build().unwrap();
    cache.scope(pinned(7, vec!["a".into(), "b".into()])).await;
    let key = cache
        .hashed_key("pinned-v1", &(7u64, ["a", "b"].as_slice()))
        .unwrap();
    assert_eq!(
        key,
        "p:pinned-v1:147a0ad9fa0843b6384b1234f566d3ae7b4d3e9ed0ca1e69b8e429e0f07b42bf"
    );
    assert!(
        cache.exists(&key["p:".len()..]).await.unwrap(),
        "#[cached] stored it under {key}"
    );
}

#[tokio::test]
async fn hashed_key_is_identical_across_processes() {
    let server = RedisServer::start();
    let run = |order: &str| {
        let exe = example_binary("hashed_key");
        let out = std::process::Command::new(&exe)
            .args([server.url().as_str(), order])
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", exe.display()));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let first = run("forward");
    let second = run("reverse");
    assert!(first.contains("miss"), "first process must miss: {first}");
    assert!(
        second.contains("hit"),
        "second process must hit the first one's key: {second}"
    );
    let stored = keys(&server, "*");
    assert_eq!(stored.len(), 1, "{stored:?}");
    let key_of = |out: &str| out.split("key=").nth(1).map(|k| k.trim().to_owned());
    assert_eq!(key_of(&first), Some(stored[0].clone()), "{first}");
    assert_eq!(key_of(&second), Some(stored[0].clone()), "{second}");
}

#[cached(ttl = 60, skip(calls))]
async fn tagged(
    calls: &Calls,
    tags: &std::collections::HashSet<String>,
    sorted: std::collections::BTreeSet<u32>,
) -> usize {
    calls.hit();
    tags.len() + sorted.len()
}

#[tokio::test]
async fn set_arguments_are_hashed_in_no_order() {
    use std::collections::{BTreeSet, HashSet};
    let (server, cache) = redis_cache("app");
    let calls = Calls::default();
    let words: Vec<String> = (0..30).map(|i| format!("tag-{i}")).collect();
    // Sets built in opposite orders, each with its own random hash seed.
    let forward: HashSet<String> = words.iter().cloned().collect();
    let backward: HashSet<String> = words.iter().rev().cloned().collect();
    assert_ne!(
        forward.iter().collect::<Vec<_>>(),
        backward.iter().collect::<Vec<_>>(),
        "the two sets iterate in different orders (else this test proves nothing)"
    );
    let numbers = BTreeSet::from([3, 1, 2]);
    cache
        .scope(async {
            tagged(&calls, &forward, numbers.clone()).await;
            tagged(&calls, &backward, numbers.clone()).await;
        })
        .await;
    assert_eq!(calls.get(), 1, "one key for equal sets");
    let key = cache
        .hashed_key(
            "e2e::keys::tagged",
            &(
                cache_runtime::UnorderedSet::new(&backward),
                cache_runtime::UnorderedSet::new(&numbers),
            ),
        )
        .unwrap();
    assert_eq!(keys(&server, "*"), [key]);
}

#[cached(ttl = 60, key = "pair:{a}-{b}", tags = ["pairs_{a}"])]
async fn dashed(calls: &Calls, a: &str, b: &str) -> String {
    calls.hit();
    format!("{a}|{b}")
}

#[cache_evict(pattern = "pair:{a}-*")]
async fn forget_dashed(a: &str) {}

#[tokio::test]
async fn any_separator_keeps_placeholder_values_apart() {
    let (server, cache) = redis_cache("app");
    let calls = Calls::default();
    cache
        .scope(async {
            assert_eq!(dashed(&calls, "1", "2-3").await, "1|2-3");
            // The same text once the values are put in: without escaping
            // the `-`, this call would read the first one's value.
            assert_eq!(dashed(&calls, "1-2", "3").await, "1-2|3");
            assert_eq!(calls.get(), 2);
        })
        .await;
    let mut stored = keys(&server, "app:pair:*");
    stored.sort();
    assert_eq!(stored, ["app:pair:1%2D2-3", "app:pair:1-2%2D3"]);
    // A tag template escapes the punctuation of its own text (`_`).
    let mut tags = keys(&server, "app:__tag:*");
    tags.sort();
    assert_eq!(tags, ["app:__tag:pairs_1", "app:__tag:pairs_1-2"]);

    // The pattern escapes its value as the key template did, so it
    // removes the entries of `a = "1-2"` only.
    cache.scope(forget_dashed("1-2")).await;
    assert_eq!(keys(&server, "app:pair:*"), ["app:pair:1-2%2D3"]);
}

/// A `Display` that writes part of the value, then fails.
struct Failing;

impl std::fmt::Display for Failing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("1")?;
        Err(std::fmt::Error)
    }
}

#[cache_evict(pattern = "pair:{a}-*")]
async fn forget_failing(calls: &Calls, a: &Failing) {
    calls.hit();
}

#[tokio::test]
async fn a_failing_display_in_a_pattern_skips_it_without_a_panic() {
    let (server, cache) = redis_cache("app");
    let calls = Calls::default();
    cache.scope(dashed(&calls, "1", "2")).await;
    cache.scope(forget_failing(&calls, &Failing)).await;
    assert_eq!(calls.get(), 2, "the body ran");
    // Not the truncated `pair:1-*`, which would have matched this key.
    assert_eq!(keys(&server, "app:pair:*"), ["app:pair:1-2"]);
}
