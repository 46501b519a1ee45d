//! Write-behind against real redis-server processes, with SQLite as the
//! database behind it.

use crate::support::*;
use cache_runtime::write_behind::{Item, Sink, SinkError, WriteBehind};
use cache_runtime::Cache;
use cache_test_support::Reply;
use rusqlite::Connection;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// A SQLite table `kv(key, value, ver_ms, ver_seq)`, upserted keeping the
/// highest version; counts its calls and each key's deliveries, and fails
/// its first `fail_first` calls.
struct Sqlite {
    db: Mutex<Connection>,
    calls: AtomicUsize,
    fail_first: usize,
    deliveries: Mutex<HashMap<String, usize>>,
}

impl Sqlite {
    fn new(fail_first: usize) -> Arc<Self> {
        let db = Connection::open_in_memory().unwrap();
        db.execute_batch(
            "CREATE TABLE kv (key TEXT PRIMARY KEY, value INTEGER NOT NULL,
                              ver_ms INTEGER NOT NULL, ver_seq INTEGER NOT NULL)",
        )
        .unwrap();
        Arc::new(Sqlite {
            db: Mutex::new(db),
            calls: AtomicUsize::new(0),
            fail_first,
            deliveries: Mutex::default(),
        })
    }

    fn rows(&self) -> HashMap<String, u64> {
        let db = self.db.lock().unwrap();
        let mut stmt = db.prepare("SELECT key, value FROM kv").unwrap();
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })
            .unwrap();
        rows.map(Result::unwrap).collect()
    }

    fn deliveries(&self, key: &str) -> usize {
        self.deliveries
            .lock()
            .unwrap()
            .get(key)
            .copied()
            .unwrap_or(0)
    }
}

/// The sink side of a shared [`Sqlite`].
struct Shared(Arc<Sqlite>);

impl Sink<u64> for Shared {
    async fn write(&self, batch: Vec<Item<u64>>) -> Result<(), SinkError> {
        let this = &self.0;
        let call = this.calls.fetch_add(1, Ordering::SeqCst);
        if call < this.fail_first {
            return Err(format!("database unavailable (call {call})").into());
        }
        let mut db = this.db.lock().unwrap();
        let tx = db.transaction()?;
        for item in &batch {
            tx.execute(
                "INSERT INTO kv (key, value, ver_ms, ver_seq) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                   ver_ms = excluded.ver_ms, ver_seq = excluded.ver_seq
                 WHERE (excluded.ver_ms, excluded.ver_seq) > (kv.ver_ms, kv.ver_seq)",
                rusqlite::params![
                    item.key,
                    item.value as i64,
                    item.version.ms() as i64,
                    item.version.seq() as i64
                ],
            )?;
        }
        tx.commit()?;
        let mut deliveries = this.deliveries.lock().unwrap();
        for item in batch {
            *deliveries.entry(item.key).or_default() += 1;
        }
        Ok(())
    }
}

const STREAM: &str = "wb:__wb:orders";

/// The bound of every wait: generous, so only a bug (not a slow machine)
/// reaches it.
const LIMIT: Duration = Duration::from_secs(60);

/// A cache on `server`, with a command timeout that a loaded machine does
/// not reach.
fn wb_cache(server: &Redis) -> Cache {
    wb_builder(server.builder())
}

/// The tests' settings on `builder`.
fn wb_builder(builder: cache_runtime::CacheBuilder) -> Cache {
    builder
        .prefix("wb")
        .command_timeout(Duration::from_secs(2))
        .build()
        .expect("valid settings")
}

/// The tests' cache on the Redis at `url`.
fn wb_cache_on(url: &str) -> Cache {
    wb_builder(Cache::builder().redis(url))
}

/// Awaits `fut`, failing the test if it takes longer than [`LIMIT`].
async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(LIMIT, fut).await {
        Ok(out) => out,
        Err(_) => panic!("{what} did not finish within {LIMIT:?}"),
    }
}

/// Waits until `cond` holds, failing the test after [`LIMIT`].
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    within(what, async {
        while !cond() {
            tokio::time::sleep(SHORT).await;
        }
    })
    .await
}

fn stream_len(server: &Redis) -> i64 {
    server.cmd(&["XLEN", STREAM]).as_int()
}

/// Writes `writes` values over `keys` keys from `tasks` tasks (each task
/// owns the keys `k % tasks == t`, so each key's writes are ordered), the
/// `i`-th write setting `k{i % keys}` to `i`; returns the expected value of
/// each key.
async fn write_many(
    wb: &WriteBehind<u64>,
    writes: u64,
    keys: u64,
    tasks: u64,
) -> HashMap<String, u64> {
    let mut handles = Vec::new();
    for t in 0..tasks {
        let wb = wb.clone();
        handles.push(tokio::spawn(async move {
            for i in (0..writes).filter(|i| (i % keys) % tasks == t) {
                wb.write(&format!("k{}", i % keys), &i).await.unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    (0..keys)
        .map(|k| {
            let last = (0..writes).rev().find(|i| i % keys == k).unwrap();
            (format!("k{k}"), last)
        })
        .collect()
}

async fn ten_thousand_writes_reach_sqlite_with_the_latest_value_per_key(server: Redis) {
    let cache = wb_cache(&server);
    let sink = Sqlite::new(0);
    let wb = cache
        .write_behind("orders", Shared(sink.clone()))
        .start()
        .unwrap();
    let expected = within("the writes", write_many(&wb, 10_000, 1_000, 8)).await;
    assert_eq!(cache.get::<u64>("k999").await.unwrap(), Some(9_999));
    within("flush", wb.flush()).await.unwrap();

    let rows = sink.rows();
    assert_eq!(rows.len(), 1_000);
    for (key, value) in &expected {
        assert_eq!(rows.get(key), Some(value), "{key}");
    }
    assert_eq!(stream_len(&server), 0, "delivered entries are deleted");
    let pending = server.cmd(&["XPENDING", STREAM, "flushers"]);
    assert_eq!(pending.as_array()[0].as_int(), 0, "and acknowledged");
    within("shutdown", wb.shutdown()).await.unwrap();
    assert_eq!(cache.stats().errors, 0);
}

async fn several_writes_to_one_key_before_a_flush_reach_the_sink_once(server: Redis) {
    let cache = wb_cache(&server);
    let sink = Sqlite::new(0);
    let wb = cache
        .write_behind("orders", Shared(sink.clone()))
        .interval(Duration::from_secs(3600))
        .start()
        .unwrap();
    for v in 1..=5 {
        wb.write("hot", &v).await.unwrap();
        wb.write(&format!("cold{v}"), &v).await.unwrap();
    }
    within("flush", wb.flush()).await.unwrap();
    assert_eq!(sink.deliveries("hot"), 1);
    assert_eq!(sink.rows()["hot"], 5);
    assert_eq!(sink.rows().len(), 6);
    wb.write("hot", &6).await.unwrap();
    within("flush", wb.flush()).await.unwrap();
    assert_eq!(sink.deliveries("hot"), 2, "a later write is a new delivery");
    assert_eq!(sink.rows()["hot"], 6);
    within("shutdown", wb.shutdown()).await.unwrap();
}

async fn a_sink_failing_its_first_five_calls_delays_but_loses_nothing(server: Redis) {
    let cache = wb_cache(&server);
    let sink = Sqlite::new(5);
    let wb = cache
        .write_behind("orders", Shared(sink.clone()))
        .max_backoff(Duration::from_millis(50))
        .start()
        .unwrap();
    let expected = within("the writes", write_many(&wb, 1_000, 100, 4)).await;
    within("flush", wb.flush()).await.unwrap();
    assert!(sink.calls.load(Ordering::SeqCst) > 5);
    assert_eq!(sink.rows(), expected);
    assert_eq!(stream_len(&server), 0);
    within("shutdown", wb.shutdown()).await.unwrap();
}

async fn shutdown_drains_and_leaves_the_group_clean(server: Redis) {
    let cache = wb_cache(&server);
    let sink = Sqlite::new(0);
    let wb = cache
        .write_behind("orders", Shared(sink.clone()))
        .interval(Duration::from_secs(3600))
        .consumer("worker-1")
        .start()
        .unwrap();
    let expected = within("the writes", write_many(&wb, 300, 300, 1)).await;
    assert!(stream_len(&server) > 0, "nothing flushed yet");
    within("shutdown", wb.shutdown()).await.unwrap();
    assert_eq!(sink.rows(), expected);
    assert_eq!(stream_len(&server), 0);
    let consumers = server.cmd(&["XINFO", "CONSUMERS", STREAM, "flushers"]);
    assert!(
        consumers.as_array().is_empty(),
        "a drained consumer leaves: {consumers:?}"
    );
    assert!(matches!(
        wb.write("late", &1).await,
        Err(cache_runtime::CacheError::WriteBehindStopped { .. })
    ));
    assert!(!cache.exists("late").await.unwrap());
}

async fn shutdown_with_a_sink_that_always_fails_gives_up_and_leaves_the_batch_pending(
    server: Redis,
) {
    let cache = wb_cache(&server);
    let sink = Sqlite::new(usize::MAX);
    let wb = cache
        .write_behind("orders", Shared(sink.clone()))
        .max_backoff(Duration::from_millis(50))
        .shutdown_timeout(Duration::from_millis(300))
        .start()
        .unwrap();
    within("the writes", write_many(&wb, 20, 20, 1)).await;
    let err = within("shutdown", wb.shutdown()).await.unwrap_err();
    assert!(
        matches!(&err, cache_runtime::CacheError::WriteBehindNotDrained { name, .. } if name == "orders"),
        "{err}"
    );
    assert!(sink.calls.load(Ordering::SeqCst) > 0);
    assert_eq!(stream_len(&server), 20, "nothing is lost");
    let pending = server.cmd(&["XPENDING", STREAM, "flushers"]);
    assert!(
        pending.as_array()[0].as_int() > 0,
        "left pending: {pending:?}"
    );
}

#[tokio::test]
async fn shutdown_reports_redis_failing_while_it_drains() {
    let mut server = Redis::server();
    let cache = wb_cache(&server);
    let sink = Sqlite::new(0);
    let wb = cache
        .write_behind("orders", Shared(sink.clone()))
        .interval(Duration::from_secs(3600))
        .shutdown_timeout(Duration::from_secs(5))
        .start()
        .unwrap();
    within("the writes", write_many(&wb, 20, 20, 1)).await;
    server.server_mut().kill();
    let err = within("shutdown", wb.shutdown()).await.unwrap_err();
    assert!(
        matches!(
            &err,
            cache_runtime::CacheError::WriteBehindNotDrained { .. }
        ),
        "{err}"
    );
}

async fn every_write_that_succeeded_before_shutdown_is_delivered(server: Redis) {
    let cache = wb_cache(&server);
    let sink = Sqlite::new(0);
    let wb = cache
        .write_behind("orders", Shared(sink.clone()))
        .interval(Duration::from_secs(3600))
        .start()
        .unwrap();
    let mut writers = Vec::new();
    for t in 0..4u64 {
        let wb = wb.clone();
        writers.push(tokio::spawn(async move {
            let mut ok = Vec::new();
            for i in 0u64.. {
                let key = format!("w{t}:{i}");
                match wb.write(&key, &i).await {
                    Ok(_) => ok.push(key),
                    Err(cache_runtime::CacheError::WriteBehindStopped { .. }) => return ok,
                    Err(e) => panic!("{e}"),
                }
            }
            unreachable!()
        }));
    }
    // Shut down while the writers are busy.
    until("some writes", || {
        server.cmd(&["XLEN", STREAM]).as_int() > 50
    })
    .await;
    within("shutdown", wb.shutdown()).await.unwrap();
    let rows = sink.rows();
    let mut total = 0;
    for w in writers {
        let ok = within("the writers", w).await.unwrap();
        total += ok.len();
        for key in ok {
            assert!(
                rows.contains_key(&key),
                "{key} was written but not delivered"
            );
        }
    }
    assert_eq!(rows.len(), total);
    assert_eq!(stream_len(&server), 0);
}

async fn consumers_left_idle_with_nothing_pending_are_removed_from_the_group(server: Redis) {
    let cache = wb_cache(&server);
    let sink = Sqlite::new(0);
    let wb = cache
        .write_behind("orders", Shared(sink.clone()))
        .consumer("alive")
        .claim_idle(Duration::from_millis(50))
        .start()
        .unwrap();
    wb.write("k", &1).await.unwrap();
    within("flush", wb.flush()).await.unwrap();
    // Consumers of processes that died: one idle with nothing pending, one
    // holding an entry (claimed from it, then removed too).
    server.cmd(&["XGROUP", "CREATECONSUMER", STREAM, "flushers", "ghost"]);
    server.cmd(&["XADD", STREAM, "*", "k", "held", "v", "x"]);
    server.cmd(&[
        "XREADGROUP",
        "GROUP",
        "flushers",
        "holder",
        "COUNT",
        "1",
        "STREAMS",
        STREAM,
        ">",
    ]);
    let names = || -> Vec<String> {
        server
            .cmd(&["XINFO", "CONSUMERS", STREAM, "flushers"])
            .as_array()
            .iter()
            .map(|c| format!("{:?}", c.as_array()[1]))
            .collect()
    };
    assert!(
        names().iter().any(|n| n.contains("ghost")),
        "not idle long enough to go yet: {:?}",
        names()
    );
    until("the dead consumers to be removed", || {
        let names = names();
        !names
            .iter()
            .any(|n| n.contains("ghost") || n.contains("holder"))
    })
    .await;
    assert_eq!(
        stream_len(&server),
        0,
        "the held entry was claimed (and dead-lettered)"
    );
    wb.write("k", &2).await.unwrap();
    within("flush", wb.flush()).await.unwrap();
    assert_eq!(sink.rows()["k"], 2);
    within("shutdown", wb.shutdown()).await.unwrap();
}

#[tokio::test]
async fn a_redis_refusing_client_commands_still_flushes() {
    // As some managed services do: no CLIENT ID, no CLIENT UNBLOCK.
    let server = Redis::Server(RedisServer::start_with(&["--rename-command", "CLIENT", ""]));
    let refused = server.cmd(&["CLIENT", "ID"]);
    assert!(matches!(refused, Reply::Error(_)), "{refused:?}");
    let cache = wb_cache_on(&server.server_only().url());
    let sink = Sqlite::new(0);
    let wb = cache
        .write_behind("orders", Shared(sink.clone()))
        .interval(Duration::from_secs(3600))
        .start()
        .unwrap();
    let expected = within("the writes", write_many(&wb, 100, 10, 2)).await;
    within("flush", wb.flush()).await.unwrap();
    assert_eq!(sink.rows(), expected);
    within("shutdown", wb.shutdown()).await.unwrap();
    assert_eq!(stream_len(&server), 0);
}

async fn undecodable_entries_go_to_the_dead_letter_stream_and_the_rest_reach_the_sink(
    server: Redis,
) {
    let cache = wb_cache(&server);
    let sink = Sqlite::new(0);
    let wb = cache
        .write_behind("orders", Shared(sink.clone()))
        .interval(Duration::from_secs(3600))
        .start()
        .unwrap();
    // Entries another program (or another version of the value type) wrote.
    server.cmd(&["XADD", STREAM, "*", "k", "bad", "v", "not an envelope"]);
    server.cmd(&["XADD", STREAM, "*", "something", "else"]);
    wb.write("good", &1).await.unwrap();
    wb.write("dup", &2).await.unwrap();
    // The latest write of `dup` is unreadable: the readable one before it
    // is still delivered.
    server.cmd(&["XADD", STREAM, "*", "k", "dup", "v", "garbage"]);
    wb.write("after", &3).await.unwrap();
    within("flush", wb.flush()).await.unwrap();

    let rows = sink.rows();
    assert_eq!(
        rows,
        HashMap::from([("good".into(), 1), ("dup".into(), 2), ("after".into(), 3)])
    );
    assert_eq!(
        stream_len(&server),
        0,
        "nothing is left blocking the stream"
    );
    // On a cluster, named into the stream's slot (and starting with the
    // stream's name, for an ACL key pattern).
    let dead_key = if server.is_cluster() {
        format!("{STREAM}{{{STREAM}}}:dead")
    } else {
        format!("{STREAM}:dead")
    };
    let dead = server.cmd(&["XRANGE", &dead_key, "-", "+"]);
    let dead: Vec<String> = dead
        .as_array()
        .iter()
        .map(|e| format!("{:?}", e.as_array()[1]))
        .collect();
    assert_eq!(dead.len(), 3, "{dead:?}");
    assert!(
        dead[0].contains("bad") && dead[0].contains("not an envelope"),
        "{dead:?}"
    );
    assert!(
        dead[1].contains("something") && dead[1].contains("else"),
        "{dead:?}"
    );
    assert!(
        dead[2].contains("dup") && dead[2].contains("garbage"),
        "{dead:?}"
    );
    // Each dead letter also says which entry it was and why.
    let names: Vec<Vec<String>> = server
        .cmd(&["XRANGE", &dead_key, "-", "+"])
        .as_array()
        .iter()
        .map(|e| {
            e.as_array()[1]
                .as_array()
                .iter()
                .step_by(2)
                .filter_map(|f| f.as_string())
                .collect()
        })
        .collect();
    for fields in &names {
        assert!(
            fields.iter().any(|f| f == "id") && fields.iter().any(|f| f == "error"),
            "{names:?}"
        );
    }
    assert_eq!(cache.stats().decode_failures, 3);
    within("shutdown", wb.shutdown()).await.unwrap();
}

async fn entries_left_pending_by_a_dead_consumer_are_claimed(server: Redis) {
    recovery(server, "dead", "alive", Duration::from_millis(200)).await;
}

async fn a_flusher_restarted_under_its_name_takes_its_entries_back_at_once(server: Redis) {
    // Claiming entries idle in the group would take an hour: only the
    // flusher's own list of read, unacknowledged entries brings them back.
    recovery(server, "worker-1", "worker-1", Duration::from_secs(3600)).await;
}

/// A flusher named `dead` dies with entries pending; one named `next`, with
/// `claim_idle`, delivers every one of them, and the dead one stays dead.
async fn recovery(server: Redis, dead: &'static str, next: &str, claim_idle: Duration) {
    let cache = wb_cache(&server);
    let (expected, stuck, calls) = a_process_that_dies(&server, dead).await;
    let sink = Sqlite::new(0);
    let second = cache
        .write_behind("orders", Shared(sink.clone()))
        .consumer(next)
        .claim_idle(claim_idle)
        .start()
        .unwrap();
    // `second` wrote nothing, so its flush() has nothing to wait for: poll.
    until("the pending entries reaching the sink", || {
        sink.rows().len() == expected.len()
    })
    .await;
    assert_eq!(sink.rows(), expected);
    within("shutdown", second.shutdown()).await.unwrap();
    assert_eq!(stream_len(&server), 0);
    assert_eq!(
        stuck.calls.load(Ordering::SeqCst),
        calls,
        "the dead flusher no longer runs"
    );
}

/// A process that dies with entries pending: on a runtime and cache of its
/// own, a flusher named `consumer` whose sink never succeeds takes 50 writes
/// and reads them; then the runtime is shut down, which stops its tasks
/// without acknowledging anything, as a crash would. Returns the rows the
/// writes should produce, the stuck sink and how many calls it had.
async fn a_process_that_dies(
    server: &Redis,
    consumer: &'static str,
) -> (HashMap<String, u64>, Arc<Sqlite>, usize) {
    let builder = server.builder();
    let stuck = Sqlite::new(usize::MAX);
    let stuck2 = stuck.clone();
    let dead = tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (expected, first) = runtime.block_on(async {
            let first = wb_builder(builder)
                .write_behind("orders", Shared(stuck2.clone()))
                .consumer(consumer)
                .start()
                .unwrap();
            let expected = within("the writes", write_many(&first, 50, 50, 1)).await;
            until("the first sink call", || {
                stuck2.calls.load(Ordering::SeqCst) > 0
            })
            .await;
            (expected, first)
        });
        // The process dies: its flusher task ends mid-retry.
        runtime.shutdown_timeout(LIMIT);
        drop(first);
        expected
    });
    let expected = within("the first process", dead).await.unwrap();
    let calls = stuck.calls.load(Ordering::SeqCst);
    let pending = server.cmd(&["XPENDING", STREAM, "flushers"]);
    assert!(pending.as_array()[0].as_int() > 0, "{pending:?}");
    (expected, stuck, calls)
}

/// The example's SQLite rows: order key to total.
fn order_rows(db: &Path) -> HashMap<String, u64> {
    let db = Connection::open(db).unwrap();
    let mut stmt = db.prepare("SELECT key, total FROM orders").unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

#[test]
fn a_writer_killed_mid_flush_loses_no_write() {
    killed_mid_flush(&Redis::server());
}

#[test]
fn a_writer_killed_mid_flush_loses_no_write_on_the_cluster() {
    killed_mid_flush(&Redis::cluster());
}

/// The writer (the example, a process of its own) is killed while its
/// sink holds a batch; a second run drains what it left.
fn killed_mid_flush(server: &Redis) {
    const WRITES: u64 = 10_000;
    const KEYS: u64 = 1_000;
    let dir = TempDir::new("wb-kill");
    let db = dir.0.join("orders.db");
    let exe = example_binary("write_behind");
    let target = match server {
        Redis::Server(s) => ["--redis".to_owned(), s.url()],
        Redis::Cluster(c, _) => ["--redis-cluster".to_owned(), c.urls().join(",")],
    };
    let run = |extra: &[&str]| {
        let mut cmd = Command::new(&exe);
        cmd.args(&target)
            .arg("--db")
            .arg(&db)
            .args(["--writes", &WRITES.to_string(), "--keys", &KEYS.to_string()])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    };

    // A slow sink: each batch sleeps 300 ms before its transaction commits.
    let mut writer = Killed(run(&["--slow-ms", "300"]).spawn().unwrap());
    let writer = &mut writer.0;
    let (tx, lines) = mpsc::channel();
    let stdout = writer.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let mut wait_for = |prefix: &str| loop {
        match lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.starts_with(prefix) => return line,
            Ok(_) => {}
            Err(e) => {
                let _ = writer.kill();
                let mut err = String::new();
                let _ = writer.stderr.take().unwrap().read_to_string(&mut err);
                panic!("no `{prefix}` line from the writer ({e}); its stderr:\n{err}");
            }
        }
    };
    wait_for("written:");
    // All writes are in Redis; kill it while the sink holds a batch.
    wait_for("batch started");
    writer.kill().unwrap(); // SIGKILL
    writer.wait().unwrap();

    let latest = |k: u64| WRITES - KEYS + k;
    let before = order_rows(&db);
    let current_before = (0..KEYS)
        .filter(|&k| before.get(&format!("order:{k}")) == Some(&latest(k)))
        .count();
    let in_stream = server.cmd(&["XLEN", "shop:__wb:orders"]).as_int();
    let pending = server
        .cmd(&["XPENDING", "shop:__wb:orders", "flushers"])
        .as_array()[0]
        .as_int();
    assert!(
        current_before < KEYS as usize && pending > 0,
        "the kill must interrupt a flush: {current_before} rows current, {pending} pending"
    );

    // The drain writes its output to files (no pipe to fill) and is killed
    // if it does not end in time.
    let log = |name: &str| std::fs::File::create(dir.0.join(name)).unwrap();
    let drain = run(&["--drain", "--consumer", "drainer"])
        .stdout(log("drain.out"))
        .stderr(log("drain.err"))
        .spawn()
        .unwrap();
    let status = Killed(drain).wait(LIMIT);
    let stderr = std::fs::read_to_string(dir.0.join("drain.err")).unwrap_or_default();
    assert!(
        status.is_some_and(|s| s.success()),
        "drain failed or timed out ({status:?}):\n{stderr}"
    );
    let after = order_rows(&db);
    println!(
        "written {WRITES} over {KEYS} keys; before the kill: {} rows ({current_before} current), \
         {in_stream} entries in the stream ({pending} read but unacknowledged); \
         after the restart: {} rows",
        before.len(),
        after.len()
    );
    assert_eq!(after.len(), KEYS as usize);
    for k in 0..KEYS {
        assert_eq!(
            after.get(&format!("order:{k}")),
            Some(&latest(k)),
            "order:{k}"
        );
    }
    assert_eq!(server.cmd(&["XLEN", "shop:__wb:orders"]).as_int(), 0);
}

/// A child process killed (by its pid) on drop, so that a failing test
/// leaves nothing running.
struct Killed(std::process::Child);

impl Killed {
    /// Waits for the exit, at most `limit`: `None` (and the child killed)
    /// if it runs longer.
    fn wait(mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None; // killed by drop
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill(); // SIGKILL to this child's pid
            let _ = self.0.wait();
        }
    }
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = std::env::temp_dir().join(format!("{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

on_server_and_cluster!(
    ten_thousand_writes_reach_sqlite_with_the_latest_value_per_key [flavor = "multi_thread", worker_threads = 2],
    several_writes_to_one_key_before_a_flush_reach_the_sink_once,
    a_sink_failing_its_first_five_calls_delays_but_loses_nothing,
    shutdown_drains_and_leaves_the_group_clean,
    shutdown_with_a_sink_that_always_fails_gives_up_and_leaves_the_batch_pending,
    every_write_that_succeeded_before_shutdown_is_delivered [flavor = "multi_thread", worker_threads = 2],
    consumers_left_idle_with_nothing_pending_are_removed_from_the_group,
    undecodable_entries_go_to_the_dead_letter_stream_and_the_rest_reach_the_sink,
    entries_left_pending_by_a_dead_consumer_are_claimed [flavor = "multi_thread", worker_threads = 2],
    a_flusher_restarted_under_its_name_takes_its_entries_back_at_once [flavor = "multi_thread", worker_threads = 2],
);
