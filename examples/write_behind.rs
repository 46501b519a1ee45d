//! Orders written behind: each write updates Redis at once, and a background
//! flusher stores the orders in SQLite in batches.
//!
//! ```text
//! cargo run --example write_behind -- --redis redis://127.0.0.1:6379 --db /tmp/orders.db
//! ```
//!
//! Options (all optional):
//!
//! - `--redis URL` Redis to use (default: `$REDIS_URL`, else `redis://127.0.0.1:6379`)
//! - `--redis-cluster URL,URL,...` a Redis Cluster instead, found from these
//!   nodes (default: `$REDIS_CLUSTER_NODES`)
//! - `--db PATH` the SQLite file (default `orders.db`)
//! - `--writes N` how many orders to write (default 10000), over `--keys K`
//!   distinct order ids (default 1000): write `i` sets order `i % K` to total `i`
//! - `--slow-ms MS` make each batch take at least this long (to watch, or kill, a flush)
//! - `--drain` write nothing: deliver what other (perhaps killed) runs left
//!   in Redis, then exit
//! - `--consumer NAME` the flusher's name in the consumer group
//!
//! Kill a run with `kill -9` while it flushes, then run it again with
//! `--drain`: every order ends up in SQLite with its latest total.

use cache_runtime::write_behind::{Item, Sink, SinkError, WriteBehind};
use cache_runtime::Cache;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    id: u64,
    total: u64,
}

/// The database side: one SQLite transaction per batch.
struct Orders {
    db: Arc<Mutex<rusqlite::Connection>>,
    slow: Duration,
}

impl Sink<Order> for Orders {
    async fn write(&self, batch: Vec<Item<Order>>) -> Result<(), SinkError> {
        println!("batch started: {} orders", batch.len());
        std::io::stdout().flush()?;
        tokio::time::sleep(self.slow).await;
        // SQLite calls block: keep them off the async worker threads.
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || store(&mut db.lock().unwrap(), &batch)).await??;
        Ok(())
    }
}

/// Upserts the batch. A write is applied only if its version is newer than
/// the row's: a batch delivered twice (after a crash) changes nothing.
fn store(db: &mut rusqlite::Connection, batch: &[Item<Order>]) -> rusqlite::Result<()> {
    let tx = db.transaction()?;
    {
        let mut upsert = tx.prepare_cached(
            "INSERT INTO orders (key, id, total, ver_ms, ver_seq) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (key) DO UPDATE SET
               id = excluded.id, total = excluded.total,
               ver_ms = excluded.ver_ms, ver_seq = excluded.ver_seq
             WHERE (excluded.ver_ms, excluded.ver_seq) > (orders.ver_ms, orders.ver_seq)",
        )?;
        for item in batch {
            upsert.execute(rusqlite::params![
                item.key,
                item.value.id as i64,
                item.value.total as i64,
                item.version.ms() as i64,
                item.version.seq() as i64,
            ])?;
        }
    }
    tx.commit()
}

struct Args {
    redis: String,
    db: String,
    writes: u64,
    keys: u64,
    slow: Duration,
    drain: bool,
    consumer: Option<String>,
    cluster: Option<String>,
}

fn args() -> Result<Args, String> {
    let mut out = Args {
        redis: std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        db: "orders.db".into(),
        writes: 10_000,
        keys: 1_000,
        slow: Duration::ZERO,
        drain: false,
        consumer: None,
        cluster: std::env::var("REDIS_CLUSTER_NODES").ok(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| v.parse::<u64>().map_err(|e| format!("{v}: {e}"));
        match flag.as_str() {
            "--redis" => out.redis = value()?,
            "--redis-cluster" => out.cluster = Some(value()?),
            "--db" => out.db = value()?,
            "--writes" => out.writes = number(value()?)?,
            "--keys" => out.keys = number(value()?)?.max(1),
            "--slow-ms" => out.slow = Duration::from_millis(number(value()?)?),
            "--consumer" => out.consumer = Some(value()?),
            "--drain" => out.drain = true,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(out)
}

/// Writes an order, retrying a write that timed out: it may have happened
/// anyway, but the repeat gets a higher version, so the sink just stores the
/// same total twice.
async fn write(
    orders: &WriteBehind<Order>,
    key: &str,
    order: &Order,
) -> Result<(), cache_runtime::CacheError> {
    let mut attempts = 0;
    loop {
        match orders.write(key, order).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_timeout() && attempts < 5 => {
                attempts += 1;
                eprintln!("write of {key} timed out ({e}); retrying");
            }
            Err(e) => return Err(e),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args()?;
    let db = rusqlite::Connection::open(&args.db)?;
    db.execute_batch(
        "CREATE TABLE IF NOT EXISTS orders (
           key TEXT PRIMARY KEY, id INTEGER NOT NULL, total INTEGER NOT NULL,
           ver_ms INTEGER NOT NULL, ver_seq INTEGER NOT NULL)",
    )?;
    let db = Arc::new(Mutex::new(db));

    // Generous: a loaded machine must not fail a write over a slow reply.
    let builder = match &args.cluster {
        Some(nodes) => Cache::builder().redis_cluster(nodes.split(',')),
        None => Cache::builder().redis(&args.redis),
    };
    let cache = builder
        .prefix("shop")
        .command_timeout(Duration::from_secs(2))
        .build()?;
    let mut orders = cache
        .write_behind(
            "orders",
            Orders {
                db: db.clone(),
                slow: args.slow,
            },
        )
        .batch_size(500)
        .interval(Duration::from_millis(100));
    if let Some(name) = &args.consumer {
        orders = orders.consumer(name);
    }
    if args.drain {
        // Take over at once whatever other runs read but did not store.
        orders = orders.claim_idle(Duration::ZERO);
    }
    let orders: WriteBehind<Order> = orders.start()?;

    if !args.drain {
        for i in 0..args.writes {
            let id = i % args.keys;
            // Fast: Redis has the order now, SQLite gets it with the next batch.
            write(&orders, &format!("order:{id}"), &Order { id, total: i }).await?;
        }
        println!("written: {}", args.writes);
        std::io::stdout().flush()?;
    }
    // Everything written has reached SQLite before this returns.
    orders.shutdown().await?;

    let rows: i64 = db
        .lock()
        .unwrap()
        .query_row("SELECT COUNT(*) FROM orders", [], |r| r.get(0))?;
    println!("rows: {rows}");
    Ok(())
}
