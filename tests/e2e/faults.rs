//! The fault suite (issue 12): a real `redis-server` killed, stopped,
//! paused, cut off behind a [`FaultProxy`], its clients killed, its memory
//! full, while 64 tasks call a `#[cached]` function. Whatever happens, a
//! caller gets the body's value (never an error, never another key's
//! value) within one command deadline plus the body's time; the breaker
//! opens on an outage, and then no call waits on Redis but its probes;
//! caching resumes once Redis is back. Each test prints its counts on one
//! line (`cargo test --test e2e faults -- --nocapture` shows them).

use crate::support::*;
use cache_runtime::{cached, Cache};
use cache_test_support::{FaultProxy, Reply};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// The command deadline (the runtime's default, set explicitly).
const DEADLINE: Duration = Duration::from_millis(100);
/// The body's own time.
const BODY: Duration = Duration::from_millis(2);
/// Scheduling slack for a loaded machine, as in `fail_open.rs`: the bound
/// checked is "one deadline, not several, and never hanging".
const SLACK: Duration = Duration::from_millis(150);
/// The breaker's defaults, set explicitly: the assertions depend on them.
const THRESHOLD: u32 = 5;
const COOLDOWN: Duration = Duration::from_millis(500);
/// Concurrent callers.
const TASKS: usize = 64;
/// Distinct arguments: few enough that keys repeat, so hits happen.
const KEYS: u64 = 48;
/// Each task's pause between two calls, so that two of these tests at once
/// leave the two cores some room.
const PAUSE: Duration = Duration::from_millis(2);
/// A call slower than this waited on Redis: a skipped lookup costs the
/// body and microseconds.
const WAITED: Duration = Duration::from_millis(50);
/// How long the open breaker is watched.
const WINDOW: Duration = Duration::from_millis(800);
/// The target: L2 hits again within 1 s of Redis coming back.
const RECOVERY: Duration = Duration::from_secs(1);
/// A liveness bound on every wait, far above the figures measured: only
/// turns a hang into a failure.
const PATIENCE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(10);

/// The longest any call may take.
fn bound() -> Duration {
    DEADLINE + BODY + SLACK
}

fn expected(id: u64) -> u64 {
    id * 7 + 3
}

#[cached(ttl = 60, key = "v:{id}")]
async fn value(calls: &Calls, id: u64) -> Result<u64, String> {
    calls.hit();
    tokio::time::sleep(BODY).await;
    Ok(expected(id))
}

fn cache_at(url: &str, prefix: &str) -> Cache {
    builder(url, prefix).build().expect("valid settings")
}

fn builder(url: &str, prefix: &str) -> cache_runtime::CacheBuilder {
    Cache::builder()
        .redis(url)
        .prefix(prefix)
        .command_timeout(DEADLINE)
        .connect_timeout(Duration::from_millis(200))
        .breaker_threshold(THRESHOLD)
        .breaker_cooldown(COOLDOWN)
}

/// Hits answered by Redis (not by an L1).
fn l2_hits(cache: &Cache) -> u64 {
    let stats = cache.stats();
    stats.hits - stats.l1_hits
}

/// What the callers saw.
#[derive(Default)]
struct Tally {
    calls: AtomicU64,
    wrong: AtomicU64,
    errors: AtomicU64,
    /// Calls above [`bound`].
    slow: AtomicU64,
    /// Calls above [`WAITED`].
    waited: AtomicU64,
    max_micros: AtomicU64,
    first_bad: Mutex<Option<String>>,
}

impl Tally {
    fn record(&self, id: u64, got: &Result<u64, String>, took: Duration) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let bad = match got {
            Ok(v) if *v == expected(id) => None,
            Ok(v) => {
                self.wrong.fetch_add(1, Ordering::Relaxed);
                Some(format!(
                    "value({id}) returned Ok({v}), expected Ok({})",
                    expected(id)
                ))
            }
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                Some(format!("value({id}) returned Err({e:?})"))
            }
        };
        let bad = if took > bound() {
            self.slow.fetch_add(1, Ordering::Relaxed);
            bad.or_else(|| Some(format!("value({id}) took {took:?}")))
        } else {
            bad
        };
        if took > WAITED {
            self.waited.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.max_micros.fetch_max(micros, Ordering::Relaxed);
        if let Some(bad) = bad {
            self.first_bad
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(bad);
        }
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    fn max(&self) -> Duration {
        Duration::from_micros(Self::get(&self.max_micros))
    }

    fn first_bad(&self) -> String {
        self.first_bad
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default()
    }
}

/// [`TASKS`] tasks calling `value` with arguments in `0..KEYS`, until
/// stopped.
struct Load {
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    /// Task `i` calls through `caches[i % caches.len()]`.
    fn start(caches: &[Cache]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let calls = Arc::new(Calls::default());
        let tasks = (0..TASKS)
            .map(|i| {
                let cache = caches[i % caches.len()].clone();
                let (stop, tally, calls) = (stop.clone(), tally.clone(), calls.clone());
                tokio::spawn(async move {
                    let mut seed = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    while !stop.load(Ordering::Relaxed) {
                        seed = seed
                            .wrapping_mul(6_364_136_223_846_793_005)
                            .wrapping_add(1_442_695_040_888_963_407);
                        let id = (seed >> 33) % KEYS;
                        let started = Instant::now();
                        let got = cache.scope(value(&calls, id)).await;
                        tally.record(id, &got, started.elapsed());
                        tokio::time::sleep(PAUSE).await;
                    }
                })
            })
            .collect();
        Load { stop, tally, tasks }
    }

    /// (calls, calls that waited) so far.
    fn counts(&self) -> (u64, u64) {
        (
            Tally::get(&self.tally.calls),
            Tally::get(&self.tally.waited),
        )
    }

    async fn finish(self) -> Arc<Tally> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("a load task panicked");
        }
        self.tally
    }
}

/// Polls `done` every [`POLL`] for at most [`PATIENCE`]; the time from
/// `since` until it held.
async fn wait_for(
    what: &str,
    cache: &Cache,
    since: Instant,
    mut done: impl FnMut() -> bool,
) -> Duration {
    loop {
        if done() {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < PATIENCE,
            "{what}: not within {PATIENCE:?}; {:?}",
            cache.stats()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Waits for the load to get L2 hits on `cache` while Redis is healthy.
async fn warm(cache: &Cache) {
    wait_for("an L2 hit before the fault", cache, Instant::now(), || {
        l2_hits(cache) > 0
    })
    .await;
}

/// The one-line summary every test prints.
fn report(test: &str, tally: &Tally, cache: &Cache, extra: &str) {
    println!(
        "{test}: {} calls, {} wrong values, {} caller-visible errors, {} calls over {:?} \
         (max {:?}), {} waited > {WAITED:?}; {}{extra}",
        Tally::get(&tally.calls),
        Tally::get(&tally.wrong),
        Tally::get(&tally.errors),
        Tally::get(&tally.slow),
        bound(),
        tally.max(),
        Tally::get(&tally.waited),
        stats_line(cache),
    );
}

fn stats_line(cache: &Cache) -> String {
    let s = cache.stats();
    format!(
        "stats: {} hits ({} L1), {} misses, {} errors, breaker opens {}, skips {}",
        s.hits, s.l1_hits, s.misses, s.errors, s.breaker_opens, s.breaker_skips
    )
}

/// No wrong value, no error, no call over the bound.
fn assert_clean(test: &str, tally: &Tally) {
    let first = tally.first_bad();
    assert!(Tally::get(&tally.calls) > 0, "{test}: no calls");
    assert_eq!(Tally::get(&tally.wrong), 0, "{test}: wrong values; {first}");
    assert_eq!(
        Tally::get(&tally.errors),
        0,
        "{test}: caller-visible errors; {first}"
    );
    assert_eq!(
        Tally::get(&tally.slow),
        0,
        "{test}: calls over {:?} (max {:?}); {first}",
        bound(),
        tally.max()
    );
}

/// What an outage cost, measured around the breaker's opening.
struct Outage {
    /// From the fault to the breaker's opening.
    to_open: Duration,
    /// In the [`WINDOW`] after it opened (and the lookups already under
    /// way ended): calls, calls that waited, backend errors, skips.
    calls: u64,
    waited: u64,
    errors: u64,
    skips: u64,
    /// From the end of the fault to the next L2 hit.
    recovery: Duration,
}

impl Outage {
    fn summary(&self) -> String {
        format!(
            "; open after {:?}; in {WINDOW:?} open: {} calls, {} waited, {} errors (probes), \
             {} skips; time to recovery {:?}",
            self.to_open, self.calls, self.waited, self.errors, self.skips, self.recovery
        )
    }

    /// The open breaker kept calls off Redis: skips grew, errors grew only
    /// by its probes (one per cool-down), and only a probe's caller and the
    /// callers of its key (at most one per task) waited; then hits resumed.
    fn assert_held(&self, test: &str) {
        let probes = (WINDOW.as_millis() / COOLDOWN.as_millis()) as u64 + 1;
        assert!(self.skips > 0, "{test}: no lookup skipped while open");
        assert!(
            self.errors <= probes,
            "{test}: {} errors in {WINDOW:?} open, more than its {probes} probes",
            self.errors
        );
        assert!(
            self.waited <= self.errors.max(1) * TASKS as u64,
            "{test}: {} of {} calls waited on Redis in {WINDOW:?} open, with {} probes",
            self.waited,
            self.calls,
            self.errors
        );
        assert!(
            self.recovery <= RECOVERY,
            "{test}: L2 hits again only {:?} after the fault ended",
            self.recovery
        );
    }
}

/// Under the running load: `fault()`, then until the breaker opens, then a
/// [`WINDOW`] of the open breaker, then `end()` (which returns when the
/// fault ended) and the time until the next L2 hit.
async fn through_an_outage(
    cache: &Cache,
    load: &Load,
    fault: impl FnOnce(),
    end: impl FnOnce() -> Instant,
) -> Outage {
    warm(cache).await;
    let opens = cache.stats().breaker_opens;
    let started = Instant::now();
    fault();
    let to_open = wait_for("the breaker opening", cache, started, || {
        cache.stats().breaker_opens > opens
    })
    .await;
    // The lookups admitted before it opened end within one deadline.
    tokio::time::sleep(DEADLINE + SLACK).await;
    let (s0, (c0, w0)) = (cache.stats(), load.counts());
    tokio::time::sleep(WINDOW).await;
    let (s1, (c1, w1)) = (cache.stats(), load.counts());
    let hits = l2_hits(cache);
    let ended = end();
    let recovery = wait_for("an L2 hit after the fault", cache, ended, || {
        l2_hits(cache) > hits
    })
    .await;
    Outage {
        to_open,
        calls: c1 - c0,
        waited: w1 - w0,
        errors: s1.errors - s0.errors,
        skips: s1.breaker_skips - s0.breaker_skips,
        recovery,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_then_restart_on_the_same_port() {
    const TEST: &str = "kill -9 and restart";
    let mut server = RedisServer::start();
    let url = server.url();
    // Two instances under one load (half the tasks each): one without an
    // L1, one with.
    let plain = cache_at(&url, "faults-kill");
    let with_l1 = builder(&url, "faults-kill-l1")
        .l1_capacity(1 << 20)
        .build()
        .expect("valid settings");
    let load = Load::start(&[plain.clone(), with_l1.clone()]);
    warm(&plain).await;
    warm(&with_l1).await;
    wait_for("L1 hits before the fault", &with_l1, Instant::now(), || {
        with_l1.stats().l1_hits > 0
    })
    .await;

    let killed = Instant::now();
    server.kill();
    for cache in [&plain, &with_l1] {
        wait_for("the breaker opening", cache, killed, || {
            cache.stats().breaker_opens > 0
        })
        .await;
    }
    // Down long enough for probes to fail.
    tokio::time::sleep(COOLDOWN + DEADLINE + SLACK).await;
    let down = killed.elapsed();

    let (plain_hits, l1_l2_hits) = (l2_hits(&plain), l2_hits(&with_l1));
    let l1_hits = with_l1.stats().l1_hits;
    // Timed from the restart's start: the cache may reconnect before
    // `restart` has seen the server answer.
    let back = Instant::now();
    server.restart();
    let restart_took = back.elapsed();
    let mut recovered: [Option<Duration>; 2] = [None, None];
    wait_for("L2 hits after the restart", &plain, back, || {
        if recovered[0].is_none() && l2_hits(&plain) > plain_hits {
            recovered[0] = Some(back.elapsed());
        }
        if recovered[1].is_none() && l2_hits(&with_l1) > l1_l2_hits {
            recovered[1] = Some(back.elapsed());
        }
        recovered.iter().all(Option::is_some)
    })
    .await;
    let l1_again = wait_for("L1 hits after the restart", &with_l1, back, || {
        with_l1.stats().l1_hits > l1_hits
    })
    .await;
    let [plain_recovery, l1_recovery] = recovered.map(|r| r.expect("recovered"));
    let tally = load.finish().await;

    report(
        TEST,
        &tally,
        &plain,
        &format!(
            "; down {down:?}, restart took {restart_took:?}; time to recovery (first L2 hit \
             after the restart began) {plain_recovery:?}"
        ),
    );
    println!(
        "{TEST}, the instance with an L1: {}; time to recovery {l1_recovery:?}, to an L1 hit \
         {l1_again:?}",
        stats_line(&with_l1)
    );
    assert_clean(TEST, &tally);
    for cache in [&plain, &with_l1] {
        let stats = cache.stats();
        assert!(
            stats.breaker_opens >= 1 && stats.breaker_skips > 0,
            "{stats:?}"
        );
        assert!(!stats.breaker_open, "closed again: {stats:?}");
    }
    assert!(
        plain_recovery <= RECOVERY && l1_recovery <= RECOVERY,
        "L2 hits again {plain_recovery:?} (no L1) and {l1_recovery:?} (L1) after the restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstop_opens_the_breaker_and_sigcont_brings_hits_back() {
    const TEST: &str = "SIGSTOP";
    let server = RedisServer::start();
    let cache = cache_at(&server.url(), "faults-stop");
    let load = Load::start(std::slice::from_ref(&cache));
    let outage = through_an_outage(
        &cache,
        &load,
        || signal(&server, "-STOP"),
        || {
            let at = Instant::now();
            signal(&server, "-CONT");
            at
        },
    )
    .await;
    let tally = load.finish().await;
    report(TEST, &tally, &cache, &outage.summary());
    assert_clean(TEST, &tally);
    outage.assert_held(TEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_pause_opens_the_breaker_and_its_end_brings_hits_back() {
    const TEST: &str = "CLIENT PAUSE";
    const PAUSED: Duration = Duration::from_millis(2000);
    let server = RedisServer::start();
    let cache = cache_at(&server.url(), "faults-pause");
    let load = Load::start(std::slice::from_ref(&cache));
    let paused_at = std::cell::Cell::new(None);
    let outage = through_an_outage(
        &cache,
        &load,
        || {
            let ms = PAUSED.as_millis().to_string();
            // Before sending: the server's pause ends no earlier than this
            // plus its length, so the recovery is not under-measured.
            paused_at.set(Some(Instant::now()));
            let reply = server.cmd(&["CLIENT", "PAUSE", &ms, "ALL"]);
            assert_eq!(reply, Reply::Status("OK".into()));
        },
        || {
            // The server ends the pause by itself. (Blocks the test's own
            // thread, not the runtime's workers.)
            let until = paused_at.get().expect("paused") + PAUSED;
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
            Instant::now()
        },
    )
    .await;
    let tally = load.finish().await;
    report(TEST, &tally, &cache, &outage.summary());
    assert_clean(TEST, &tally);
    outage.assert_held(TEST);
}

/// Redis behind a proxy; `fault` applied to the proxy under the load, then
/// `pass()`.
async fn through_the_proxy(test: &str, prefix: &str, fault: impl FnOnce(&FaultProxy)) {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.addr());
    let cache = cache_at(&proxy.url(), prefix);
    let load = Load::start(std::slice::from_ref(&cache));
    let outage = through_an_outage(
        &cache,
        &load,
        || fault(&proxy),
        || {
            let at = Instant::now();
            proxy.pass();
            at
        },
    )
    .await;
    let tally = load.finish().await;
    report(
        test,
        &tally,
        &cache,
        &format!(
            "{}; proxy accepted {} connections",
            outage.summary(),
            proxy.accepted_connections()
        ),
    );
    assert_clean(test, &tally);
    outage.assert_held(test);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_dropping_connections() {
    through_the_proxy("proxy drop", "faults-drop", FaultProxy::drop_all).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_blackhole() {
    through_the_proxy("proxy blackhole", "faults-blackhole", FaultProxy::blackhole).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_delay_above_the_deadline() {
    // A round trip takes at least twice the delay: 160 ms, above 100 ms.
    through_the_proxy("proxy delay 80 ms", "faults-delay", |proxy| {
        proxy.delay(Duration::from_millis(80))
    })
    .await;
}

/// The ids of the server's normal clients but the one asking.
fn normal_clients(server: &RedisServer) -> Vec<u64> {
    let list = server
        .cmd(&["CLIENT", "LIST", "TYPE", "normal"])
        .as_string()
        .expect("CLIENT LIST");
    list.lines()
        .filter(|line| !line.contains(" cmd=client|list "))
        .filter_map(|line| line.strip_prefix("id="))
        .filter_map(|rest| rest.split(' ').next())
        .map(|id| id.parse().expect("a client id"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_kill_mid_load() {
    const TEST: &str = "CLIENT KILL TYPE normal";
    const ROUNDS: usize = 4;
    let server = RedisServer::start();
    let cache = cache_at(&server.url(), "faults-client-kill");
    let load = Load::start(std::slice::from_ref(&cache));
    warm(&cache).await;
    let mut killed = Vec::new();
    let mut reconnects = Vec::new();
    let mut recoveries = Vec::new();
    for _ in 0..ROUNDS {
        let mut before = Vec::new();
        wait_for("the cache connected", &cache, Instant::now(), || {
            before = normal_clients(&server);
            !before.is_empty()
        })
        .await;
        let at = Instant::now();
        killed.push(server.cmd(&["CLIENT", "KILL", "TYPE", "normal"]).as_int());
        // A hit counts once the cache is on a new connection: one on the
        // killed connection may be counted after the kill.
        reconnects.push(
            wait_for("a new connection after CLIENT KILL", &cache, at, || {
                normal_clients(&server)
                    .iter()
                    .any(|id| !before.contains(id))
            })
            .await,
        );
        let hits = l2_hits(&cache);
        recoveries.push(
            wait_for("an L2 hit after CLIENT KILL", &cache, at, || {
                l2_hits(&cache) > hits
            })
            .await,
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let tally = load.finish().await;
    report(
        TEST,
        &tally,
        &cache,
        &format!(
            "; {ROUNDS} kills, clients killed {killed:?}, reconnected after {reconnects:?}, \
             time to recovery (an L2 hit on the new connection) {recoveries:?}"
        ),
    );
    assert_clean(TEST, &tally);
    assert!(
        killed.iter().all(|&n| n >= 1),
        "each kill found the cache's connection: {killed:?}"
    );
    let slowest = recoveries.iter().max().expect("rounds");
    assert!(
        *slowest <= RECOVERY,
        "L2 hits again only {slowest:?} after a kill"
    );
}

/// A field of `INFO memory`, in bytes.
fn memory(server: &RedisServer, field: &str) -> u64 {
    let info = server.cmd(&["INFO", "memory"]).as_string().expect("INFO");
    let prefix = format!("{field}:");
    info.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|n| n.trim().parse().expect("a number"))
        .unwrap_or_else(|| panic!("no {field} in INFO memory"))
}

/// How far above its limit the server is filled: more than a connection's
/// own buffers, so that it stays above with the test's connections closed.
const MARGIN: u64 = 256 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maxmemory_noeviction_reads_served_writes_fail_open() {
    const TEST: &str = "maxmemory noeviction";
    const STORED: u64 = 16;
    let server =
        // Room for the values and the scripts (a fresh server uses about
        // 0.9 MB of it).
        RedisServer::start_with(&["--maxmemory", "2mb", "--maxmemory-policy", "noeviction"]);
    let cache = cache_at(&server.url(), "faults-oom");
    let calls = Calls::default();
    // Stored while there is room.
    for id in 0..STORED {
        assert_eq!(cache.scope(value(&calls, id)).await, Ok(expected(id)));
    }
    assert_eq!(calls.get(), STORED as usize);
    assert_eq!(cache.stats().errors, 0, "{:?}", cache.stats());
    let stored = keys(&server, "faults-oom:v:*").len();
    assert_eq!(stored, STORED as usize, "every value stored");

    // Fill the server past its limit with big values. A command is refused
    // when the memory in use, the asking connection's own buffers included,
    // is above the limit: filling until a filler is refused would leave the
    // server below the limit once the filler's connection closes, so the
    // limit is lifted while filling, then put back, with the data above it.
    let limit = memory(&server, "maxmemory");
    assert_eq!(limit, 2 << 20);
    let lift = server.cmd(&["CONFIG", "SET", "maxmemory", "0"]);
    assert_eq!(lift, Reply::Status("OK".into()));
    let big = "x".repeat(64 * 1024);
    let mut fillers = 0;
    while memory(&server, "used_memory") <= limit + MARGIN {
        assert!(fillers < 100, "never filled");
        let reply = server.cmd(&["SET", &format!("filler:{fillers}"), &big]);
        assert_eq!(reply, Reply::Status("OK".into()), "filling");
        fillers += 1;
    }
    let back = server.cmd(&["CONFIG", "SET", "maxmemory", &limit.to_string()]);
    assert_eq!(back, Reply::Status("OK".into()));
    let used = memory(&server, "used_memory");
    let refused = server.cmd(&["SET", "probe", "x"]);
    assert!(
        matches!(&refused, Reply::Error(e) if e.starts_with("OOM")),
        "{refused:?}"
    );

    // Reads of stored keys: hits, the body does not run.
    let before = cache.stats();
    for id in 0..STORED {
        assert_eq!(cache.scope(value(&calls, id)).await, Ok(expected(id)));
    }
    let after_reads = cache.stats();
    assert_eq!(calls.get(), STORED as usize, "served from Redis");
    assert_eq!(after_reads.hits - before.hits, STORED, "{after_reads:?}");
    assert_eq!(after_reads.errors, before.errors, "{after_reads:?}");

    // New keys: a miss, the body's value, a refused write counted.
    const NEW: u64 = 20;
    for id in 1000..1000 + NEW {
        let started = Instant::now();
        assert_eq!(cache.scope(value(&calls, id)).await, Ok(expected(id)));
        assert!(started.elapsed() <= bound(), "{:?}", started.elapsed());
    }
    let after_writes = cache.stats();
    assert_eq!(calls.get(), (STORED + NEW) as usize);
    assert_eq!(after_writes.misses - after_reads.misses, NEW);
    assert_eq!(
        after_writes.errors - after_reads.errors,
        NEW,
        "each refused write counted: {after_writes:?}"
    );
    assert!(
        server.cmd(&["EXISTS", "faults-oom:v:1000"]).as_int() == 0,
        "refused"
    );

    // Refused writes in a row through the direct API: error replies, not an
    // outage, so the breaker stays closed.
    for i in 0..2 * THRESHOLD {
        let err = cache
            .set(&format!("direct:{i}"), &i, Duration::from_secs(60))
            .await
            .expect_err("OOM");
        assert!(!err.is_circuit_open(), "{err}");
        assert!(err.to_string().contains("OOM"), "{err}");
    }

    // And under load: stored keys hit, the others fail open.
    let load = Load::start(std::slice::from_ref(&cache));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let tally = load.finish().await;
    let stats = cache.stats();
    report(
        TEST,
        &tally,
        &cache,
        &format!(
            "; {fillers} fillers of 64 KiB, used_memory {used} of {limit}, {STORED} keys stored \
             before, {NEW} refused writes counted one by one"
        ),
    );
    assert_clean(TEST, &tally);
    assert!(stats.hits > after_writes.hits, "{stats:?}");
    assert!(stats.errors > after_writes.errors, "{stats:?}");
    assert_eq!(
        (stats.breaker_open, stats.breaker_opens, stats.breaker_skips),
        (false, 0, 0),
        "OOM is an error reply, not an outage: {stats:?}"
    );
}
