//! What Redis itself reports: [`Cache::server_info`](crate::Cache::server_info).

/// Figures from Redis's `INFO`, from [`Cache::server_info`](crate::Cache::server_info).
///
/// On one server they are that server's; on a cluster, each primary's are
/// in [`nodes`](ServerInfo::nodes) and the fields are their sums (replicas
/// are left out: they hold copies of the primaries' keys and answer none of
/// the cache's reads). A sum of peaks ([`used_memory_peak`](ServerInfo::used_memory_peak))
/// is an upper bound: the nodes need not have peaked at once.
///
/// The counters (hits, misses, commands, evictions, expirations) count from
/// the server's start or its last `CONFIG RESETSTAT`, for every client of
/// the server, not only this process.
///
/// ```
/// let info = cache_runtime::ServerInfo::parse(
///     "# Stats\r\nkeyspace_hits:3\r\nkeyspace_misses:1\r\n# Keyspace\r\ndb0:keys=7,expires=7,avg_ttl=0\r\n",
/// );
/// assert_eq!(info.hit_rate(), 0.75);
/// assert_eq!(info.keys, 7);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerInfo {
    /// Client connections open (`connected_clients`), from every process.
    pub connected_clients: u64,
    /// Bytes the server has allocated (`used_memory`).
    pub used_memory: u64,
    /// The most bytes it has had allocated at once (`used_memory_peak`).
    pub used_memory_peak: u64,
    /// Lookups that found a key (`keyspace_hits`).
    pub keyspace_hits: u64,
    /// Lookups that found none (`keyspace_misses`).
    pub keyspace_misses: u64,
    /// Commands the server has run (`total_commands_processed`).
    pub total_commands_processed: u64,
    /// Keys removed to stay under `maxmemory` (`evicted_keys`): a cache
    /// that is too small for its working set shows it here first.
    pub evicted_keys: u64,
    /// Keys removed because their TTL ran out (`expired_keys`).
    pub expired_keys: u64,
    /// Keys held, in every database of the server (the `# Keyspace` section).
    pub keys: u64,
    /// One entry per node asked: the server itself, or every primary of a
    /// cluster. Each node's own [`nodes`](ServerInfo::nodes) is empty.
    pub nodes: Vec<NodeInfo>,
}

/// One node's [`ServerInfo`]: where it is and what it reported.
///
/// ```
/// let node = cache_runtime::NodeInfo {
///     address: "127.0.0.1:6379".into(),
///     info: cache_runtime::ServerInfo::parse("connected_clients:2\r\n"),
/// };
/// assert_eq!(node.info.connected_clients, 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node's address, as the client reached it (`host:port`).
    pub address: String,
    /// What it reported.
    pub info: ServerInfo,
}

impl ServerInfo {
    /// `keyspace_hits / (keyspace_hits + keyspace_misses)`, or 0 before the
    /// first lookup. Redis counts every client's reads of every key, so on
    /// a server shared with other work this is the server's hit rate, not
    /// the cache's (for that, see [`Stats::hit_rate`](crate::Stats::hit_rate)).
    ///
    /// ```
    /// assert_eq!(cache_runtime::ServerInfo::default().hit_rate(), 0.0);
    /// ```
    #[must_use]
    pub fn hit_rate(&self) -> f64 {
        crate::stats::hit_rate(self.keyspace_hits, self.keyspace_misses)
    }

    /// Reads the text of Redis's `INFO` reply. Fields it does not have (an
    /// older server, a section left out) are 0; it never fails.
    ///
    /// ```
    /// let info = cache_runtime::ServerInfo::parse("used_memory:1024\r\nevicted_keys:x\r\n");
    /// assert_eq!((info.used_memory, info.evicted_keys), (1024, 0));
    /// ```
    #[must_use]
    pub fn parse(text: &str) -> ServerInfo {
        let mut info = ServerInfo::default();
        for line in text.lines() {
            let Some((name, value)) = line.trim_end().split_once(':') else {
                continue;
            };
            let number = || value.parse::<u64>().unwrap_or(0);
            match name {
                "connected_clients" => info.connected_clients = number(),
                "used_memory" => info.used_memory = number(),
                "used_memory_peak" => info.used_memory_peak = number(),
                "keyspace_hits" => info.keyspace_hits = number(),
                "keyspace_misses" => info.keyspace_misses = number(),
                "total_commands_processed" => info.total_commands_processed = number(),
                "evicted_keys" => info.evicted_keys = number(),
                "expired_keys" => info.expired_keys = number(),
                // `db0:keys=1,expires=0,avg_ttl=0`
                db if db.len() > 2
                    && db.starts_with("db")
                    && db[2..].bytes().all(|b| b.is_ascii_digit()) =>
                {
                    let keys = value
                        .split(',')
                        .find_map(|part| part.strip_prefix("keys="))
                        .and_then(|n| n.parse::<u64>().ok());
                    info.keys = info.keys.saturating_add(keys.unwrap_or(0));
                }
                _ => {}
            }
        }
        info
    }

    /// The sums over `nodes`, which it keeps.
    pub(crate) fn summed(nodes: Vec<NodeInfo>) -> ServerInfo {
        let mut sum = ServerInfo::default();
        for node in &nodes {
            let n = &node.info;
            sum.connected_clients = sum.connected_clients.saturating_add(n.connected_clients);
            sum.used_memory = sum.used_memory.saturating_add(n.used_memory);
            sum.used_memory_peak = sum.used_memory_peak.saturating_add(n.used_memory_peak);
            sum.keyspace_hits = sum.keyspace_hits.saturating_add(n.keyspace_hits);
            sum.keyspace_misses = sum.keyspace_misses.saturating_add(n.keyspace_misses);
            sum.total_commands_processed = sum
                .total_commands_processed
                .saturating_add(n.total_commands_processed);
            sum.evicted_keys = sum.evicted_keys.saturating_add(n.evicted_keys);
            sum.expired_keys = sum.expired_keys.saturating_add(n.expired_keys);
            sum.keys = sum.keys.saturating_add(n.keys);
        }
        sum.nodes = nodes;
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str =
        "# Server\r\nredis_version:7.0.15\r\n\r\n# Clients\r\nconnected_clients:4\r\n\
        # Memory\r\nused_memory:1000\r\nused_memory_human:1000B\r\nused_memory_peak:2000\r\n\
        # Stats\r\ntotal_commands_processed:50\r\nexpired_keys:2\r\nevicted_keys:1\r\n\
        keyspace_hits:9\r\nkeyspace_misses:3\r\n\r\n# Keyspace\r\n\
        db0:keys=5,expires=5,avg_ttl=100\r\ndb3:keys=2,expires=0,avg_ttl=0\r\n";

    #[test]
    fn every_field_is_read_from_the_info_text() {
        let info = ServerInfo::parse(INFO);
        assert_eq!(
            info,
            ServerInfo {
                connected_clients: 4,
                used_memory: 1000,
                used_memory_peak: 2000,
                keyspace_hits: 9,
                keyspace_misses: 3,
                total_commands_processed: 50,
                evicted_keys: 1,
                expired_keys: 2,
                keys: 7,
                nodes: Vec::new(),
            }
        );
        assert_eq!(info.hit_rate(), 0.75);
    }

    #[test]
    fn a_cluster_sums_its_nodes_and_keeps_them() {
        let node = |address: &str| NodeInfo {
            address: address.into(),
            info: ServerInfo::parse(INFO),
        };
        let sum = ServerInfo::summed(vec![node("a:1"), node("b:2")]);
        assert_eq!(
            (sum.keys, sum.keyspace_hits, sum.used_memory),
            (14, 18, 2000)
        );
        assert_eq!(sum.nodes.len(), 2);
        assert_eq!(sum.nodes[1].address, "b:2");
        assert_eq!(sum.hit_rate(), 0.75);
    }

    #[test]
    fn garbage_reads_as_zero_and_never_panics() {
        for text in [
            "",
            ":",
            "db:keys=1",
            "db:keys=x",
            "dbx:keys=1",
            "keys=1",
            "\u{0}\r\n:::",
        ] {
            let info = ServerInfo::parse(text);
            assert_eq!(info.keys, 0, "{text:?}");
        }
        let huge = format!("db0:keys={max}\r\ndb1:keys={max}\r\n", max = u64::MAX);
        assert_eq!(ServerInfo::parse(&huge).keys, u64::MAX, "saturates");
    }
}
