//! The in-process write-behind on the memory store.

use super::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Records every item it is given; fails its first `fail_first` calls.
#[derive(Default)]
struct Recorder {
    items: Mutex<Vec<Item<u64>>>,
    calls: AtomicUsize,
    fail_first: usize,
}

impl Sink<u64> for Arc<Recorder> {
    async fn write(&self, batch: Vec<Item<u64>>) -> Result<(), SinkError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        if call < self.fail_first {
            return Err(format!("refusing call {call}").into());
        }
        self.items.lock().unwrap().extend(batch);
        Ok(())
    }
}

impl Recorder {
    fn latest(&self) -> HashMap<String, (u64, Version)> {
        let mut out: HashMap<String, (u64, Version)> = HashMap::new();
        for i in self.items.lock().unwrap().iter() {
            let e = out.entry(i.key.clone()).or_insert((i.value, i.version));
            if i.version >= e.1 {
                *e = (i.value, i.version);
            }
        }
        out
    }

    fn deliveries_of(&self, key: &str) -> usize {
        self.items
            .lock()
            .unwrap()
            .iter()
            .filter(|i| i.key == key)
            .count()
    }
}

/// A write-behind to `sink` that delivers only when flushed or shut down
/// (its interval is an hour).
fn on_demand(cache: &Cache, sink: &Arc<Recorder>) -> WriteBehind<u64> {
    cache
        .write_behind("orders", sink.clone())
        .interval(Duration::from_secs(3600))
        .start()
        .unwrap()
}

fn memory() -> Cache {
    Cache::builder().memory().prefix("t").build().unwrap()
}

#[tokio::test]
async fn writes_are_readable_at_once_and_reach_the_sink_on_flush() {
    let cache = memory();
    let sink = Arc::new(Recorder::default());
    let wb: WriteBehind<u64> = on_demand(&cache, &sink);
    for i in 0..50u64 {
        wb.write(&format!("order:{i}"), &i).await.unwrap();
    }
    assert_eq!(cache.get::<u64>("order:7").await.unwrap(), Some(7));
    // The interval is an hour: only flush() can have delivered them.
    wb.flush().await.unwrap();
    let latest = sink.latest();
    assert_eq!(latest.len(), 50);
    assert!((0..50u64).all(|i| latest[&format!("order:{i}")].0 == i));
    wb.shutdown().await.unwrap();
}

#[tokio::test]
async fn several_writes_to_one_key_reach_the_sink_once_with_the_latest_value() {
    let cache = memory();
    let sink = Arc::new(Recorder::default());
    let wb = WriteBehind::builder(&cache, "orders", sink.clone())
        .interval(Duration::from_secs(3600))
        .start()
        .unwrap();
    let mut versions = Vec::new();
    for v in 1..=5u64 {
        versions.push(wb.write("order:1", &v).await.unwrap());
        wb.write(&format!("other:{v}"), &v).await.unwrap();
    }
    assert!(versions.windows(2).all(|w| w[0] < w[1]));
    wb.flush().await.unwrap();
    assert_eq!(sink.deliveries_of("order:1"), 1);
    assert_eq!(sink.latest()["order:1"], (5, versions[4]));
    // Items come in the order of their (latest) writes.
    let order: Vec<Version> = sink
        .items
        .lock()
        .unwrap()
        .iter()
        .map(|i| i.version)
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    wb.shutdown().await.unwrap();
}

#[tokio::test]
async fn batches_respect_the_batch_size() {
    let cache = memory();
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let seen = sizes.clone();
    let wb = cache
        .write_behind("sized", move |batch: Vec<Item<u64>>| {
            seen.lock().unwrap().push(batch.len());
            async { Ok::<_, std::io::Error>(()) }
        })
        .batch_size(7)
        .start()
        .unwrap();
    for i in 0..30u64 {
        wb.write(&format!("k{i}"), &i).await.unwrap();
    }
    wb.shutdown().await.unwrap();
    let sizes = sizes.lock().unwrap();
    assert_eq!(sizes.iter().sum::<usize>(), 30);
    assert!(sizes.iter().all(|&n| n <= 7), "{sizes:?}");
}

#[tokio::test]
async fn a_failing_sink_delays_but_loses_nothing() {
    let cache = memory();
    let sink = Arc::new(Recorder {
        fail_first: 3,
        ..Recorder::default()
    });
    let wb = cache
        .write_behind("orders", sink.clone())
        .max_backoff(Duration::from_millis(20))
        .start()
        .unwrap();
    for i in 0..10u64 {
        wb.write(&format!("order:{i}"), &(i * 10)).await.unwrap();
    }
    wb.flush().await.unwrap();
    assert!(sink.calls.load(Ordering::SeqCst) >= 4);
    let latest = sink.latest();
    assert_eq!(latest.len(), 10);
    assert!((0..10u64).all(|i| latest[&format!("order:{i}")].0 == i * 10));
    wb.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_panicking_sink_is_retried() {
    let cache = memory();
    let calls = Arc::new(AtomicUsize::new(0));
    let stored = Arc::new(Mutex::new(Vec::new()));
    let (c, s) = (calls.clone(), stored.clone());
    let wb = cache
        .write_behind("p", move |batch: Vec<Item<u64>>| {
            let first = c.fetch_add(1, Ordering::SeqCst) == 0;
            let s = s.clone();
            async move {
                assert!(!first, "the sink's first call panics");
                s.lock().unwrap().extend(batch.into_iter().map(|i| i.value));
                Ok::<_, std::io::Error>(())
            }
        })
        .max_backoff(Duration::from_millis(10))
        .start()
        .unwrap();
    wb.write("k", &42).await.unwrap();
    wb.flush().await.unwrap();
    assert_eq!(*stored.lock().unwrap(), [42]);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn shutdown_drains_then_refuses_writes() {
    let cache = memory();
    let sink = Arc::new(Recorder::default());
    let wb = on_demand(&cache, &sink);
    let clone = wb.clone();
    for i in 0..100u64 {
        clone.write(&format!("order:{i}"), &i).await.unwrap();
    }
    wb.shutdown().await.unwrap();
    assert_eq!(
        sink.latest().len(),
        100,
        "shutdown delivers everything first"
    );
    let err = clone.write("late", &1).await.unwrap_err();
    assert!(
        matches!(&err, CacheError::WriteBehindStopped { name } if name == "orders"),
        "{err}"
    );
    assert!(
        !cache.exists("late").await.unwrap(),
        "a refused write stores nothing"
    );
    wb.shutdown().await.unwrap(); // a second call returns at once
    clone.flush().await.unwrap(); // everything written was delivered
}

#[tokio::test]
async fn shutdown_with_a_sink_that_always_fails_gives_up_after_the_shutdown_timeout() {
    let cache = memory();
    let sink = Arc::new(Recorder {
        fail_first: usize::MAX,
        ..Recorder::default()
    });
    let wb = cache
        .write_behind("orders", sink.clone())
        .max_backoff(Duration::from_millis(20))
        .shutdown_timeout(Duration::from_millis(200))
        .start()
        .unwrap();
    wb.write("order:1", &1).await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(60), wb.shutdown())
        .await
        .expect("shutdown ends once the shutdown timeout is over")
        .unwrap_err();
    assert!(
        matches!(&err, CacheError::WriteBehindNotDrained { name, .. } if name == "orders"),
        "{err}"
    );
    assert!(err.to_string().contains("shutdown timeout"), "{err}");
    assert!(sink.calls.load(Ordering::SeqCst) > 0);
    assert!(sink.items.lock().unwrap().is_empty());
    // A second call reports the same.
    let again = tokio::time::timeout(Duration::from_secs(60), wb.shutdown())
        .await
        .expect("a second shutdown returns at once");
    assert!(
        matches!(again, Err(CacheError::WriteBehindNotDrained { .. })),
        "{again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_that_succeeded_before_shutdown_is_delivered() {
    let cache = memory();
    let sink = Arc::new(Recorder::default());
    let wb = on_demand(&cache, &sink);
    let written = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut writers = Vec::new();
    for t in 0..4u64 {
        let (wb, written) = (wb.clone(), written.clone());
        writers.push(tokio::spawn(async move {
            let mut ok = Vec::new();
            for i in 0.. {
                let key = format!("w{t}:{i}");
                match wb.write(&key, &i).await {
                    Ok(_) => {
                        ok.push(key);
                        written.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(CacheError::WriteBehindStopped { .. }) => return ok,
                    Err(e) => panic!("{e}"),
                }
                tokio::task::yield_now().await;
            }
            unreachable!()
        }));
    }
    // Shut down while the writers are busy, once they have written some.
    wb.write("first", &0).await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), async {
        while written.load(std::sync::atomic::Ordering::Relaxed) < 200 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the writers write");
    tokio::time::timeout(Duration::from_secs(60), wb.shutdown())
        .await
        .expect("shutdown ends")
        .unwrap();
    let delivered = sink.latest();
    let mut checked = 0;
    for w in writers {
        let ok = tokio::time::timeout(Duration::from_secs(60), w)
            .await
            .expect("writers end once stopped")
            .unwrap();
        for key in ok {
            assert!(
                delivered.contains_key(&key),
                "{key} was written but not delivered"
            );
            checked += 1;
        }
    }
    assert!(checked >= 200, "only {checked} writes were checked");
}

#[tokio::test]
async fn dropping_the_last_handle_still_delivers() {
    let cache = memory();
    let sink = Arc::new(Recorder::default());
    let wb = cache.write_behind("orders", sink.clone()).start().unwrap();
    wb.write("order:1", &1).await.unwrap();
    drop(wb);
    for _ in 0..200 {
        if !sink.latest().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sink.latest()["order:1"].0, 1);
}

#[tokio::test]
async fn concurrent_writers_leave_cache_and_sink_agreeing() {
    let cache = memory();
    let sink = Arc::new(Recorder::default());
    let wb = cache.write_behind("orders", sink.clone()).start().unwrap();
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let wb = wb.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50u64 {
                wb.write(&format!("k{}", i % 5), &(t * 1000 + i))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    wb.flush().await.unwrap();
    let latest = sink.latest();
    for k in 0..5 {
        let key = format!("k{k}");
        assert_eq!(
            cache.get::<u64>(&key).await.unwrap(),
            Some(latest[&key].0),
            "{key}"
        );
    }
    wb.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_settings_are_refused() {
    let cache = memory();
    let sink = |_: Vec<Item<u64>>| async { Ok::<_, std::io::Error>(()) };
    let err = |r: Result<WriteBehind<u64>, CacheError>| match r.unwrap_err() {
        CacheError::Config { setting, .. } => setting,
        other => panic!("{other}"),
    };
    assert_eq!(
        err(cache.write_behind("", sink).start()),
        "write_behind.name"
    );
    assert_eq!(
        err(cache
            .write_behind("x", sink)
            .interval(Duration::ZERO)
            .start()),
        "write_behind.interval"
    );
    assert_eq!(
        err(cache.write_behind("x", sink).ttl(Duration::ZERO).start()),
        "write_behind.ttl"
    );
    assert_eq!(
        err(cache.write_behind("x", sink).consumer("").start()),
        "write_behind.consumer"
    );
}

#[tokio::test]
async fn batch_sizes_redis_cannot_read_are_refused() {
    let cache = memory();
    let sink = |_: Vec<Item<u64>>| async { Ok::<_, std::io::Error>(()) };
    for n in [usize::MAX, MAX_BATCH_SIZE + 1] {
        let err = cache
            .write_behind("x", sink)
            .batch_size(n)
            .start()
            .unwrap_err();
        assert!(err.to_string().contains("at most 100000"), "{err}");
        assert!(
            matches!(
                err,
                CacheError::Config {
                    setting: "write_behind.batch_size",
                    ..
                }
            ),
            "{err}"
        );
    }
    let wb: WriteBehind<u64> = cache
        .write_behind("x", sink)
        .batch_size(MAX_BATCH_SIZE)
        .start()
        .unwrap();
    wb.shutdown().await.unwrap();
}

#[test]
fn start_outside_a_runtime_is_an_error() {
    let cache = memory();
    let r: Result<WriteBehind<u64>, _> = cache
        .write_behind("x", |_: Vec<Item<u64>>| async {
            Ok::<_, std::io::Error>(())
        })
        .start();
    assert!(r.unwrap_err().to_string().contains("Tokio runtime"));
}

#[test]
fn versions_parse_print_and_order() {
    let v: Version = "12-3".parse().unwrap();
    assert_eq!(v, Version::new(12, 3));
    assert_eq!(v.to_string(), "12-3");
    assert!(Version::new(12, 4) > v && Version::new(13, 0) > Version::new(12, 99));
    for bad in ["", "12", "12-", "-3", "a-b", "1-2-3"] {
        assert!(bad.parse::<Version>().is_err(), "{bad}");
    }
}

/// Starts `builder` (which must not panic), writes, and checks that a
/// flush delivers and a shutdown drains.
async fn starts_and_delivers(builder: WriteBehindBuilder<u64, Arc<Recorder>>, sink: &Recorder) {
    let wb = builder.start().expect("the setting is accepted");
    wb.write("order:1", &1).await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), wb.flush())
        .await
        .expect("flush returns")
        .expect("flush delivers");
    assert_eq!(sink.latest()["order:1"].0, 1);
    wb.write("order:2", &2).await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), wb.shutdown())
        .await
        .expect("shutdown returns")
        .expect("shutdown drains");
    assert_eq!(sink.latest()["order:2"].0, 2);
}

#[tokio::test]
async fn the_longest_interval_means_only_full_batches_and_flushes() {
    let cache = memory();
    let sink = Arc::new(Recorder::default());
    let builder = cache
        .write_behind("orders", sink.clone())
        .interval(Duration::MAX);
    starts_and_delivers(builder, &sink).await;
}

#[tokio::test]
async fn the_longest_claim_idle_means_never_claiming() {
    let cache = memory();
    let sink = Arc::new(Recorder::default());
    let builder = cache
        .write_behind("orders", sink.clone())
        .claim_idle(Duration::MAX);
    starts_and_delivers(builder, &sink).await;
}

#[tokio::test]
async fn the_longest_shutdown_timeout_means_retrying_until_drained() {
    let cache = memory();
    // The sink refuses its first calls: the shutdown retries (within a
    // timeout that never ends) until it accepts.
    let sink = Arc::new(Recorder {
        fail_first: 2,
        ..Recorder::default()
    });
    let wb = cache
        .write_behind("orders", sink.clone())
        .interval(Duration::from_secs(3600))
        .max_backoff(Duration::from_millis(1))
        .shutdown_timeout(Duration::MAX)
        .start()
        .unwrap();
    wb.write("order:1", &1).await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), wb.shutdown())
        .await
        .expect("shutdown returns")
        .expect("shutdown drains");
    assert_eq!(sink.latest()["order:1"].0, 1);
    assert_eq!(sink.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn on_redis_the_longest_interval_and_command_timeout_start() {
    // Nobody listens on port 1: connections are refused at once. start()
    // sizes the flusher's own connection from both settings.
    for (interval, command_timeout) in [
        (Duration::MAX, Duration::from_millis(100)),
        (Duration::from_millis(100), Duration::MAX),
        (Duration::MAX, Duration::MAX),
    ] {
        let cache = Cache::builder()
            .redis("redis://127.0.0.1:1/0")
            .command_timeout(command_timeout)
            .build()
            .unwrap();
        let wb: WriteBehind<u64> = cache
            .write_behind("orders", Arc::new(Recorder::default()))
            .interval(interval)
            .claim_idle(Duration::MAX)
            .max_backoff(Duration::from_millis(1))
            .start()
            .expect("the settings are accepted");
        let err = wb.write("order:1", &1).await.unwrap_err();
        assert!(matches!(err, CacheError::Backend { .. }), "{err}");
        let err = tokio::time::timeout(Duration::from_secs(60), wb.shutdown())
            .await
            .expect("shutdown gives up on an unreachable Redis")
            .unwrap_err();
        assert!(
            matches!(err, CacheError::WriteBehindNotDrained { .. }),
            "{err}"
        );
    }
}

/// How many times [`SecondDecodeFails`] was decoded.
static DECODES: AtomicUsize = AtomicUsize::new(0);

/// Which of its decodes fail (counting from 0): the second, then the fifth.
const FAILING_DECODES: [usize; 2] = [1, 4];

/// A value whose second decode fails (and the fifth): what a codec or a
/// `Deserialize` with state of its own can do.
#[derive(Debug, Clone, Copy, PartialEq)]
struct SecondDecodeFails(u64);

impl Serialize for SecondDecodeFails {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for SecondDecodeFails {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u64::deserialize(d)?;
        if FAILING_DECODES.contains(&DECODES.fetch_add(1, Ordering::SeqCst)) {
            return Err(serde::de::Error::custom("this decode fails"));
        }
        Ok(SecondDecodeFails(v))
    }
}

#[tokio::test]
async fn a_value_that_fails_its_second_decode_is_dropped_and_counted_not_a_panic() {
    let cache = memory();
    let calls = Arc::new(AtomicUsize::new(0));
    let offered = Arc::new(Mutex::new(Vec::new()));
    let (c, o) = (calls.clone(), offered.clone());
    let wb = cache
        .write_behind("odd", move |batch: Vec<Item<SecondDecodeFails>>| {
            // The first two calls fail: their batches are decoded again.
            let fail = c.fetch_add(1, Ordering::SeqCst) < 2;
            o.lock().unwrap().extend(batch.iter().map(|i| i.value.0));
            async move {
                if fail {
                    Err("refusing this batch".into())
                } else {
                    Ok::<_, SinkError>(())
                }
            }
        })
        .interval(Duration::from_secs(3600))
        .max_backoff(Duration::from_millis(1))
        .start()
        .unwrap();
    let flush = || async {
        tokio::time::timeout(Duration::from_secs(60), wb.flush())
            .await
            .expect("flush returns")
            .expect("flush sees everything done with")
    };
    // Decoded (0), refused, decoded again (1): fails, so dropped and counted.
    wb.write("a", &SecondDecodeFails(1)).await.unwrap();
    flush().await;
    assert_eq!(*offered.lock().unwrap(), [1]);
    assert_eq!(cache.stats().decode_failures, 1);
    // Two writes of one key in one batch: both decode (2, 3), the latest
    // goes and is refused, decoded again (4) it fails: the older one,
    // readable, takes its place.
    wb.write("b", &SecondDecodeFails(10)).await.unwrap();
    wb.write("b", &SecondDecodeFails(11)).await.unwrap();
    flush().await;
    assert_eq!(*offered.lock().unwrap(), [1, 11, 10]);
    assert_eq!(cache.stats().decode_failures, 2);
    // The flusher still runs.
    wb.write("c", &SecondDecodeFails(20)).await.unwrap();
    flush().await;
    assert_eq!(*offered.lock().unwrap(), [1, 11, 10, 20]);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    wb.shutdown().await.unwrap();
}
