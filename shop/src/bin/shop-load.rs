//! The load tool: what the cache saves the shop.
//!
//! ```text
//! cargo run --release -p shop --bin shop-load
//! ```
//!
//! For each setup (database × cache) it starts the shop as a child process,
//! drives it for a fixed time at a fixed concurrency with the mix below,
//! and prints requests/s, p50/p99 latency and database statements per
//! request. The setups: SQLite (a file of its own, four connections) and
//! PostgreSQL (a database `shop_load`, created afresh), each with caching
//! off (`CACHE_DISABLED=1`), on the memory store, on Redis, and on Redis
//! with an L1. Each run starts from the seeded data and a cold cache; a
//! warm-up (not measured) comes first.
//!
//! The mix, per request: 80% `GET /products/{id}` with ids Zipf-distributed
//! (s = 1) over the 10,000 products, 5% a page of 100 (`GET /products`,
//! the page Zipf-distributed over the 100 pages), 5% `GET /orders/stats`,
//! 5% a profile (`GET /users/{id}/profile`, ids uniform over 1,000 users),
//! and 5% writes: 3% `PUT /products/{id}` (a Zipf id, its stock changed),
//! 2% `POST /orders`.
//!
//! Options:
//!
//! - `--duration SECS` measured time per setup (default 10)
//! - `--warmup SECS` unmeasured time before it (default 2)
//! - `--concurrency N` clients, each with one keep-alive connection,
//!   sending a request as soon as the last one is answered (default 32)
//! - `--only NAME,NAME` run only these setups (`sqlite-off`,
//!   `sqlite-memory`, `sqlite-redis`, `sqlite-redis-l1`, `postgres-off`,
//!   ...)
//! - `--redis URL` (default `$REDIS_URL`, else `redis://127.0.0.1:6379`):
//!   each run uses a prefix of its own there, removed afterwards
//! - `--page-eviction tag|pattern` how an update removes the cached pages
//!   (the shop's `SHOP_PAGE_EVICTION`; default `tag`)
//! - `--postgres URL` a database to connect to while creating `shop_load`
//!   (default `$TEST_POSTGRES_URL`, else
//!   `postgres://postgres@127.0.0.1:5432/postgres`)
//!
//! The tool and the shop share the machine: on 2 cores the load generator
//! takes a good part of the CPU the shop would otherwise have.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use serde_json::json;
use shop::client::Client;
use shop::process::ShopProcess;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    duration: Duration,
    warmup: Duration,
    concurrency: usize,
    only: Option<Vec<String>>,
    redis: String,
    postgres: String,
    page_eviction: String,
}

fn args() -> Result<Args, String> {
    let mut out = Args {
        duration: Duration::from_secs(10),
        warmup: Duration::from_secs(2),
        concurrency: 32,
        only: None,
        redis: std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        postgres: std::env::var("TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
        page_eviction: "tag".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let secs = |v: String| {
            v.parse::<f64>()
                .ok()
                .filter(|s| *s >= 0.0)
                .map(Duration::from_secs_f64)
                .ok_or(format!("{v}: expected seconds"))
        };
        match flag.as_str() {
            "--duration" => out.duration = secs(value()?)?,
            "--warmup" => out.warmup = secs(value()?)?,
            "--concurrency" => {
                let v = value()?;
                out.concurrency = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(format!("{v}: expected a positive number"))?;
            }
            "--only" => out.only = Some(value()?.split(',').map(str::to_owned).collect()),
            "--redis" => out.redis = value()?,
            "--postgres" => out.postgres = value()?,
            "--page-eviction" => {
                out.page_eviction = value()?;
                if !matches!(out.page_eviction.as_str(), "tag" | "pattern") {
                    return Err(format!(
                        "--page-eviction {}: expected tag or pattern",
                        out.page_eviction
                    ));
                }
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(out)
}

#[derive(Clone, Copy, PartialEq)]
enum Database {
    Sqlite,
    Postgres,
}

#[derive(Clone, Copy, PartialEq)]
enum Store {
    Off,
    Memory,
    Redis,
    RedisL1,
}

const SETUPS: [(Database, Store); 8] = [
    (Database::Sqlite, Store::Off),
    (Database::Sqlite, Store::Memory),
    (Database::Sqlite, Store::Redis),
    (Database::Sqlite, Store::RedisL1),
    (Database::Postgres, Store::Off),
    (Database::Postgres, Store::Memory),
    (Database::Postgres, Store::Redis),
    (Database::Postgres, Store::RedisL1),
];

fn name(db: Database, store: Store) -> String {
    let db = match db {
        Database::Sqlite => "sqlite",
        Database::Postgres => "postgres",
    };
    let store = match store {
        Store::Off => "off",
        Store::Memory => "memory",
        Store::Redis => "redis",
        Store::RedisL1 => "redis-l1",
    };
    format!("{db}-{store}")
}

/// What one client saw.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    by_kind: [Vec<u32>; KINDS.len()],
    errors: u64,
    first_error: Option<String>,
}

/// The mix's kinds of request, for the latency by kind.
const KINDS: [&str; 6] = ["product", "page", "stats", "profile", "put", "order"];

/// One request of the mix; its kind (an index into `KINDS`).
async fn one(
    client: &mut Client,
    rng: &mut StdRng,
    ids: &Zipf<f64>,
    pages: &Zipf<f64>,
) -> (usize, Result<(), String>) {
    let roll = rng.random_range(0..100);
    let product = ids.sample(rng) as i64;
    let kind = match roll {
        0..80 => 0,
        80..85 => 1,
        85..90 => 2,
        90..95 => 3,
        95..98 => 4,
        _ => 5,
    };
    let response = async {
        Ok(match roll {
            0..80 => client.get(&format!("/products/{product}")).await?,
            80..85 => {
                let skip = (pages.sample(rng) as i64 - 1) * 100;
                client
                    .get(&format!("/products?skip={skip}&limit=100"))
                    .await?
            }
            85..90 => client.get("/orders/stats").await?,
            90..95 => {
                let user = rng.random_range(1..=shop::db::USERS);
                client.get(&format!("/users/{user}/profile")).await?
            }
            95..98 => {
                // The product as the seed made it (the tool changes only stock).
                let body = json!({
                    "id": product,
                    "name": format!("Product {product}"),
                    "price_cents": 100 + (product * 7919) % 9900,
                    "stock": rng.random_range(0..500),
                });
                client.put(&format!("/products/{product}"), &body).await?
            }
            _ => {
                let body = json!({
                    "user_id": rng.random_range(1..=shop::db::USERS),
                    "product_id": product,
                    "quantity": rng.random_range(1..=5),
                });
                client.post("/orders", Some(&body)).await?
            }
        })
    }
    .await;
    let result = response.and_then(|r: shop::client::Response| {
        if (200..300).contains(&r.status) {
            Ok(())
        } else {
            Err(format!("{}: {}", r.status, r.body))
        }
    });
    (kind, result)
}

async fn total_queries(addr: &str) -> Result<u64, String> {
    let r = Client::new(addr).get("/stats/db").await?;
    r.json()["total"]
        .as_u64()
        .ok_or_else(|| format!("/stats/db: {}", r.body))
}

struct Row {
    name: String,
    requests: u64,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    queries_per_request: f64,
    errors: u64,
    /// p50 and p99 by kind of request, ms.
    kinds: [(f64, f64); KINDS.len()],
}

/// Drives the shop at `addr`: warm-up, then the measured time.
async fn drive(addr: &str, args: &Args, name: String) -> Result<Row, String> {
    let warming = Arc::new(AtomicBool::new(true));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..args.concurrency {
        let (addr, warming, stop) = (addr.to_owned(), warming.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut client = Client::new(addr);
            let mut rng = StdRng::seed_from_u64(w as u64);
            let ids = Zipf::new(shop::db::PRODUCTS as f64, 1.0).expect("valid");
            let pages = Zipf::new(100.0, 1.0).expect("valid");
            let mut tally = Tally::default();
            while !stop.load(Ordering::Relaxed) {
                let start = Instant::now();
                let (kind, result) = one(&mut client, &mut rng, &ids, &pages).await;
                if warming.load(Ordering::Relaxed) {
                    continue;
                }
                let us = start.elapsed().as_micros().min(u32::MAX as u128) as u32;
                match result {
                    Ok(()) => {
                        tally.latencies_us.push(us);
                        tally.by_kind[kind].push(us);
                    }
                    Err(e) => {
                        tally.errors += 1;
                        tally.first_error.get_or_insert(e);
                    }
                }
            }
            tally
        }));
    }
    tokio::time::sleep(args.warmup).await;
    let queries_before = total_queries(addr).await?;
    warming.store(false, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(args.duration).await;
    stop.store(true, Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    let mut latencies = Vec::new();
    let mut by_kind: [Vec<u32>; KINDS.len()] = Default::default();
    let mut errors = 0;
    for worker in workers {
        let tally = worker.await.map_err(|e| e.to_string())?;
        latencies.extend(tally.latencies_us);
        for (all, mine) in by_kind.iter_mut().zip(tally.by_kind) {
            all.extend(mine);
        }
        errors += tally.errors;
        if let Some(e) = tally.first_error {
            eprintln!("{name}: a request failed: {e}");
        }
    }
    let queries = total_queries(addr).await? - queries_before;
    latencies.sort_unstable();
    let pct = |p: f64| percentile(&latencies, p);
    let kinds = by_kind.map(|mut v| {
        v.sort_unstable();
        (percentile(&v, 0.50), percentile(&v, 0.99))
    });
    let requests = latencies.len() as u64 + errors;
    Ok(Row {
        name,
        requests,
        seconds,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        queries_per_request: queries as f64 / requests.max(1) as f64,
        errors,
        kinds,
    })
}

/// The `p` quantile of sorted microseconds, in milliseconds.
fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i]) / 1000.0
}

/// Creates the database `shop_load` afresh, and returns its URL.
async fn fresh_postgres(admin_url: &str) -> Result<String, String> {
    let (admin, connection) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("PostgreSQL at {admin_url} (--postgres): {e}"))?;
    tokio::spawn(connection);
    for sql in [
        "DROP DATABASE IF EXISTS shop_load WITH (FORCE)",
        "CREATE DATABASE shop_load",
    ] {
        admin
            .batch_execute(sql)
            .await
            .map_err(|e| format!("{sql}: {e}"))?;
    }
    let (base, _) = admin_url
        .rsplit_once('/')
        .ok_or_else(|| format!("--postgres {admin_url}: no database in the URL"))?;
    Ok(format!("{base}/shop_load"))
}

async fn run_one(args: &Args, db: Database, store: Store, run: usize) -> Result<Row, String> {
    let name = name(db, store);
    let mut command = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
    command.arg("--serve");
    for var in [
        "REDIS_URL",
        "REDIS_CLUSTER_NODES",
        "CACHE_L1_CAPACITY",
        "CACHE_DISABLED",
        "DATABASE_URL",
    ] {
        command.env_remove(var);
    }
    let dir = std::env::temp_dir().join(format!("shop-load-{}", std::process::id()));
    let database_url = match db {
        Database::Sqlite => {
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            let file = dir.join(format!("{name}.db"));
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
            }
            format!("sqlite:{}", file.display())
        }
        Database::Postgres => fresh_postgres(&args.postgres).await?,
    };
    command.env("DATABASE_URL", &database_url);
    command.env("SHOP_PAGE_EVICTION", &args.page_eviction);
    let prefix = format!("shop-load-{}-{run}", std::process::id());
    command.env("CACHE_PREFIX", &prefix);
    match store {
        Store::Off => {
            command.env("CACHE_DISABLED", "1");
        }
        Store::Memory => {}
        Store::Redis => {
            command.env("REDIS_URL", &args.redis);
        }
        Store::RedisL1 => {
            command
                .env("REDIS_URL", &args.redis)
                .env("CACHE_L1_CAPACITY", "67108864");
        }
    }
    let mut shop = ShopProcess::start(command)?;
    let row = drive(shop.addr(), args, name).await;
    let _ = shop.stop();
    if matches!(store, Store::Redis | Store::RedisL1) {
        clear_prefix(&args.redis, &prefix).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    row
}

/// Removes what a run left in Redis (its keys, the order stream).
async fn clear_prefix(url: &str, prefix: &str) {
    let Ok(cache) = cache_runtime::Cache::builder()
        .redis(url)
        .prefix(prefix)
        .build()
    else {
        return;
    };
    if let Err(e) = cache.clear_pattern("*").await {
        eprintln!("could not clear the run's keys under {prefix}: {e}");
    }
}

fn print(rows: &[Row], args: &Args) {
    println!(
        "\n{} s per setup after {} s of warm-up, {} clients, pages evicted by {}\n",
        args.duration.as_secs_f64(),
        args.warmup.as_secs_f64(),
        args.concurrency,
        args.page_eviction
    );
    println!("| setup | requests/s | p50 ms | p99 ms | DB statements/request | errors |");
    println!("|---|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.3} | {} |",
            r.name,
            r.requests as f64 / r.seconds,
            r.p50_ms,
            r.p99_ms,
            r.queries_per_request,
            r.errors
        );
    }
    println!("\np50 / p99 ms by kind of request\n");
    println!("| setup | {} |", KINDS.join(" | "));
    println!("|---|{}", "---:|".repeat(KINDS.len()));
    for r in rows {
        let cells: Vec<String> = r
            .kinds
            .iter()
            .map(|(p50, p99)| format!("{p50:.2} / {p99:.2}"))
            .collect();
        println!("| {} | {} |", r.name, cells.join(" | "));
    }
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--serve") {
        // The shop itself, as the child process of a run.
        return shop::main();
    }
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("shop-load: {e}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let mut rows = Vec::new();
    for (run, (db, store)) in SETUPS.into_iter().enumerate() {
        let name = name(db, store);
        if args.only.as_ref().is_some_and(|only| !only.contains(&name)) {
            continue;
        }
        eprintln!("{name}...");
        match runtime.block_on(run_one(&args, db, store, run)) {
            Ok(row) => rows.push(row),
            Err(e) => {
                eprintln!("shop-load: {name}: {e}");
                std::process::exit(1);
            }
        }
    }
    print(&rows, &args);
}
