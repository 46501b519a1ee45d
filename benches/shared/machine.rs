//! What the throughput and invalidation tools share about where they run:
//! one tokio multi-thread runtime of [`WORKERS`] workers, and the machine's
//! facts for the top of each report. Included with `#[path]` into each.

use cache_test_support::RedisServer;

/// Worker threads of the runtime.
pub const WORKERS: usize = 2;

/// The runtime every measurement runs on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The machine's facts as a markdown list: cores, CPU model, kernel, the
/// `redis-server` version and port, the runtime's workers.
pub fn machine_facts(server: &RedisServer) -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let info = server
        .cmd(&["INFO", "server"])
        .as_string()
        .unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| "?".into())
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "?".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".into());
    format!(
        "- cores (available_parallelism): {cores}\n\
         - cpu: {cpu}\n\
         - kernel: {kernel}\n\
         - redis-server: {} ({}), on 127.0.0.1:{}, persistence off\n\
         - tokio: multi-thread runtime, {WORKERS} workers; redis-server shares the same cores\n",
        field("redis_version:"),
        field("redis_mode:"),
        server.port()
    )
}
