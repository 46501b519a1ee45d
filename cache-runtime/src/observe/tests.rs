//! The `cache.call` span (what a trace shows of each cached call) and,
//! with the `metrics` feature, the metrics each step reports.

use crate::{cached, Backend, BackendError, BoxFuture, Cache};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::span;
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::Layer;

/// A span as the subscriber saw it.
#[derive(Debug, Clone, Default)]
struct Seen {
    name: String,
    fields: BTreeMap<String, String>,
    parent: Option<u64>,
}

/// Every span (by serial number: the registry reuses ids of closed spans)
/// and every event (its message and the serial of the span it happened in).
#[derive(Default)]
struct Record {
    next: u64,
    spans: BTreeMap<u64, Seen>,
    events: Vec<(String, Option<u64>)>,
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Record>>);

/// A span's serial number, kept in its registry entry.
struct Serial(u64);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }
}

impl<S> Layer<S> for Capture
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let mut seen = Seen {
            name: attrs.metadata().name().to_owned(),
            ..Seen::default()
        };
        attrs.record(&mut Fields(&mut seen.fields));
        let span = ctx.span(id).expect("a new span is in the registry");
        seen.parent = span
            .parent()
            .and_then(|p| p.extensions().get::<Serial>().map(|s| s.0));
        let mut record = self.0.lock().unwrap();
        record.next += 1;
        let serial = record.next;
        record.spans.insert(serial, seen);
        span.extensions_mut().insert(Serial(serial));
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        let Some(serial) = ctx
            .span(id)
            .and_then(|s| s.extensions().get::<Serial>().map(|s| s.0))
        else {
            return;
        };
        let mut record = self.0.lock().unwrap();
        if let Some(seen) = record.spans.get_mut(&serial) {
            values.record(&mut Fields(&mut seen.fields));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let within = ctx
            .event_span(event)
            .and_then(|s| s.extensions().get::<Serial>().map(|s| s.0));
        let message = fields.remove("message").unwrap_or_default();
        self.0.lock().unwrap().events.push((message, within));
    }
}

impl Capture {
    /// The `cache.call` spans, in the order they were made.
    fn calls(&self) -> Vec<(u64, Seen)> {
        let record = self.0.lock().unwrap();
        let calls = record.spans.iter().filter(|(_, s)| s.name == "cache.call");
        calls.map(|(id, s)| (*id, s.clone())).collect()
    }

    fn outcomes(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .map(|(_, s)| s.fields.get("outcome").cloned().unwrap_or_default())
            .collect()
    }

    /// The span the event with `message` happened in.
    fn event_span(&self, message: &str) -> Option<u64> {
        let record = self.0.lock().unwrap();
        let event = record.events.iter().find(|(m, _)| m == message);
        event.expect("the event was seen").1
    }

    fn span(&self, id: u64) -> Seen {
        self.0.lock().unwrap().spans[&id].clone()
    }
}

/// Runs `f` on a current-thread runtime with `capture` as the subscriber,
/// at `level` and below.
fn traced<F: std::future::Future>(level: tracing::Level, f: F) -> (Capture, F::Output) {
    let capture = Capture::default();
    let filter = tracing_subscriber::filter::LevelFilter::from_level(level);
    let subscriber = tracing_subscriber::registry().with(capture.clone().with_filter(filter));
    let _guard = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let out = runtime.block_on(f);
    (capture, out)
}

#[cached(ttl = 60, key = "user:{id}")]
async fn user(id: u64) -> String {
    tracing::info!("user body");
    format!("u{id}")
}

#[test]
fn a_cached_call_has_a_span_with_its_function_and_outcome_and_the_body_inside() {
    let (capture, _) = traced(tracing::Level::DEBUG, async {
        let cache = Cache::builder().build().unwrap();
        assert_eq!(cache.scope(user(1)).await, "u1");
        assert_eq!(cache.scope(user(1)).await, "u1");
    });
    let calls = capture.calls();
    assert_eq!(calls.len(), 2, "one span per call");
    let (first, seen) = &calls[0];
    assert!(seen.fields["function"].ends_with("user"), "{seen:?}");
    // The memory store stands where Redis would: an L2 hit.
    assert_eq!(capture.outcomes(), ["miss", "l2_hit"]);
    assert_eq!(
        capture.event_span("user body"),
        Some(*first),
        "the body runs inside its call's span"
    );
    assert!(
        !seen.fields.contains_key("key"),
        "no key below TRACE (keys can hold personal data): {seen:?}"
    );
}

#[test]
fn the_key_is_on_the_span_only_at_trace_level() {
    let (capture, _) = traced(tracing::Level::TRACE, async {
        let cache = Cache::builder().prefix("p").build().unwrap();
        cache.scope(user(7)).await;
    });
    let (_, seen) = &capture.calls()[0];
    assert_eq!(seen.fields.get("key").map(String::as_str), Some("p:user:7"));
}

#[test]
fn without_a_cache_the_outcome_is_uncached_and_the_body_still_runs_in_the_span() {
    let (capture, out) = traced(tracing::Level::DEBUG, user(3));
    assert_eq!(out, "u3");
    assert_eq!(capture.outcomes(), ["uncached"]);
    let (id, _) = capture.calls()[0];
    assert_eq!(capture.event_span("user body"), Some(id));
}

#[test]
fn at_info_level_there_is_no_span_and_the_call_is_unchanged() {
    let (capture, _) = traced(tracing::Level::INFO, async {
        let cache = Cache::builder().build().unwrap();
        cache.scope(user(1)).await;
    });
    assert!(capture.calls().is_empty());
    assert_eq!(capture.event_span("user body"), None);
}

/// A backend every command of which fails.
#[derive(Debug)]
struct Down;

impl Backend for Down {
    fn get<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, BackendError>> {
        Box::pin(async { Err(BackendError::Other("connection refused".into())) })
    }
    fn set<'a>(
        &'a self,
        _: &'a str,
        _: Bytes,
        _: Duration,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async { Err(BackendError::Other("connection refused".into())) })
    }
    fn delete<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<bool, BackendError>> {
        Box::pin(async { Err(BackendError::Other("connection refused".into())) })
    }
    fn exists<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<bool, BackendError>> {
        Box::pin(async { Err(BackendError::Other("connection refused".into())) })
    }
    fn clear_pattern<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<u64, BackendError>> {
        Box::pin(async { Err(BackendError::Other("connection refused".into())) })
    }
    fn kind(&self) -> &'static str {
        "down"
    }
}

#[test]
fn a_failing_backend_makes_the_outcome_error() {
    let (capture, out) = traced(tracing::Level::DEBUG, async {
        let cache = Cache::builder()
            .backend(Down)
            .without_breaker()
            .build()
            .unwrap();
        cache.scope(user(5)).await
    });
    assert_eq!(out, "u5", "fails open");
    assert_eq!(capture.outcomes(), ["error"]);
}

#[cached(ttl = 1, stale = "1h", key = "rate:{id}")]
async fn rate(id: u64) -> u64 {
    tracing::info!("rate body");
    id
}

#[test]
fn a_value_past_its_ttl_is_served_with_the_outcome_stale() {
    let (capture, ()) = traced(tracing::Level::DEBUG, async {
        let cache = Cache::builder().build().unwrap();
        assert_eq!(cache.scope(rate(1)).await, 1);
        // Fresh for one second (on the wall clock, as the envelope keeps it).
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(cache.scope(rate(1)).await, 1);
        // The refresh runs in the background: once it stored, a hit.
        for _ in 0..100 {
            if cache.stats().refreshes == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(cache.stats().refreshes, 1);
        assert_eq!(cache.scope(rate(1)).await, 1);
    });
    assert_eq!(capture.outcomes(), ["miss", "stale", "l2_hit"]);
}

mod instrumented {
    use super::*;

    // `#[tracing::instrument]` above `#[cached]` instruments the body: its
    // span is inside the cache's, and only when the body runs.
    #[tracing::instrument]
    #[cached(ttl = 60, key = "a:{id}")]
    async fn instrument_above(id: u64) -> u64 {
        tracing::info!("instrument_above body");
        id
    }

    // Below `#[cached]`, it instruments the whole call: its span holds the
    // cache's, hit or miss.
    #[cached(ttl = 60, key = "b:{id}")]
    #[tracing::instrument]
    async fn instrument_below(id: u64) -> u64 {
        tracing::info!("instrument_below body");
        id
    }

    /// The names of the spans from the one the event `message` happened in
    /// out to the root.
    fn chain(capture: &Capture, message: &str) -> Vec<String> {
        let mut at = capture.event_span(message);
        let mut names = Vec::new();
        while let Some(id) = at {
            let seen = capture.span(id);
            names.push(seen.name);
            at = seen.parent;
        }
        names
    }

    fn spans_named(capture: &Capture, name: &str) -> Vec<Seen> {
        let record = capture.0.lock().unwrap();
        record
            .spans
            .values()
            .filter(|s| s.name == name)
            .cloned()
            .collect()
    }

    #[test]
    fn it_composes_with_tracing_instrument_above_or_below() {
        let (capture, _) = traced(tracing::Level::DEBUG, async {
            let cache = Cache::builder().build().unwrap();
            for _ in 0..2 {
                cache.scope(instrument_above(1)).await;
                cache.scope(instrument_below(2)).await;
            }
        });
        assert_eq!(capture.outcomes(), ["miss", "miss", "l2_hit", "l2_hit"]);
        assert_eq!(
            chain(&capture, "instrument_above body"),
            ["instrument_above", "cache.call"]
        );
        assert_eq!(
            chain(&capture, "instrument_below body"),
            ["cache.call", "instrument_below"]
        );
        // Above: a span per body run; below: one per call, the hit's too,
        // each with the user's field and holding the cache's span.
        let above = spans_named(&capture, "instrument_above");
        assert_eq!(above.len(), 1);
        let below = spans_named(&capture, "instrument_below");
        assert_eq!(below.len(), 2);
        assert!(below
            .iter()
            .all(|s| s.fields["id"] == "2" && !s.fields.contains_key("outcome")));
        let calls = capture.calls();
        let in_below = calls.iter().filter(|(_, c)| {
            c.parent
                .is_some_and(|p| capture.span(p).name == "instrument_below")
        });
        assert_eq!(
            in_below.count(),
            2,
            "both calls' spans are inside the user's"
        );
    }
}

#[cfg(feature = "metrics")]
mod metrics {
    use super::*;
    use crate::{cache_evict, cache_put};
    use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
    use metrics_util::{CompositeKey, MetricKind};

    /// A recorder of this test's own, installed on its thread (leaked: the
    /// runtime keeps handles per recorder, by address, which a recorder
    /// dropped and another made in its place would share).
    fn recorded<F: std::future::Future>(f: F) -> (Snapshotter, F::Output) {
        let recorder: &'static DebuggingRecorder = Box::leak(Box::new(DebuggingRecorder::new()));
        let snapshotter = recorder.snapshotter();
        let _guard = ::metrics::set_default_local_recorder(recorder);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let out = runtime.block_on(f);
        // The hit path's counts reach the recorder once a second: now.
        crate::observe::flush_all();
        (snapshotter, out)
    }

    type Values = Vec<(
        CompositeKey,
        Option<::metrics::Unit>,
        Option<::metrics::SharedString>,
        DebugValue,
    )>;

    /// The values of the metrics of `kind` called `name` whose labels
    /// include every one of `labels` (a label's value ending with the one
    /// given: function names carry their module path).
    fn matching<'v>(
        values: &'v Values,
        kind: MetricKind,
        name: &'v str,
        labels: &'v [(&str, &str)],
    ) -> impl Iterator<Item = &'v DebugValue> {
        values
            .iter()
            .filter(move |(k, ..)| k.kind() == kind && k.key().name() == name)
            .filter(move |(k, ..)| {
                labels.iter().all(|(lk, lv)| {
                    k.key()
                        .labels()
                        .any(|l| l.key() == *lk && l.value().ends_with(lv))
                })
            })
            .map(|(.., v)| v)
    }

    fn counter(values: &Values, name: &str, labels: &[(&str, &str)]) -> u64 {
        let counts = matching(values, MetricKind::Counter, name, labels).map(|v| match v {
            DebugValue::Counter(n) => *n,
            _ => 0,
        });
        counts.sum()
    }

    fn histogram_count(values: &Values, name: &str, labels: &[(&str, &str)]) -> usize {
        let lens = matching(values, MetricKind::Histogram, name, labels).map(|v| match v {
            DebugValue::Histogram(v) => v.len(),
            _ => 0,
        });
        lens.sum()
    }

    #[cached(ttl = 60, key = "m:{id}")]
    async fn metered(id: u64) -> Result<u64, String> {
        if id == 0 {
            Err("zero".into())
        } else {
            Ok(id)
        }
    }

    #[cache_put(ttl = 60, key = "m:{id}")]
    async fn metered_put(id: u64) -> u64 {
        id
    }

    #[cache_evict(keys = ["m:{id}", "n:{id}"], tags = ["t"], pattern = "m:*")]
    async fn metered_evict(id: u64) {
        let _ = id;
    }

    #[test]
    fn gets_loads_puts_and_evictions_count_by_function_and_result() {
        let (snap, ()) = recorded(async {
            let cache = Cache::builder().build().unwrap();
            cache.scope(metered(1)).await.unwrap(); // miss, load ok
            cache.scope(metered(1)).await.unwrap(); // hit
            cache.scope(metered(1)).await.unwrap(); // hit
            cache.scope(metered(0)).await.unwrap_err(); // miss, load err
            cache.scope(metered_put(2)).await;
            cache.scope(metered(2)).await.unwrap(); // hit of the put
            cache.scope(metered_evict(2)).await;
        });
        let v = snap.snapshot().into_vec();
        let f = ("function", "metered");
        assert_eq!(
            counter(
                &v,
                "cache_gets_total",
                &[f, ("tier", "l2"), ("result", "hit")]
            ),
            3
        );
        assert_eq!(
            counter(
                &v,
                "cache_gets_total",
                &[f, ("tier", "l2"), ("result", "miss")]
            ),
            2
        );
        assert_eq!(
            counter(&v, "cache_gets_total", &[f, ("tier", "l1")]),
            0,
            "no L1 on the memory store"
        );
        assert_eq!(counter(&v, "cache_loads_total", &[f, ("result", "ok")]), 1);
        assert_eq!(counter(&v, "cache_loads_total", &[f, ("result", "err")]), 1);
        assert_eq!(histogram_count(&v, "cache_load_duration_seconds", &[f]), 2);
        let put = ("function", "metered_put");
        assert_eq!(counter(&v, "cache_puts_total", &[put]), 1);
        let evict = ("function", "metered_evict");
        assert_eq!(
            counter(&v, "cache_evictions_total", &[evict, ("kind", "key")]),
            2
        );
        assert_eq!(
            counter(&v, "cache_evictions_total", &[evict, ("kind", "tag")]),
            1
        );
        assert_eq!(
            counter(&v, "cache_evictions_total", &[evict, ("kind", "pattern")]),
            1
        );
        // Every metric has a help text.
        assert!(v.iter().all(|(_, _, help, _)| help.is_some()), "{v:?}");
    }

    #[test]
    fn failures_count_by_operation_and_commands_are_timed() {
        let recorder: &'static DebuggingRecorder = Box::leak(Box::new(DebuggingRecorder::new()));
        let snap = recorder.snapshotter();
        let _guard = ::metrics::set_default_local_recorder(recorder);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let cache = runtime.block_on(async {
            let cache = Cache::builder()
                .backend(Down)
                .breaker_threshold(2)
                .build()
                .unwrap();
            for _ in 0..4 {
                cache.scope(metered(9)).await.unwrap();
            }
            cache
        });
        crate::observe::flush_all();
        let v = snap.snapshot().into_vec();
        // Two failed lookups open the breaker; the next two skip the backend.
        assert_eq!(
            counter(&v, "cache_errors_total", &[("operation", "get")]),
            2
        );
        assert_eq!(counter(&v, "cache_breaker_opens_total", &[]), 1);
        let open = v
            .iter()
            .find(|(k, ..)| k.key().name() == "cache_breaker_open");
        assert!(
            matches!(open, Some((.., DebugValue::Gauge(g))) if g.into_inner() == 1.0),
            "{open:?}"
        );
        // The cache gone, its open breaker leaves the gauge (this recorder's
        // snapshots reset gauges: the change shows as -1).
        drop(cache);
        let after = snap.snapshot().into_vec();
        let open = after
            .iter()
            .find(|(k, ..)| k.key().name() == "cache_breaker_open");
        assert!(
            matches!(open, Some((.., DebugValue::Gauge(g))) if g.into_inner() == -1.0),
            "{open:?}"
        );
        assert_eq!(
            histogram_count(
                &v,
                "cache_redis_command_duration_seconds",
                &[("command", "get")]
            ),
            2,
            "the two commands sent, not the two skipped"
        );
        assert_eq!(
            counter(&v, "cache_gets_total", &[("function", "metered")]),
            0,
            "a failed lookup is an error, not a miss"
        );
        assert_eq!(
            counter(&v, "cache_loads_total", &[("function", "metered")]),
            4
        );
    }

    #[test]
    fn a_stale_hit_and_its_refresh_count_as_such() {
        let (snap, ()) = recorded(async {
            let cache = Cache::builder().build().unwrap();
            cache.scope(rate(2)).await;
            std::thread::sleep(Duration::from_millis(1100));
            cache.scope(rate(2)).await;
            for _ in 0..100 {
                if cache.stats().refreshes == 1 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        let v = snap.snapshot().into_vec();
        let f = ("function", "rate");
        assert_eq!(
            counter(&v, "cache_gets_total", &[f, ("result", "stale")]),
            1
        );
        assert_eq!(
            counter(&v, "cache_refreshes_total", &[f, ("result", "ok")]),
            1
        );
        assert_eq!(
            counter(&v, "cache_loads_total", &[f, ("result", "ok")]),
            2,
            "the miss and the refresh"
        );
    }

    #[test]
    fn the_write_behind_backlog_moves_with_writes_and_deliveries() {
        let (snap, ()) = recorded(async {
            let cache = Cache::builder().build().unwrap();
            let orders = cache
                .write_behind("orders", crate::tests::Discard)
                .interval(Duration::from_secs(3600))
                .start()
                .unwrap();
            for i in 0..3 {
                orders.write(&format!("o{i}"), &i).await.unwrap();
            }
            orders.flush().await.unwrap();
            for i in 3..5 {
                orders.write(&format!("o{i}"), &i).await.unwrap();
            }
        });
        let v = snap.snapshot().into_vec();
        let pending = v
            .iter()
            .find(|(k, ..)| k.key().name() == "cache_write_behind_pending")
            .map(|(k, .., value)| {
                (
                    k.key()
                        .labels()
                        .map(|l| l.value().to_owned())
                        .collect::<Vec<_>>(),
                    value,
                )
            });
        assert!(
            matches!(&pending, Some((labels, DebugValue::Gauge(g))) if labels == &["orders"] && g.into_inner() == 2.0),
            "five written, three delivered: {pending:?}"
        );
        assert_eq!(
            counter(
                &v,
                "cache_write_behind_dead_letters_total",
                &[("stream", "orders")]
            ),
            0
        );
    }

    #[test]
    fn a_value_that_does_not_decode_is_counted() {
        let (snap, ()) = recorded(async {
            let cache = Cache::builder().build().unwrap();
            cache
                .set("k", "text", Duration::from_secs(9))
                .await
                .unwrap();
            assert_eq!(cache.get::<u64>("k").await.unwrap(), None, "a miss");
            assert_eq!(
                cache.get::<String>("k").await.unwrap().as_deref(),
                Some("text")
            );
        });
        let v = snap.snapshot().into_vec();
        assert_eq!(counter(&v, "cache_decode_failures_total", &[]), 1);
    }

    #[test]
    fn a_recorder_installed_after_the_first_call_gets_the_next_calls() {
        // The first call registers its handles with no recorder (the noop).
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let cache = Cache::builder().build().unwrap();
        runtime.block_on(cache.scope(metered(5))).unwrap();
        let (snap, ()) = recorded(async {
            cache.scope(metered(5)).await.unwrap();
        });
        let v = snap.snapshot().into_vec();
        assert_eq!(
            counter(
                &v,
                "cache_gets_total",
                &[("function", "metered"), ("result", "hit")]
            ),
            1
        );
    }
}
