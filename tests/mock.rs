//! The mock backend users unit-test with: storage, clock, recording, faults,
//! isolation.

use cache_runtime::testing::{MockBackend, Op};
use cache_runtime::{cached, Operation};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Product {
    id: u64,
    name: String,
}

/// A service whose database calls are counted.
#[derive(Default)]
struct Catalog {
    db_calls: AtomicUsize,
}

impl Catalog {
    #[cached(ttl = 600, key = "product:{id}")]
    async fn product(&self, id: u64) -> Result<Product, String> {
        self.db_calls.fetch_add(1, Ordering::SeqCst);
        Ok(Product {
            id,
            name: format!("product {id}"),
        })
    }

    fn calls(&self) -> usize {
        self.db_calls.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn stores_through_the_real_envelope_and_records_operations() {
    let mock = MockBackend::new();
    let cache = mock.cache();
    let catalog = Catalog::default();
    cache
        .scope(async {
            catalog.product(1).await.unwrap();
            catalog.product(1).await.unwrap();
        })
        .await;
    assert_eq!(catalog.calls(), 1);
    assert_eq!(
        mock.operations(),
        [
            Op::Get {
                key: "product:1".into(),
                hit: false
            },
            Op::Set {
                key: "product:1".into(),
                ttl: Duration::from_secs(600)
            },
            Op::Get {
                key: "product:1".into(),
                hit: true
            },
        ]
    );
    assert!(mock.was_read("product:1") && mock.was_written("product:1"));
    assert!(!mock.was_read("product:2"));
    assert_eq!(mock.ttl_of("product:1"), Some(Duration::from_secs(600)));
    assert_eq!((mock.hits(), mock.misses()), (1, 1));
    assert_eq!(
        mock.get::<Product>("product:1"),
        Some(Product {
            id: 1,
            name: "product 1".into()
        })
    );
    assert_eq!(mock.keys(), ["product:1"]);
    mock.clear_operations();
    assert!(mock.operations().is_empty());
    mock.clear();
    assert!(mock.keys().is_empty());
}

#[tokio::test]
async fn preloaded_values_are_hits_and_corrupt_ones_are_misses() {
    let mock = MockBackend::new();
    let cache = mock.cache();
    let catalog = Catalog::default();
    let preloaded = Product {
        id: 5,
        name: "from the test".into(),
    };
    mock.insert("product:5", &preloaded, Duration::from_secs(60));
    assert_eq!(cache.scope(catalog.product(5)).await.unwrap(), preloaded);
    assert_eq!(catalog.calls(), 0);

    mock.insert_raw(
        "product:6",
        b"{not an envelope".to_vec(),
        Duration::from_secs(60),
    );
    assert_eq!(cache.scope(catalog.product(6)).await.unwrap().id, 6);
    assert_eq!(catalog.calls(), 1);
    assert_eq!(cache.stats().decode_failures, 1);
    assert_eq!(
        mock.get::<Product>("product:6").map(|p| p.id),
        Some(6),
        "overwritten"
    );
}

#[tokio::test(start_paused = true)]
async fn entries_expire_on_tokios_clock() {
    let mock = MockBackend::new();
    let cache = mock.cache();
    let catalog = Catalog::default();
    cache.scope(catalog.product(1)).await.unwrap();
    assert_eq!(
        mock.remaining_ttl("product:1"),
        Some(Duration::from_secs(600))
    );
    tokio::time::advance(Duration::from_secs(599)).await;
    cache.scope(catalog.product(1)).await.unwrap();
    assert_eq!(catalog.calls(), 1, "still fresh after 599 s");
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(mock.keys().is_empty(), "expired after 601 s");
    cache.scope(catalog.product(1)).await.unwrap();
    assert_eq!(catalog.calls(), 2, "refreshed after expiry");
    assert_eq!(
        mock.remaining_ttl("product:1"),
        Some(Duration::from_secs(600))
    );
}

#[tokio::test]
async fn fail_all_and_fail_next_run_the_fail_open_path() {
    let mock = MockBackend::new();
    let cache = mock.cache();
    let catalog = Catalog::default();
    mock.fail_all(true);
    for _ in 0..3 {
        assert_eq!(
            cache.scope(catalog.product(1)).await.unwrap().id,
            1,
            "correct data while failing"
        );
    }
    assert_eq!(catalog.calls(), 3);
    assert_eq!(cache.stats().errors, 3);
    assert!(mock.keys().is_empty());
    assert_eq!(
        mock.operations()[0],
        Op::Failed {
            operation: Operation::Get,
            key: "product:1".into()
        }
    );
    // The direct API sees the same error kind the Redis backend reports.
    let err = cache.get::<Product>("product:1").await.unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");

    mock.fail_all(false);
    mock.fail_next(1); // the next lookup fails; its write is skipped
    cache.scope(catalog.product(2)).await.unwrap();
    assert!(
        !mock.was_written("product:2"),
        "no write after a failed lookup"
    );
    cache.scope(catalog.product(2)).await.unwrap();
    assert!(mock.was_written("product:2"), "healthy again");
    assert_eq!(catalog.calls(), 5);
}

#[tokio::test]
async fn fail_keys_fails_only_matching_keys() {
    let mock = MockBackend::new();
    let cache = mock.cache();
    let catalog = Catalog::default();
    mock.fail_keys("product:1*");
    cache
        .scope(async {
            for _ in 0..2 {
                catalog.product(1).await.unwrap();
                catalog.product(12).await.unwrap();
                catalog.product(2).await.unwrap();
            }
        })
        .await;
    assert_eq!(catalog.calls(), 5, "1 and 12 ran twice each, 2 once");
    assert_eq!(mock.keys(), ["product:2"]);
    mock.reset_faults();
    cache.scope(catalog.product(1)).await.unwrap();
    assert_eq!(mock.keys(), ["product:1", "product:2"]);
}

#[tokio::test(start_paused = true)]
async fn a_delay_past_the_deadline_times_out_without_real_sleeping() {
    let (mock, cache) = mock_with_deadline_ms(50);
    let catalog = Catalog::default();
    mock.delay(Duration::from_secs(5));
    let started = tokio::time::Instant::now();
    let wall = std::time::Instant::now();
    assert_eq!(cache.scope(catalog.product(1)).await.unwrap().id, 1);
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(50),
        "one deadline on tokio's clock"
    );
    assert!(
        wall.elapsed() < Duration::from_secs(2),
        "paused time: no real waiting"
    );
    assert_eq!(cache.stats().errors, 1);
    let err = cache.get::<Product>("product:1").await.unwrap_err();
    assert!(err.is_timeout(), "{err}");

    // A delay below the deadline only slows things down.
    mock.delay(Duration::from_millis(10));
    cache.scope(catalog.product(3)).await.unwrap();
    assert!(mock.was_written("product:3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_tests_with_their_own_mocks_never_share() {
    let run = |id: u64| async move {
        let mock = MockBackend::new();
        let cache = mock.cache();
        let catalog = Arc::new(Catalog::default());
        for _ in 0..100 {
            let c = catalog.clone();
            cache
                .scope(async move { c.product(id).await.unwrap() })
                .await;
            tokio::task::yield_now().await;
        }
        (mock.keys(), mock.operations().len(), catalog.calls())
    };
    let tasks: Vec<_> = (0..8).map(|id| tokio::spawn(run(id))).collect();
    for (id, task) in tasks.into_iter().enumerate() {
        let (keys, ops, calls) = task.await.unwrap();
        assert_eq!(keys, [format!("product:{id}")]);
        assert_eq!(ops, 101, "100 lookups and one write, nobody else's");
        assert_eq!(calls, 1);
    }
}

#[tokio::test]
async fn prefix_and_codec_of_the_mock_apply() {
    let mock = MockBackend::new()
        .with_prefix("shop")
        .with_codec(cache_runtime::BincodeCodec);
    let cache = mock.cache();
    assert_eq!(cache.prefix(), "shop");
    let catalog = Catalog::default();
    cache.scope(catalog.product(4)).await.unwrap();
    assert_eq!(mock.keys(), ["product:4"]);
    assert_eq!(mock.get::<Product>("product:4").unwrap().id, 4);
    assert_eq!(cache.clear_pattern("product:*").await.unwrap(), 1);
    assert_eq!(
        mock.operations().last(),
        Some(&Op::ClearPattern {
            pattern: "product:*".into(),
            removed: 1
        })
    );
}

#[tokio::test(start_paused = true)]
async fn lookup_and_write_share_one_deadline() {
    let (mock, cache) = mock_with_deadline_ms(50);
    let catalog = Catalog::default();
    // Each reply takes 30 ms: the lookup answers in time, and the write has
    // the 20 ms left of the deadline, so the call costs one deadline in all.
    mock.delay(Duration::from_millis(30));
    let started = tokio::time::Instant::now();
    assert_eq!(cache.scope(catalog.product(1)).await.unwrap().id, 1);
    assert_eq!(started.elapsed(), Duration::from_millis(50));
    assert_eq!(cache.stats().errors, 1, "the write ran out of time");
}

#[tokio::test(start_paused = true)]
async fn clear_pattern_on_a_stalled_backend_gives_up_at_the_deadline() {
    let (mock, cache) = mock_with_deadline_ms(50);
    mock.delay(Duration::from_secs(30));
    let started = tokio::time::Instant::now();
    let err = cache.clear_pattern("product:*").await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(started.elapsed(), Duration::from_millis(50));
}

/// A mock and a cache on it whose command deadline is `ms` milliseconds.
fn mock_with_deadline_ms(ms: u64) -> (MockBackend, cache_runtime::Cache) {
    let mock = MockBackend::new();
    let cache = mock
        .cache_builder()
        .command_timeout(Duration::from_millis(ms))
        .build()
        .unwrap();
    (mock, cache)
}

#[tokio::test(start_paused = true)]
async fn retry_on_timeout_gives_a_read_a_second_try_within_its_deadline() {
    let mock = MockBackend::new();
    mock.insert("k", &5u32, Duration::from_secs(60));
    let plain = mock.cache();
    let retrying = mock
        .cache_builder()
        .without_breaker()
        .retry_on_timeout(true)
        .build()
        .unwrap();

    // A failed first try: an error without the setting, a value with it.
    mock.fail_next(1);
    assert!(plain.get::<u32>("k").await.is_err());
    mock.fail_next(1);
    assert_eq!(retrying.get::<u32>("k").await.unwrap(), Some(5));
    mock.fail_next(1);
    assert!(retrying.exists("k").await.unwrap());
    // Writes are never retried.
    mock.fail_next(1);
    assert!(retrying
        .set("k", &6u32, Duration::from_secs(60))
        .await
        .is_err());

    // A stalled backend: both tries together end at the deadline (100 ms),
    // not past it.
    mock.delay(Duration::from_secs(10));
    let started = tokio::time::Instant::now();
    let err = retrying.get::<u32>("k").await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(started.elapsed(), Duration::from_millis(100));
    let reads = mock
        .operations()
        .iter()
        .rev()
        .take_while(|op| matches!(op, Op::Get { .. }))
        .count();
    assert_eq!(reads, 2, "two tries: {:?}", mock.operations());
}

#[cached(ttl = "1h", none_ttl = "30s", key = "user:{id}")]
async fn find_user(calls: &AtomicUsize, id: u64) -> Option<String> {
    calls.fetch_add(1, Ordering::SeqCst);
    (id != 0).then(|| format!("user {id}"))
}

#[tokio::test(start_paused = true)]
async fn a_stored_none_expires_after_none_ttl_and_some_after_ttl() {
    let mock = MockBackend::new();
    let cache = mock.cache();
    let (absent, present) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let both = || async {
        assert_eq!(find_user(&absent, 0).await, None);
        assert_eq!(find_user(&present, 7).await.as_deref(), Some("user 7"));
    };
    cache.scope(both()).await;
    cache.scope(both()).await;
    let get = |key: &str, hit| Op::Get {
        key: key.into(),
        hit,
    };
    let stored = |key: &str, secs| Op::Set {
        key: key.into(),
        ttl: Duration::from_secs(secs),
    };
    assert_eq!(
        mock.operations(),
        [
            get("user:0", false),
            stored("user:0", 30),
            get("user:7", false),
            stored("user:7", 3600),
            get("user:0", true),
            get("user:7", true),
        ],
        "a stored None is a hit in the log, written with none_ttl"
    );
    assert_eq!(mock.get::<Option<String>>("user:0"), Some(None));
    let s = cache.stats();
    assert_eq!((s.hits, s.none_hits, s.misses), (2, 1, 2), "{s:?}");

    tokio::time::advance(Duration::from_secs(29)).await;
    cache.scope(both()).await;
    assert_eq!(
        absent.load(Ordering::SeqCst),
        1,
        "None still stored after 29 s"
    );
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(
        mock.keys(),
        ["user:7"],
        "None expired after 31 s, Some did not"
    );
    cache.scope(both()).await;
    assert_eq!(
        absent.load(Ordering::SeqCst),
        2,
        "None recomputed after none_ttl"
    );
    assert_eq!(present.load(Ordering::SeqCst), 1, "Some still a hit");
    assert_eq!(mock.remaining_ttl("user:0"), Some(Duration::from_secs(30)));
    assert_eq!(cache.stats().none_hits, 2);
}

#[cache_runtime::cache_put(key = "user:{id}", ttl = "1h", none_ttl = "30s")]
async fn save_user(id: u64, name: Option<String>) -> Option<String> {
    let _ = id;
    name
}

#[tokio::test]
async fn a_put_writes_none_for_none_ttl() {
    let mock = MockBackend::new();
    let cache = mock.cache();
    cache.scope(save_user(1, None)).await;
    cache.scope(save_user(2, Some("b".into()))).await;
    assert_eq!(mock.ttl_of("user:1"), Some(Duration::from_secs(30)));
    assert_eq!(mock.ttl_of("user:2"), Some(Duration::from_secs(3600)));
    assert_eq!(mock.get::<Option<String>>("user:1"), Some(None));
}

// ----- the fill lock, two "processes" (caches) over one mock, paused time -----

/// A report whose body takes `body` and fails if `fail`; each run counted.
#[cached(ttl = 60, key = "report:{id}", cache = cache)]
async fn report(
    cache: &cache_runtime::Cache,
    runs: &AtomicUsize,
    id: u64,
    body: Duration,
    fail: bool,
) -> Result<String, String> {
    runs.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(body).await;
    if fail {
        return Err(format!("report {id} failed"));
    }
    Ok(format!("report {id}"))
}

const LEASE: Duration = Duration::from_secs(1);
/// The longest pause between two reads of a waiter.
const POLL: Duration = Duration::from_millis(50);

/// A cache with the fill lock on, over `store`, as one process sees it.
fn process(store: &MockBackend, wait: Duration) -> cache_runtime::Cache {
    store
        .cache_builder()
        .without_breaker()
        .fill_lock(true)
        .lock_lease(LEASE)
        .lock_wait(wait)
        .build()
        .unwrap()
}

fn count(store: &MockBackend, wanted: impl Fn(&Op) -> bool) -> usize {
    store.operations().iter().filter(|op| wanted(op)).count()
}

#[tokio::test(start_paused = true)]
async fn one_body_run_across_processes_with_the_lease_renewed_while_it_runs() {
    let store = MockBackend::new();
    let (a, b) = (
        process(&store, Duration::from_secs(60)),
        process(&store, Duration::from_secs(60)),
    );
    let runs = AtomicUsize::new(0);
    let body = Duration::from_secs(10); // ten leases
    let started = tokio::time::Instant::now();
    let (from_a, from_b) = tokio::join!(report(&a, &runs, 1, body, false), async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        report(&b, &runs, 1, body, false).await
    });
    assert_eq!(from_a.as_deref(), Ok("report 1"));
    assert_eq!(from_b.as_deref(), Ok("report 1"));
    assert_eq!(runs.load(Ordering::SeqCst), 1, "one body run in all");
    // Renewed every third of the lease, always still held.
    let renewed = count(&store, |op| matches!(op, Op::Renew { held: true, .. }));
    assert!(renewed >= 25, "{renewed} renewals in ten leases");
    assert_eq!(
        count(&store, |op| matches!(op, Op::Renew { held: false, .. })),
        0
    );
    assert_eq!(
        count(&store, |op| matches!(op, Op::Lock { acquired: true, .. })),
        1
    );
    // The waiter read the holder's value within one pause of its write.
    assert!(started.elapsed() <= body + POLL, "{:?}", started.elapsed());
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!((sa.misses, sa.hits), (1, 0), "{sa:?}");
    assert_eq!((sb.hits, sb.lock_waits, sb.misses), (1, 1, 0), "{sb:?}");
    assert_eq!(store.get::<String>("report:1").as_deref(), Some("report 1"));
}

#[tokio::test(start_paused = true)]
async fn a_killed_holder_is_replaced_within_one_lease() {
    let store = MockBackend::new();
    let (a, b) = (
        process(&store, Duration::from_secs(60)),
        process(&store, Duration::from_secs(60)),
    );
    let runs = AtomicUsize::new(0);
    let mut holder = Box::pin(report(&a, &runs, 2, Duration::from_secs(3600), false));
    assert!(
        tokio::time::timeout(Duration::from_millis(10), &mut holder)
            .await
            .is_err(),
        "the holder is in its body"
    );
    // Killed: it neither renews nor gives the lock up.
    std::mem::forget(holder);
    let started = tokio::time::Instant::now();
    let body = Duration::from_secs(2);
    assert_eq!(
        report(&b, &runs, 2, body, false).await.as_deref(),
        Ok("report 2")
    );
    let waited = started.elapsed();
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "the waiter ran the body after the holder died"
    );
    assert!(waited >= body, "{waited:?}");
    assert!(waited <= LEASE + body + POLL, "{waited:?}");
    assert_eq!(b.stats().lock_takeovers, 1, "{:?}", b.stats());
    assert_eq!(store.get::<String>("report:2").as_deref(), Some("report 2"));
}

#[tokio::test(start_paused = true)]
async fn a_waiter_runs_the_body_itself_after_lock_wait() {
    let store = MockBackend::new();
    let wait = Duration::from_secs(2);
    let (a, b) = (
        process(&store, Duration::from_secs(60)),
        process(&store, wait),
    );
    let runs = AtomicUsize::new(0);
    let body = Duration::from_secs(10);
    let (from_a, (from_b, waited)) = tokio::join!(report(&a, &runs, 3, body, false), async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let started = tokio::time::Instant::now();
        let out = report(&b, &runs, 3, Duration::ZERO, false).await;
        (out, started.elapsed())
    });
    assert_eq!(from_a.as_deref(), Ok("report 3"));
    assert_eq!(from_b.as_deref(), Ok("report 3"));
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert!(waited >= wait && waited <= wait + POLL, "{waited:?}");
    let sb = b.stats();
    assert_eq!((sb.lock_timeouts, sb.misses, sb.hits), (1, 1, 0), "{sb:?}");
    // Its write found the holder's placeholder and kept it: the holder stored.
    assert_eq!(count(&store, |op| matches!(op, Op::SetKept { .. })), 1);
    assert_eq!(store.get::<String>("report:3").as_deref(), Some("report 3"));
}

#[tokio::test(start_paused = true)]
async fn a_holder_that_lost_its_lock_does_not_overwrite_the_newer_value() {
    let store = MockBackend::new();
    let (a, b) = (
        process(&store, Duration::from_secs(60)),
        process(&store, Duration::from_secs(60)),
    );
    let runs = AtomicUsize::new(0);
    let (from_a, ()) = tokio::join!(report(&a, &runs, 4, Duration::from_secs(5), false), async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        // A newer value, written while the holder's body runs.
        b.set("report:4", &"newer", Duration::from_secs(60))
            .await
            .unwrap();
    });
    assert_eq!(
        from_a.as_deref(),
        Ok("report 4"),
        "its caller still gets its value"
    );
    assert!(count(&store, |op| matches!(op, Op::Renew { held: false, .. })) >= 1);
    assert_eq!(count(&store, |op| matches!(op, Op::SetRefused { .. })), 1);
    assert_eq!(store.get::<String>("report:4").as_deref(), Some("newer"));
}

#[tokio::test(start_paused = true)]
async fn a_failed_body_gives_the_lock_up_at_once() {
    let store = MockBackend::new();
    let (a, b) = (
        process(&store, Duration::from_secs(60)),
        process(&store, Duration::from_secs(60)),
    );
    let runs = AtomicUsize::new(0);
    let body = Duration::from_secs(1);
    let (from_a, (from_b, waited)) = tokio::join!(report(&a, &runs, 5, body, true), async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let started = tokio::time::Instant::now();
        let out = report(&b, &runs, 5, body, false).await;
        (out, started.elapsed())
    });
    assert_eq!(from_a, Err("report 5 failed".to_owned()), "its own error");
    assert_eq!(from_b.as_deref(), Ok("report 5"));
    assert_eq!(
        count(&store, |op| matches!(op, Op::Unlock { held: true, .. })),
        1
    );
    // The next caller took the lock when it was given up, not a lease later.
    assert_eq!(b.stats().lock_takeovers, 1);
    assert!(waited <= body * 2 + POLL, "{waited:?}");
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_holder_gives_the_lock_up() {
    let store = MockBackend::new();
    let (a, b) = (
        process(&store, Duration::from_secs(60)),
        process(&store, Duration::from_secs(60)),
    );
    let runs = AtomicUsize::new(0);
    let cancelled = tokio::time::timeout(
        Duration::from_millis(100),
        report(&a, &runs, 6, Duration::from_secs(60), false),
    )
    .await;
    assert!(cancelled.is_err(), "cancelled in its body");
    tokio::task::yield_now().await; // the release runs on a task of its own
    assert_eq!(
        count(&store, |op| matches!(op, Op::Unlock { held: true, .. })),
        1
    );
    let started = tokio::time::Instant::now();
    assert_eq!(
        report(&b, &runs, 6, Duration::ZERO, false).await.as_deref(),
        Ok("report 6")
    );
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "the lock was free at once"
    );
    assert_eq!(b.stats().lock_takeovers, 0);
}

#[tokio::test]
async fn the_mocks_cache_takes_no_lock_unless_asked() {
    let store = MockBackend::new();
    let cache = store.cache();
    let runs = AtomicUsize::new(0);
    report(&cache, &runs, 7, Duration::ZERO, false)
        .await
        .unwrap();
    assert_eq!(
        store.operations(),
        [
            Op::Get {
                key: "report:7".into(),
                hit: false
            },
            Op::Set {
                key: "report:7".into(),
                ttl: Duration::from_secs(60)
            },
        ]
    );
}

// ----- stale-while-revalidate, stale-if-error (paused time) -----

/// A rate that counts its loads; fails while `failing` is set.
#[cached(ttl = 10, stale = 60, key = "rate:{id}")]
async fn rate(
    id: u64,
    loads: Arc<AtomicUsize>,
    failing: Arc<std::sync::atomic::AtomicBool>,
) -> Result<String, String> {
    let n = loads.fetch_add(1, Ordering::SeqCst) + 1;
    if failing.load(Ordering::SeqCst) {
        return Err(format!("load {n} of rate {id} failed"));
    }
    Ok(format!("rate {id}, load {n}"))
}

/// Lets the background refresh run (it is a task of its own).
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_stale_value_is_served_while_one_refresh_runs_then_the_error_after_the_window() {
    let mock = MockBackend::new();
    let cache = mock.cache();
    let loads = Arc::new(AtomicUsize::new(0));
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let call = || cache.scope(rate(1, loads.clone(), failing.clone()));

    assert_eq!(call().await.as_deref(), Ok("rate 1, load 1"));
    assert_eq!(
        mock.ttl_of("rate:1"),
        Some(Duration::from_secs(70)),
        "kept ttl + stale"
    );
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(call().await.as_deref(), Ok("rate 1, load 1"), "fresh");
    assert_eq!(cache.stats().stale_hits, 0);

    // Past the TTL: the stale value at once, and one refresh behind it.
    tokio::time::advance(Duration::from_secs(6)).await;
    let (a, b) = tokio::join!(call(), call());
    assert_eq!(
        (a.as_deref(), b.as_deref()),
        (Ok("rate 1, load 1"), Ok("rate 1, load 1"))
    );
    settle().await;
    assert_eq!(
        loads.load(Ordering::SeqCst),
        2,
        "one refresh for both stale hits"
    );
    assert_eq!(
        call().await.as_deref(),
        Ok("rate 1, load 2"),
        "the refreshed value"
    );
    let s = cache.stats();
    assert_eq!((s.stale_hits, s.refreshes), (2, 1), "{s:?}");

    // The database fails: the stale value is served through the window.
    failing.store(true, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(11)).await;
    for _ in 0..3 {
        assert_eq!(
            call().await.as_deref(),
            Ok("rate 1, load 2"),
            "stale, not the error"
        );
        settle().await;
        tokio::time::advance(Duration::from_secs(15)).await;
    }
    assert!(cache.stats().refresh_failures >= 1, "{:?}", cache.stats());
    // 11 + 45 s after the refresh: 56 s, still in the window (10 + 60 s).
    assert_eq!(call().await.as_deref(), Ok("rate 1, load 2"));
    settle().await;
    // The window ends: the entry is gone, and the caller gets the error.
    tokio::time::advance(Duration::from_secs(15)).await;
    let err = call().await.unwrap_err();
    assert!(err.ends_with("of rate 1 failed"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_refresh_does_not_overwrite_a_value_written_meanwhile() {
    let mock = MockBackend::new();
    let cache = mock.cache();
    let loads = Arc::new(AtomicUsize::new(0));
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    cache
        .scope(rate(2, loads.clone(), failing.clone()))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(11)).await;
    // Stale: a refresh starts; before it writes, a newer value goes in.
    mock.delay(Duration::from_millis(50));
    let stale = cache.scope(rate(2, loads.clone(), failing.clone())).await;
    assert_eq!(stale.as_deref(), Ok("rate 2, load 1"));
    mock.reset_faults();
    mock.insert("rate:2", &"written meanwhile", Duration::from_secs(60));
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The refresh saw the newer value and ran no body, or ran it and had
    // its write refused: either way the newer value stays.
    assert_eq!(
        mock.get::<String>("rate:2").as_deref(),
        Some("written meanwhile")
    );
    assert_eq!(cache.stats().refreshes, 0, "its write was refused");
}

#[tokio::test(start_paused = true)]
async fn two_processes_refresh_a_stale_key_once() {
    let store = MockBackend::new();
    let (a, b) = (
        process(&store, Duration::from_secs(60)),
        process(&store, Duration::from_secs(60)),
    );
    let loads = Arc::new(AtomicUsize::new(0));
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    a.scope(rate(3, loads.clone(), failing.clone()))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(11)).await;
    store.delay(Duration::from_millis(10)); // the refreshes overlap
    let (x, y) = tokio::join!(
        a.scope(rate(3, loads.clone(), failing.clone())),
        b.scope(rate(3, loads.clone(), failing.clone()))
    );
    assert_eq!(
        (x.as_deref(), y.as_deref()),
        (Ok("rate 3, load 1"), Ok("rate 3, load 1"))
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(loads.load(Ordering::SeqCst), 2, "one refresh across both");
    assert_eq!(a.stats().refreshes + b.stats().refreshes, 1);
    let locks = count(
        &store,
        |op| matches!(op, Op::Lock { key, acquired: true } if key == "__lock:rate:3"),
    );
    assert_eq!(locks, 1, "{:?}", store.operations());
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_loses_the_race_for_the_lock_counts_a_hit_not_a_miss() {
    let store = MockBackend::new();
    let (a, b) = (
        process(&store, Duration::from_secs(60)),
        process(&store, Duration::from_secs(60)),
    );
    let runs = AtomicUsize::new(0);
    // Both lookups find nothing before either takes the lock.
    store.delay(Duration::from_millis(10));
    let (x, y) = tokio::join!(
        report(&a, &runs, 8, Duration::from_secs(1), false),
        report(&b, &runs, 8, Duration::from_secs(1), false)
    );
    assert_eq!(
        (x.as_deref(), y.as_deref()),
        (Ok("report 8"), Ok("report 8"))
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(
        count(&store, |op| matches!(
            op,
            Op::Lock {
                acquired: false,
                ..
            }
        )),
        1
    );
    // Whichever took the lock: one miss, and one hit for the other.
    let mut seen = [a.stats(), b.stats()].map(|s| (s.misses, s.hits, s.lock_waits));
    seen.sort();
    assert_eq!(seen, [(0, 1, 1), (1, 0, 0)]);
}

// ----- early refresh (XFetch), paused time -----

/// A top list whose body takes a second; its loads are counted.
#[cached(ttl = 10, early_refresh, key = "top:{id}")]
async fn top(id: u64, loads: Arc<AtomicUsize>) -> String {
    let n = loads.fetch_add(1, Ordering::SeqCst) + 1;
    tokio::time::sleep(Duration::from_secs(1)).await;
    format!("top {id}, load {n}")
}

/// Calls `top` every 20 ms for three TTL periods: how long each call took,
/// and the loads.
async fn steady_load(cache: &cache_runtime::Cache) -> (Vec<Duration>, usize) {
    let loads = Arc::new(AtomicUsize::new(0));
    let mut took = Vec::new();
    for _ in 0..1500 {
        let started = tokio::time::Instant::now();
        cache.scope(top(1, loads.clone())).await;
        took.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A refresh started in the last second finishes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    (took, loads.load(Ordering::SeqCst))
}

fn assert_refreshed_early(took: &[Duration], loads: usize, stats: cache_runtime::Stats) {
    assert_eq!(took[0], Duration::from_secs(1), "the first call loads");
    let waited = took[1..].iter().filter(|t| !t.is_zero()).count();
    assert_eq!(
        waited, 0,
        "after the first call, no caller waits for the body"
    );
    // Three TTLs of 10 s, refreshed ahead of each expiry (XFetch with a
    // 1 s body and β = 1 at 50 calls/s: about 4 s before it).
    assert!((4..=8).contains(&loads), "{loads} loads in 30 s");
    assert_eq!(stats.refreshes as usize, loads - 1, "{stats:?}");
    assert_eq!(stats.stale_hits, 0, "never stale: {stats:?}");
}

#[tokio::test(start_paused = true)]
async fn early_refresh_keeps_a_key_fresh_under_steady_load_on_the_mock() {
    let cache = MockBackend::new().cache();
    let (took, loads) = steady_load(&cache).await;
    assert_refreshed_early(&took, loads, cache.stats());
}

#[tokio::test(start_paused = true)]
async fn early_refresh_keeps_a_key_fresh_under_steady_load_on_the_memory_store() {
    let cache = cache_runtime::Cache::builder().build().unwrap();
    let (took, loads) = steady_load(&cache).await;
    assert_refreshed_early(&took, loads, cache.stats());
}

#[tokio::test(start_paused = true)]
async fn a_lock_left_by_a_failed_write_is_taken_over_here_at_once() {
    let store = MockBackend::new();
    let cache = store
        .cache_builder()
        .without_breaker()
        .fill_lock(true)
        .lock_lease(Duration::from_secs(60))
        .build()
        .unwrap();
    let runs = AtomicUsize::new(0);
    // The value's write fails: the placeholder stays behind (for the lease).
    let (first, ()) = tokio::join!(
        report(&cache, &runs, 9, Duration::from_secs(1), false),
        async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            store.fail_next(1);
        }
    );
    assert_eq!(first.as_deref(), Ok("report 9"), "failed open");
    assert!(
        store.keys().contains(&"report:9".to_owned()),
        "the placeholder is left"
    );
    // The next caller here does not wait out the 60 s lease.
    let started = tokio::time::Instant::now();
    let second = report(&cache, &runs, 9, Duration::ZERO, false).await;
    assert_eq!(second.as_deref(), Ok("report 9"));
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(cache.stats().lock_takeovers, 1, "{:?}", cache.stats());
    assert_eq!(store.get::<String>("report:9").as_deref(), Some("report 9"));
}

/// A lookup of something that does not exist: `None` is not stored.
#[cached(ttl = 60, key = "missing:{id}", cache = cache)]
async fn missing(
    cache: &cache_runtime::Cache,
    runs: &AtomicUsize,
    id: u64,
    body: Duration,
) -> Option<String> {
    runs.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(body).await;
    None.filter(|_: &String| id > u64::MAX / 2)
}

#[tokio::test(start_paused = true)]
async fn callers_of_a_result_that_is_not_stored_load_together_not_in_turns() {
    let store = MockBackend::new();
    let caches: Vec<_> = (0..3)
        .map(|_| process(&store, Duration::from_secs(60)))
        .collect();
    let runs = AtomicUsize::new(0);
    let body = Duration::from_secs(1);
    let started = tokio::time::Instant::now();
    // Three processes, two callers in each.
    let calls = caches
        .iter()
        .flat_map(|c| [c, c])
        .enumerate()
        .map(|(i, c)| {
            let runs = &runs;
            async move {
                tokio::time::sleep(Duration::from_millis(10 * i as u64)).await;
                let out = missing(c, runs, 1, body).await;
                (out, started.elapsed())
            }
        });
    let done = futures_join_all(calls).await;
    for (out, at) in &done {
        assert_eq!(*out, None);
        // The holder's body, then the other processes' leaders' at once,
        // then their followers' (which learn that nothing was stored when
        // their leader ends): three bodies, not one per caller in turns.
        assert!(
            *at <= body * 3 + POLL + Duration::from_millis(60),
            "done at {at:?}"
        );
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        6,
        "a `None` is not stored: each caller loads"
    );
    assert_eq!(
        count(&store, |op| matches!(op, Op::Unlock { held: true, .. })),
        1
    );
}

/// `join_all` without a dependency: polls every future to its end.
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let handles: Vec<_> = futures.map(Box::pin).collect();
    let mut out = Vec::new();
    let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (slot, result) in pending.iter_mut().zip(results.iter_mut()) {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *result = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.extend(results.into_iter().map(|r| r.expect("done")));
    out
}

/// A rate whose refresh panics while `panicking` is set.
#[cached(ttl = 10, stale = 60, key = "shaky:{id}")]
async fn shaky(
    id: u64,
    loads: Arc<AtomicUsize>,
    panicking: Arc<std::sync::atomic::AtomicBool>,
) -> u64 {
    let n = loads.fetch_add(1, Ordering::SeqCst) as u64 + 1;
    assert!(
        !panicking.load(Ordering::SeqCst),
        "the database driver panicked"
    );
    id * 100 + n
}

#[tokio::test(start_paused = true)]
async fn a_refresh_that_panics_does_not_stop_later_refreshes() {
    let cache = MockBackend::new().cache();
    let loads = Arc::new(AtomicUsize::new(0));
    let panicking = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let call = || cache.scope(shaky(1, loads.clone(), panicking.clone()));
    assert_eq!(call().await, 101);
    tokio::time::advance(Duration::from_secs(11)).await;
    panicking.store(true, Ordering::SeqCst);
    assert_eq!(call().await, 101, "stale");
    settle().await;
    assert_eq!(
        loads.load(Ordering::SeqCst),
        2,
        "the refresh ran, and panicked"
    );
    panicking.store(false, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(call().await, 101, "stale still");
    settle().await;
    assert_eq!(
        call().await,
        103,
        "refreshed: the key was released by the panicking task"
    );
}

#[cached(ttl = 600, key = "label:{id}:{name}", cache = cache)]
async fn label(cache: &cache_runtime::Cache, id: u64, name: String) -> Result<String, String> {
    Ok(format!("{id}-{name}"))
}

/// `tokio::spawn` (and axum's handlers) need `Send` futures: a cached
/// function's and both its companions', with a templated key's formatting
/// temporaries, are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_function_and_its_companions_run_in_spawned_tasks() {
    let mock = MockBackend::new();
    let cache = mock.cache();
    let c = cache.clone();
    let value = tokio::spawn(async move { label(&c, 7, "lamp".into()).await })
        .await
        .unwrap();
    assert_eq!(value.as_deref(), Ok("7-lamp"));
    let c = cache.clone();
    let uncached = tokio::spawn(async move { label_uncached(&c, 7, "lamp".into()).await })
        .await
        .unwrap();
    assert_eq!(uncached.as_deref(), Ok("7-lamp"));
    let c = cache.clone();
    let removed = tokio::spawn(async move { label_invalidate(&c, 7, "lamp".into()).await })
        .await
        .unwrap();
    assert!(removed.unwrap(), "the entry was there");
    assert!(!cache.exists("label:7:lamp").await.unwrap());
}
