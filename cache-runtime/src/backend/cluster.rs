//! What a Redis Cluster needs beyond one server: keys' slots, the library's
//! own keys placed in the slot of the key they belong with, and commands
//! sent to every node or to one.
//!
//! On a cluster a script or a transaction may only touch keys of one slot.
//! The library keeps that rule without changing the layout users see: an
//! entry stays at `{prefix}:{key}`, a tag's set at `{prefix}:__tag:{tag}`,
//! and only keys that exist for a moment next to another (a tag's set moved
//! aside while it is invalidated, a write-behind's dead letters) are named
//! so that they hash to their partner's slot ([`sibling`]).

use redis::cluster_routing::{
    MultipleNodeRoutingInfo, ResponsePolicy, Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr,
};

/// Slots in a Redis Cluster.
const SLOTS: u16 = 16384;

/// The part of `key` Redis hashes: the text between the first `{` and the
/// first `}` after it, if that is not empty; else the whole key.
fn hashed_part(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&b| b == b'}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

/// The slot of `key`, as Redis computes it (`CLUSTER KEYSLOT`).
pub(crate) fn slot(key: &[u8]) -> u16 {
    crc16::State::<crc16::XMODEM>::calculate(hashed_part(key)) % SLOTS
}

/// A key in the same slot as `key` that starts with `key` and ends with
/// `suffix`, so that an ACL key pattern that covers `key` (`~shop:*`)
/// covers it too: `key` + `suffix` when `key` has a hash tag of its own
/// (`{...}`), else `key{key}` + `suffix` (the whole of `key` becomes the
/// hash tag). A key with a brace but no hash tag (a tag named `}x`, say)
/// cannot be its own hash tag; then a short hash tag of the same slot is
/// found by counting and put before the first brace, so that the key
/// still starts with everything before it (the prefix, normally).
///
/// ```text
/// shop:__tag:products       -> shop:__tag:products{shop:__tag:products}<suffix>
/// {shop}:__tag:products     -> {shop}:__tag:products<suffix>
/// shop:__tag:}x             -> shop:__tag:{<n>}}x<suffix>
/// ```
pub(crate) fn sibling(key: &str, suffix: &str) -> String {
    let bytes = key.as_bytes();
    if hashed_part(bytes).len() < bytes.len() {
        return format!("{key}{suffix}");
    }
    let Some(brace) = key.find(['{', '}']) else {
        return format!("{key}{{{key}}}{suffix}");
    };
    let want = slot(bytes);
    // About 16384 tries on average: only for such odd keys, once per use.
    let tag = (0u32..)
        .map(|n| n.to_string())
        .find(|n| slot(n.as_bytes()) == want)
        .expect("every slot has a decimal number that hashes to it");
    let (before, after) = key.split_at(brace);
    format!("{before}{{{tag}}}{after}{suffix}")
}

/// Every primary; each must answer. Not the replicas: a replica that is
/// down (a killed primary, say, still listed until it is forgotten) must
/// not fail a health check or the L1's tracking while every slot is
/// served.
pub(crate) fn every_primary() -> RoutingInfo {
    RoutingInfo::MultiNode((
        MultipleNodeRoutingInfo::AllMasters,
        Some(ResponsePolicy::AllSucceeded),
    ))
}

/// The primary that serves `key`'s slot.
pub(crate) fn primary_of(key: &[u8]) -> RoutingInfo {
    RoutingInfo::SingleNode(primary_route(key))
}

/// [`primary_of`], for a pipeline.
pub(crate) fn primary_route(key: &[u8]) -> SingleNodeRoutingInfo {
    SingleNodeRoutingInfo::SpecificNode(Route::new(slot(key), SlotAddr::Master))
}

/// The node at `host:port`.
pub(crate) fn node(host: &str, port: u16) -> RoutingInfo {
    RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
        host: host.to_owned(),
        port,
    })
}

/// The primaries' addresses in a `CLUSTER SLOTS` reply (each range:
/// start, end, then the primary's `[host, port, id, ...]`, then replicas),
/// each once, in the order they first appear.
pub(crate) fn primaries(reply: &redis::Value) -> Vec<(String, u16)> {
    let mut out: Vec<(String, u16)> = Vec::new();
    let redis::Value::Array(ranges) = reply else {
        return out;
    };
    for range in ranges {
        let redis::Value::Array(parts) = range else {
            continue;
        };
        let Some(redis::Value::Array(primary)) = parts.get(2) else {
            continue;
        };
        let host = match primary.first() {
            Some(redis::Value::BulkString(h)) => String::from_utf8_lossy(h).into_owned(),
            Some(redis::Value::SimpleString(h)) => h.clone(),
            _ => continue,
        };
        let port = match primary.get(1) {
            Some(redis::Value::Int(p)) => u16::try_from(*p).ok(),
            _ => None,
        };
        if let Some(port) = port {
            if !out.iter().any(|(h, p)| *h == host && *p == port) {
                out.push((host, port));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from `CLUSTER KEYSLOT` on Redis 7.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"bar"), 5061);
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_eq!(slot(b"foo{}{bar}"), slot(b"foo{}{bar}"));
        assert_ne!(
            slot(b"foo{}{bar}"),
            slot(b"bar"),
            "an empty tag hashes the whole key"
        );
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
        assert_eq!(slot(b"foo{bar}{zap}"), slot(b"bar"));
    }

    #[test]
    fn siblings_share_the_slot() {
        for key in [
            "shop:__tag:products",
            "{shop}:__tag:products",
            "shop:__tag:{products}",
            "shop:__tag:}odd",
            "shop:__tag:a}b{",
            "shop:__tag:{}",
            "shop:__tag:{",
        ] {
            let s = sibling(key, "\0aside:1f");
            assert_eq!(slot(s.as_bytes()), slot(key.as_bytes()), "{key} -> {s:?}");
            assert!(s.ends_with("\0aside:1f"), "{s:?}");
            // What comes before a brace stays in front: the prefix, for
            // an ACL key pattern.
            let plain = &key[..key.find(['{', '}']).unwrap_or(key.len())];
            assert!(s.starts_with(plain), "{s:?} starts with {plain:?}");
        }
        for key in ["shop:__tag:products", "{shop}:__tag:products"] {
            assert!(sibling(key, ":x").starts_with(key), "{key}");
        }
        assert_eq!(
            sibling("shop:__tag:products", ":x"),
            "shop:__tag:products{shop:__tag:products}:x"
        );
        let odd = sibling("shop:__tag:}x", ":x");
        assert!(odd.starts_with("shop:__tag:{"), "{odd:?}");
        assert!(odd.ends_with("}}x:x"), "{odd:?}");
        assert_eq!(
            sibling("{shop}:__wb:orders", ":dead"),
            "{shop}:__wb:orders:dead"
        );
    }

    #[test]
    fn primaries_are_read_from_cluster_slots() {
        use redis::Value::{Array, BulkString, Int};
        let node = |port: i64| {
            Array(vec![
                BulkString(b"127.0.0.1".to_vec()),
                Int(port),
                BulkString(b"id".to_vec()),
            ])
        };
        let reply = Array(vec![
            Array(vec![Int(0), Int(5460), node(7000), node(7003)]),
            Array(vec![Int(5461), Int(10922), node(7001), node(7004)]),
            Array(vec![Int(10923), Int(16000), node(7002), node(7005)]),
            Array(vec![Int(16001), Int(16383), node(7002), node(7005)]),
        ]);
        assert_eq!(
            primaries(&reply),
            vec![
                ("127.0.0.1".to_owned(), 7000),
                ("127.0.0.1".to_owned(), 7001),
                ("127.0.0.1".to_owned(), 7002)
            ]
        );
        assert!(primaries(&Int(1)).is_empty());
    }
}
