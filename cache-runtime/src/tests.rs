//! Behaviour of the call path that needs a backend to misbehave on cue.

use crate::{cached, Backend, BackendError, BoxFuture, Cache};
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A memory-ish backend that fails every command while `down` is set.
#[derive(Debug, Default)]
struct Flaky {
    down: AtomicBool,
    value: std::sync::Mutex<Option<Bytes>>,
    /// Commands that reached the backend.
    commands: AtomicUsize,
}

impl Flaky {
    fn check(&self) -> Result<(), BackendError> {
        self.commands.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            Err(BackendError::Other("connection refused".into()))
        } else {
            Ok(())
        }
    }
}

impl Backend for Arc<Flaky> {
    fn get<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, BackendError>> {
        Box::pin(async move { self.check().map(|()| self.value.lock().unwrap().clone()) })
    }
    fn set<'a>(
        &'a self,
        _key: &'a str,
        value: Bytes,
        _ttl: Duration,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            self.check()
                .map(|()| *self.value.lock().unwrap() = Some(value))
        })
    }
    fn delete<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Result<bool, BackendError>> {
        Box::pin(async move {
            self.check()
                .map(|()| self.value.lock().unwrap().take().is_some())
        })
    }
    fn exists<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Result<bool, BackendError>> {
        Box::pin(async move { self.check().map(|()| self.value.lock().unwrap().is_some()) })
    }
    fn clear_pattern<'a>(&'a self, _pattern: &'a str) -> BoxFuture<'a, Result<u64, BackendError>> {
        Box::pin(async move { self.check().map(|()| 0) })
    }
    fn kind(&self) -> &'static str {
        "flaky"
    }
}

/// Counts events by level; enough of a subscriber to check what is logged.
#[derive(Default)]
struct Levels {
    error: AtomicUsize,
    warn: AtomicUsize,
    info: AtomicUsize,
    /// Every event's fields, as `name=value` lines.
    text: std::sync::Mutex<String>,
}

/// Appends an event's fields to a string.
struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write as _;
        let _ = writeln!(self.0, "{}={value:?}", field.name());
    }
}

#[derive(Clone, Default)]
struct LevelCounter(Arc<Levels>);

impl std::ops::Deref for LevelCounter {
    type Target = Levels;
    fn deref(&self) -> &Levels {
        &self.0
    }
}

impl tracing::Subscriber for LevelCounter {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        event.record(&mut Fields(&mut self.text.lock().unwrap()));
        match *event.metadata().level() {
            tracing::Level::ERROR => self.error.fetch_add(1, Ordering::SeqCst),
            tracing::Level::WARN => self.warn.fetch_add(1, Ordering::SeqCst),
            tracing::Level::INFO => self.info.fetch_add(1, Ordering::SeqCst),
            _ => 0,
        };
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

static BODY_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, key = "k")]
async fn value() -> u32 {
    BODY_RUNS.fetch_add(1, Ordering::SeqCst);
    7
}

#[test]
fn an_outage_is_warned_about_once_and_its_end_reported() {
    let flaky = Arc::new(Flaky::default());
    // The breaker would open within the outage; its own test is below.
    let cache = Cache::builder()
        .backend(flaky.clone())
        .without_breaker()
        .build()
        .unwrap();
    let logs = LevelCounter::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(logs.clone(), || {
        rt.block_on(async {
            flaky.down.store(true, Ordering::SeqCst);
            for _ in 0..5 {
                assert_eq!(cache.scope(value()).await, 7, "fail-open: the body's value");
            }
            assert_eq!(BODY_RUNS.load(Ordering::SeqCst), 5);
            assert_eq!(cache.stats().errors, 5);
            // An outage is errors, not misses: the hit rate is over the
            // lookups the backend answered.
            assert_eq!((cache.stats().misses, cache.stats().hits), (0, 0));
            assert_eq!(
                logs.warn.load(Ordering::SeqCst),
                1,
                "one warning per outage"
            );

            flaky.down.store(false, Ordering::SeqCst);
            cache.scope(value()).await; // miss, stored
            cache.scope(value()).await; // hit
            assert_eq!(BODY_RUNS.load(Ordering::SeqCst), 6);
            assert_eq!(logs.info.load(Ordering::SeqCst), 1, "recovery is reported");

            flaky.down.store(true, Ordering::SeqCst);
            cache.scope(value()).await;
            assert_eq!(
                logs.warn.load(Ordering::SeqCst),
                2,
                "a new outage warns again"
            );
            // The direct API reports errors to its caller instead of logging them.
            let before = cache.stats();
            let err = cache.get::<u32>("k").await.unwrap_err();
            assert!(err.to_string().contains("connection refused"), "{err}");
            let after = cache.stats();
            assert_eq!(after.errors, before.errors + 1);
            assert_eq!(after.misses, before.misses, "a failed get is no miss");
            assert_eq!(logs.warn.load(Ordering::SeqCst), 2);
        });
    });
}

static BREAKER_BODY_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, key = "b")]
async fn breaker_value() -> u32 {
    BREAKER_BODY_RUNS.fetch_add(1, Ordering::SeqCst);
    8
}

#[test]
fn the_breaker_opens_skips_the_backend_probes_and_closes() {
    let flaky = Arc::new(Flaky::default());
    let cache = Cache::builder()
        .backend(flaky.clone())
        .breaker_threshold(3)
        .breaker_cooldown(Duration::from_secs(1))
        .build()
        .unwrap();
    let logs = LevelCounter::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    tracing::subscriber::with_default(logs.clone(), || {
        rt.block_on(async {
            flaky.down.store(true, Ordering::SeqCst);
            // Each call's lookup fails; the third failure opens the breaker.
            for _ in 0..3 {
                assert_eq!(cache.scope(breaker_value()).await, 8);
            }
            let stats = cache.stats();
            assert!(stats.breaker_open);
            assert_eq!((stats.breaker_opens, stats.errors), (1, 3));
            let reached = flaky.commands.load(Ordering::SeqCst);
            // Open: calls run their bodies without touching the backend.
            for _ in 0..10 {
                assert_eq!(cache.scope(breaker_value()).await, 8);
            }
            assert_eq!(
                flaky.commands.load(Ordering::SeqCst),
                reached,
                "no command while open"
            );
            assert_eq!(BREAKER_BODY_RUNS.load(Ordering::SeqCst), 13);
            let stats = cache.stats();
            assert_eq!(stats.errors, 3, "skips are not errors");
            assert_eq!(stats.misses, 0, "nor misses");
            assert!(stats.breaker_skips >= 10, "{stats:?}");
            // The direct API says why, and walks are refused too.
            let err = cache.get::<u32>("b").await.unwrap_err();
            assert!(err.is_circuit_open(), "{err}");
            assert!(err.to_string().contains("circuit breaker open"), "{err}");
            let err = cache.clear_pattern("*").await.unwrap_err();
            assert!(err.is_circuit_open(), "{err}");
            assert_eq!(flaky.commands.load(Ordering::SeqCst), reached);
            let opened = logs
                .text
                .lock()
                .unwrap()
                .matches("circuit breaker open")
                .count();
            assert_eq!(opened, 1, "the opening is logged once");

            // After the cool-down one probe goes through; it fails: still open.
            tokio::time::advance(Duration::from_secs(1)).await;
            cache.scope(breaker_value()).await;
            assert_eq!(flaky.commands.load(Ordering::SeqCst), reached + 1);
            assert!(cache.stats().breaker_open);

            // The backend is back: the next probe closes it.
            flaky.down.store(false, Ordering::SeqCst);
            tokio::time::advance(Duration::from_secs(1)).await;
            let infos = logs.info.load(Ordering::SeqCst);
            cache.scope(breaker_value()).await; // probe (a miss), then stored
            cache.scope(breaker_value()).await; // a hit
            let stats = cache.stats();
            assert!(!stats.breaker_open);
            assert_eq!((stats.breaker_opens, stats.hits), (1, 1));
            assert!(
                logs.info.load(Ordering::SeqCst) > infos,
                "the closing is logged"
            );
            assert!(logs.text.lock().unwrap().contains("circuit breaker closed"));
        });
    });
}

/// Counts how often it is deserialized.
static DECODES: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
struct Counted(u32);

impl<'de> serde::Deserialize<'de> for Counted {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        DECODES.fetch_add(1, Ordering::SeqCst);
        u32::deserialize(d).map(Counted)
    }
}

/// The same, without `Clone`.
#[derive(Debug, PartialEq, serde::Serialize)]
struct CountedNoClone(u32);

impl<'de> serde::Deserialize<'de> for CountedNoClone {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        DECODES.fetch_add(1, Ordering::SeqCst);
        u32::deserialize(d).map(CountedNoClone)
    }
}

// The `&&` is the autoref specialization: clippy sees only the chosen impl.
#[allow(clippy::needless_borrow)]
#[tokio::test]
async fn memory_hits_clone_clonable_values_and_decode_the_rest() {
    use crate::__private::{probe, Always, Call, Site, Ttl, ViaBytes as _, ViaClone as _};
    static SITE: Site = Site::new("tests::typed", Ttl::Secs(60));
    let cache = Cache::builder().memory().build().unwrap();

    let clonable = || {
        let body = async { Counted(1) };
        Call::new(&SITE, Some(&cache))
            .key_fmt(format_args!("clonable"))
            .run(Always, (&&probe(&Always, &body)).typed(), body)
    };
    assert_eq!(clonable().await, Counted(1)); // miss: stored with a decoded copy
    let before = DECODES.load(Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(clonable().await, Counted(1));
    }
    assert_eq!(
        DECODES.load(Ordering::SeqCst),
        before,
        "hits cloned the stored copy"
    );

    let not_clonable = || {
        let body = async { CountedNoClone(2) };
        Call::new(&SITE, Some(&cache))
            .key_fmt(format_args!("not-clonable"))
            .run(Always, (&&probe(&Always, &body)).typed(), body)
    };
    assert_eq!(not_clonable().await, CountedNoClone(2));
    let before = DECODES.load(Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(not_clonable().await, CountedNoClone(2));
    }
    assert_eq!(
        DECODES.load(Ordering::SeqCst),
        before + 3,
        "no Clone: every hit decodes"
    );
    assert_eq!(cache.stats().hits, 6);

    // Written with the direct API: the first hit decodes and keeps a copy.
    cache
        .set("clonable", &Counted(3), Duration::from_secs(60))
        .await
        .unwrap();
    let before = DECODES.load(Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(clonable().await, Counted(3));
    }
    assert_eq!(
        DECODES.load(Ordering::SeqCst),
        before + 1,
        "decoded once, then cloned"
    );

    // The direct API still reads the bytes.
    assert_eq!(cache.get::<u32>("clonable").await.unwrap(), Some(3));
}

#[cached(ttl = 60, key = "big")]
async fn big_body() -> u32 {
    let buf = [7u8; 4000];
    tokio::task::yield_now().await;
    buf.iter().map(|&b| u32::from(b)).sum()
}

#[cached(ttl = 60, key = "outer")]
async fn nested_body() -> u32 {
    big_body().await + 1
}

async fn plain_body() -> u32 {
    let buf = [7u8; 4000];
    tokio::task::yield_now().await;
    buf.iter().map(|&b| u32::from(b)).sum()
}

#[test]
fn caching_adds_a_constant_to_future_sizes() {
    // The runtime keeps one copy of the body in its state machine: a cached
    // function's future is its body's plus a fixed overhead, and nesting
    // adds overheads instead of multiplying sizes.
    let plain = std::mem::size_of_val(&plain_body());
    let cached = std::mem::size_of_val(&big_body());
    let nested = std::mem::size_of_val(&nested_body());
    let overhead = cached - plain;
    assert!(
        overhead < 512,
        "overhead {overhead} bytes (body {plain}, cached {cached})"
    );
    assert!(nested < cached + 1024, "nested {nested}, cached {cached}");
    let cache = Cache::builder().build().unwrap();
    let scoped = std::mem::size_of_val(&cache.scope(big_body()));
    assert!(scoped < cached + 64, "scope adds {} bytes", scoped - cached);
}

/// A user codec: JSON, pretty-printed, under its own id.
struct PrettyJson;

impl crate::Codec for PrettyJson {
    fn id(&self) -> u8 {
        200
    }
    fn name(&self) -> &'static str {
        "pretty-json"
    }
    fn encode(
        &self,
        value: &dyn erased_serde::Serialize,
        out: &mut Vec<u8>,
    ) -> Result<(), crate::CodecError> {
        serde_json::to_writer_pretty(out, value).map_err(crate::CodecError::new)
    }
    fn decode(
        &self,
        bytes: &[u8],
        visit: &mut dyn FnMut(
            &mut dyn erased_serde::Deserializer<'_>,
        ) -> Result<(), erased_serde::Error>,
    ) -> Result<(), crate::CodecError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        visit(&mut <dyn erased_serde::Deserializer>::erase(&mut de)).map_err(crate::CodecError::new)
    }
}

#[tokio::test]
async fn a_user_codec_round_trips_and_marks_its_values() {
    let store = Arc::new(Flaky::default());
    let cache = Cache::builder()
        .backend(store.clone())
        .codec(PrettyJson)
        .build()
        .unwrap();
    let value = vec![("a".to_string(), 1u32), ("b".to_string(), 2)];
    cache
        .set("k", &value, Duration::from_secs(5))
        .await
        .unwrap();
    let bytes = store.value.lock().unwrap().clone().unwrap();
    assert_eq!(bytes[3], 200, "the envelope carries the user codec's id");
    assert!(
        bytes[20..].contains(&b'\n'),
        "pretty-printed by the user codec"
    );
    assert_eq!(
        cache.get::<Vec<(String, u32)>>("k").await.unwrap(),
        Some(value)
    );

    // A JSON cache reading it sees another codec: a miss, not an error.
    let json = Cache::builder().backend(store.clone()).build().unwrap();
    assert_eq!(json.get::<Vec<(String, u32)>>("k").await.unwrap(), None);
    assert_eq!(json.stats().decode_failures, 1);
}

#[test]
fn user_codecs_may_not_take_reserved_ids() {
    struct Squatter;
    impl crate::Codec for Squatter {
        fn id(&self) -> u8 {
            b'j'
        }
        fn name(&self) -> &'static str {
            "squatter"
        }
        fn encode(
            &self,
            _: &dyn erased_serde::Serialize,
            _: &mut Vec<u8>,
        ) -> Result<(), crate::CodecError> {
            Ok(())
        }
        fn decode(
            &self,
            _: &[u8],
            _: &mut dyn FnMut(
                &mut dyn erased_serde::Deserializer<'_>,
            ) -> Result<(), erased_serde::Error>,
        ) -> Result<(), crate::CodecError> {
            Ok(())
        }
    }
    let err = Cache::builder().codec(Squatter).build().unwrap_err();
    assert!(err.to_string().contains("reserved"), "{err}");
}

static SECRET_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, key = "secret-test")]
async fn guarded() -> u32 {
    SECRET_RUNS.fetch_add(1, Ordering::SeqCst);
    1
}

#[test]
fn credentials_stay_out_of_logs_errors_and_debug_output() {
    let in_url = "url-password-7f3a";
    let in_setting = "setting-password-9c1d";
    // A port with nothing listening: every command fails at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let logs = LevelCounter::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let shown = tracing::subscriber::with_default(logs.clone(), || {
        let cache = Cache::builder()
            .redis(format!("redis://user:{in_url}@127.0.0.1:{port}/0"))
            .password(in_setting)
            .build()
            .unwrap();
        rt.block_on(async {
            assert_eq!(cache.scope(guarded()).await, 1, "fail-open");
            let err = cache.get::<u32>("secret-test").await.unwrap_err();
            format!("{err}\n{err:?}\n{cache:?}")
        })
    });
    let logged = logs.text.lock().unwrap().clone();
    assert!(
        logged.contains("backend=\"redis\""),
        "the failure was logged: {logged}"
    );
    assert!(
        logs.warn.load(Ordering::SeqCst) >= 1,
        "the failure was logged"
    );
    for secret in [in_url, in_setting] {
        assert!(!logged.contains(secret), "a password in the logs: {logged}");
        assert!(
            !shown.contains(secret),
            "a password in errors or Debug: {shown}"
        );
    }
}

#[tokio::test]
async fn two_sites_with_one_name_do_not_share_values() {
    use crate::__private::{Always, Call, Site, Ttl};
    static FIRST: Site = Site::new("tests::same_name", Ttl::Secs(60));
    static SECOND: Site = Site::new("tests::same_name", Ttl::Secs(60));
    let cache = Cache::builder().memory().build().unwrap();
    let call = |site: &'static Site, value: u32| {
        Call::new(site, Some(&cache))
            .key_args(&(1u32,))
            .run(Always, None, async move { value })
    };
    assert_eq!(call(&FIRST, 1).await, 1);
    assert_eq!(call(&FIRST, 99).await, 1, "the first site caches");
    assert_eq!(call(&SECOND, 2).await, 2, "not the first site's value");
    assert_eq!(call(&SECOND, 3).await, 3, "the second site runs uncached");
    assert_eq!(call(&FIRST, 99).await, 1, "the first site still caches");
}

static UNCACHED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, key = "nowhere")]
async fn without_a_cache() -> u32 {
    UNCACHED_RUNS.fetch_add(1, Ordering::SeqCst);
    5
}

#[test]
fn no_cache_runs_the_body_and_warns_once_per_function() {
    let logs = LevelCounter::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    tracing::subscriber::with_default(logs.clone(), || {
        rt.block_on(async {
            for _ in 0..3 {
                assert_eq!(without_a_cache().await, 5);
            }
        })
    });
    assert_eq!(UNCACHED_RUNS.load(Ordering::SeqCst), 3);
    assert_eq!(
        logs.warn.load(Ordering::SeqCst),
        1,
        "one warning, not one per call"
    );
}

#[tokio::test]
async fn a_name_clash_is_logged_as_an_error() {
    use crate::__private::{Always, Call, Site, Ttl};
    static OWNER: Site = Site::new("tests::clash_logged", Ttl::Secs(60));
    static LATECOMER: Site = Site::new("tests::clash_logged", Ttl::Secs(60));
    let cache = Cache::builder().memory().build().unwrap();
    let logs = LevelCounter::default();
    let _guard = tracing::subscriber::set_default(logs.clone());
    for site in [&OWNER, &LATECOMER, &LATECOMER] {
        Call::new(site, Some(&cache))
            .key_args(&(1u8,))
            .run(Always, None, async { 0u8 })
            .await;
    }
    assert_eq!(
        logs.error.load(Ordering::SeqCst),
        1,
        "one error, at the clash"
    );
}

/// A tagged read-through whose body is still running when its tag is
/// invalidated must not store its (older) result; a call that starts after
/// the invalidation stores normally. Checked on each in-process store.
async fn stale_tagged_write_is_refused(cache: Cache) {
    use crate::__private::{Always, Call, Site, Ttl};
    static SITE: Site = Site::new("tests::tagged_race", Ttl::Secs(60));
    let call = |cache: &Cache| {
        Call::new(&SITE, Some(cache))
            .key_fmt(format_args!("product:1"))
            .tag(format_args!("products"))
    };

    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let slow = call(&cache).run(Always, None, async move {
        let _ = started_tx.send(());
        let _ = release_rx.await;
        String::from("read before the update")
    });
    let slow = tokio::spawn(slow);
    started_rx.await.unwrap();
    // The data changes and its tag is invalidated while the body runs.
    assert_eq!(cache.invalidate_tags(&["products"]).await.unwrap(), 0);
    release_tx.send(()).unwrap();
    assert_eq!(
        slow.await.unwrap(),
        "read before the update",
        "the caller still gets it"
    );
    assert!(
        !cache.exists("product:1").await.unwrap(),
        "a value computed before the invalidation is not stored"
    );

    let fresh = call(&cache)
        .run(Always, None, async { String::from("after") })
        .await;
    assert_eq!(fresh, "after");
    assert_eq!(
        cache.get::<String>("product:1").await.unwrap().as_deref(),
        Some("after")
    );
    assert_eq!(cache.invalidate_tags(&["products"]).await.unwrap(), 1);
    assert!(!cache.exists("product:1").await.unwrap());
}

#[tokio::test]
async fn memory_store_refuses_a_write_that_predates_an_invalidation() {
    stale_tagged_write_is_refused(Cache::builder().memory().build().unwrap()).await;
}

#[cfg(feature = "testing")]
#[tokio::test]
async fn mock_refuses_a_write_that_predates_an_invalidation() {
    use crate::testing::{MockBackend, Op};
    let mock = MockBackend::new();
    stale_tagged_write_is_refused(mock.cache()).await;
    let ops = mock.operations();
    assert!(
        ops.contains(&Op::SetRefused {
            key: "product:1".into()
        }),
        "{ops:?}"
    );
    assert!(
        ops.contains(&Op::InvalidateTag {
            tag: "products".into(),
            removed: 1
        }),
        "{ops:?}"
    );
}

#[tokio::test]
async fn memory_store_forgets_tagged_entries_that_expire_or_are_replaced() {
    let cache = Cache::builder().memory().build().unwrap();
    let memory = cache.engine.l2.local_store().expect("the memory store");
    for i in 0..20 {
        cache
            .set_tagged(&format!("k{i}"), &i, Duration::from_millis(20), &["t"])
            .await
            .unwrap();
    }
    // Replaced by an untagged value: the tag must not remove it later.
    cache
        .set("k0", &"untagged", Duration::from_secs(60))
        .await
        .unwrap();
    // moka's expiry wheel works in steps of about a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    memory.run_pending_tasks();
    assert_eq!(memory.tag_count(), 0, "the record went with its entries");
    assert_eq!(cache.invalidate_tags(&["t"]).await.unwrap(), 0);
    assert_eq!(
        cache.get::<String>("k0").await.unwrap().as_deref(),
        Some("untagged")
    );
}

#[tokio::test]
async fn a_custom_backend_without_tags_fails_open() {
    // `Flaky` implements only the required methods: no tags.
    let cache = Cache::builder()
        .backend(Arc::new(Flaky::default()))
        .build()
        .unwrap();
    let err = cache.invalidate_tags(&["t"]).await.unwrap_err();
    assert!(err.to_string().contains("does not support tags"), "{err}");
    let err = cache
        .set_tagged("k", &1, Duration::from_secs(1), &["t"])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not support tags"), "{err}");

    // A tagged #[cached] call on it runs its body and returns the result.
    use crate::__private::{Always, Call, Site, Ttl};
    static SITE: Site = Site::new("tests::untaggable", Ttl::Secs(60));
    let out = Call::new(&SITE, Some(&cache))
        .key_fmt(format_args!("k"))
        .tag(format_args!("t"))
        .run(Always, None, async { 7u32 })
        .await;
    assert_eq!(out, 7);
    // Two from the direct calls above, one from the failed lookup.
    assert_eq!(cache.stats().errors, 3);
}

/// A write-through that lands while a read-through's body runs wins: the
/// read-through's older value does not overwrite it.
async fn write_through_beats_a_slower_read_through(cache: Cache) {
    use crate::__private::{Always, Call, Site, Ttl};
    static READ: Site = Site::new("tests::race_read", Ttl::Secs(60));
    static PUT: Site = Site::new("tests::race_put", Ttl::Secs(60));

    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let read = Call::new(&READ, Some(&cache))
        .key_fmt(format_args!("product:7"))
        .run(Always, None, async move {
            let _ = started_tx.send(());
            let _ = release_rx.await;
            String::from("old")
        });
    let read = tokio::spawn(read);
    started_rx.await.unwrap();
    let put = Call::new(&PUT, Some(&cache))
        .key_fmt(format_args!("product:7"))
        .put(Always, async { String::from("new") })
        .await;
    assert_eq!(put, "new");
    release_tx.send(()).unwrap();
    assert_eq!(read.await.unwrap(), "old");
    assert_eq!(
        cache.get::<String>("product:7").await.unwrap().as_deref(),
        Some("new"),
        "the write-through's value stays"
    );
}

#[tokio::test]
async fn memory_store_keeps_a_write_through_over_a_slower_read_through() {
    write_through_beats_a_slower_read_through(Cache::builder().memory().build().unwrap()).await;
}

#[cfg(feature = "testing")]
#[tokio::test]
async fn mock_keeps_a_write_through_over_a_slower_read_through() {
    use crate::testing::{MockBackend, Op};
    let mock = MockBackend::new();
    write_through_beats_a_slower_read_through(mock.cache()).await;
    assert!(mock.operations().contains(&Op::SetKept {
        key: "product:7".into()
    }));
}

#[cfg(feature = "testing")]
#[tokio::test(start_paused = true)]
async fn a_tagged_body_that_outlasts_the_version_window_is_not_stored() {
    use crate::__private::{Always, Call, Site, Ttl};
    static SITE: Site = Site::new("tests::slow_tagged", Ttl::Secs(60));
    let mock = crate::testing::MockBackend::new();
    let cache = mock.cache();
    let call = |cache: &Cache| {
        Call::new(&SITE, Some(cache))
            .key_fmt(format_args!("report"))
            .tag(format_args!("reports"))
    };
    let slow = call(&cache).run(Always, None, async {
        tokio::time::sleep(crate::TAG_VERSION_WINDOW + Duration::from_secs(1)).await;
        1u32
    });
    assert_eq!(slow.await, 1);
    assert!(!mock.was_written("report"), "older than any version kept");

    let quick = call(&cache).run(Always, None, async { 2u32 });
    assert_eq!(quick.await, 2);
    assert!(mock.was_written("report"));
}

static LONG_DEADLINE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, key = "long-deadline")]
async fn under_the_longest_deadline() -> u32 {
    LONG_DEADLINE_RUNS.fetch_add(1, Ordering::SeqCst);
    11
}

#[tokio::test]
async fn the_longest_command_timeout_does_not_overflow_the_clock() {
    let flaky = Arc::new(Flaky::default());
    let cache = Cache::builder()
        .backend(flaky.clone())
        .command_timeout(Duration::MAX)
        .build()
        .unwrap();
    for _ in 0..2 {
        assert_eq!(cache.scope(under_the_longest_deadline()).await, 11);
    }
    assert_eq!(
        LONG_DEADLINE_RUNS.load(Ordering::SeqCst),
        1,
        "the second call hits"
    );
    assert_eq!((cache.stats().hits, cache.stats().errors), (1, 0));
    assert!(
        flaky.value.lock().unwrap().is_some(),
        "the value was written"
    );
}

#[tokio::test]
async fn a_direct_read_of_undecodable_bytes_counts_once() {
    let cache = Cache::builder().memory().build().unwrap();
    cache
        .set("k", &"text", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(cache.get::<u64>("k").await.unwrap(), None);
    let stats = cache.stats();
    assert_eq!((stats.decode_failures, stats.misses, stats.hits), (1, 1, 0));
}

#[cfg(feature = "testing")]
#[crate::cache_evict(keys = ["a", "b", "c", "d", "e"], cache = cache)]
async fn evict_five(cache: &Cache) -> Result<(), String> {
    let _ = cache;
    Ok(())
}

/// An eviction of several keys, each under the command deadline, is bounded
/// as a whole: past `evict_timeout` the rest is abandoned, counted, and the
/// function returns.
#[cfg(feature = "testing")]
#[tokio::test(start_paused = true)]
async fn an_eviction_has_one_bound() {
    use crate::testing::MockBackend;
    let mock = MockBackend::new();
    for key in ["a", "b", "c", "d", "e"] {
        mock.insert(key, &1, Duration::from_secs(600));
    }
    let cache = mock
        .cache_builder()
        .command_timeout(Duration::from_secs(10))
        .evict_timeout(Duration::from_millis(2500))
        .build()
        .unwrap();
    // Each command takes a second: every one is within its own deadline.
    mock.delay(Duration::from_secs(1));
    evict_five(&cache).await.unwrap();
    mock.reset_faults();
    let mut left = mock.keys();
    left.sort();
    assert_eq!(
        left,
        ["d", "e"],
        "the deletes begun within 2.5 s went in, the rest did not"
    );
    assert_eq!(
        cache.stats().errors,
        1,
        "the abandoned eviction is counted once"
    );
}

/// A write-behind sink that takes every batch and keeps nothing.
pub(crate) struct Discard;

impl crate::write_behind::Sink<u64> for Discard {
    async fn write(
        &self,
        _: Vec<crate::write_behind::Item<u64>>,
    ) -> Result<(), crate::write_behind::SinkError> {
        Ok(())
    }
}

mod disabled {
    use super::*;
    use crate::{cache_evict, cache_put, CacheError};

    static RUNS: AtomicUsize = AtomicUsize::new(0);

    #[cached(ttl = 60, key = "off:{id}")]
    async fn counted(id: u64) -> u64 {
        RUNS.fetch_add(1, Ordering::SeqCst);
        id
    }

    #[cache_put(ttl = 60, key = "off:{id}")]
    async fn put_off(id: u64) -> u64 {
        id
    }

    #[cache_evict(keys = ["off:{id}"])]
    async fn evict_off(id: u64) {
        let _ = id;
    }

    #[tokio::test]
    async fn every_call_runs_its_body_and_the_direct_api_says_caching_is_off() {
        let cache = Cache::builder().disabled().build().unwrap();
        assert!(cache.is_disabled());
        assert_eq!(cache.backend_kind(), "disabled");
        let before = RUNS.load(Ordering::SeqCst);
        for _ in 0..3 {
            assert_eq!(cache.scope(counted(1)).await, 1);
        }
        assert_eq!(cache.scope(put_off(1)).await, 1);
        cache.scope(evict_off(1)).await;
        assert_eq!(cache.scope(counted(1)).await, 1);
        assert_eq!(
            RUNS.load(Ordering::SeqCst) - before,
            4,
            "every call ran its body"
        );
        assert_eq!(cache.stats(), crate::Stats::default(), "nothing looked up");

        macro_rules! off {
            ($e:expr) => {{
                let r: Result<(), CacheError> = $e;
                assert!(
                    matches!(r, Err(CacheError::Disabled)),
                    "{}: {r:?}",
                    stringify!($e)
                );
            }};
        }
        off!(cache.get::<u64>("off:1").await.map(drop));
        off!(cache.set("off:1", &1, Duration::from_secs(9)).await);
        off!(cache.delete("off:1").await.map(drop));
        off!(cache.exists("off:1").await.map(drop));
        off!(cache.clear_pattern("off:*").await.map(drop));
        off!(
            cache
                .set_tagged("off:1", &1, Duration::from_secs(9), &["t"])
                .await
        );
        off!(cache.invalidate_tags(&["t"]).await.map(drop));
        off!(cache.server_info().await.map(drop));
        off!(cache.scope(counted_invalidate(1)).await.map(drop));
        off!(cache.write_behind("orders", Discard).start().map(drop));
        let message = CacheError::Disabled.to_string();
        assert!(message.contains("CACHE_DISABLED"), "{message}");
    }

    #[test]
    fn the_other_settings_are_still_checked() {
        let err = Cache::builder()
            .redis("http://:pw@nowhere")
            .disabled()
            .build()
            .unwrap_err();
        assert!(
            matches!(
                err,
                CacheError::Config {
                    setting: "redis",
                    ..
                }
            ),
            "{err}"
        );
        assert!(!err.to_string().contains("pw"));
    }
}
