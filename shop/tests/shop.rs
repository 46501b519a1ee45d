//! The shop end to end: the binary as a process on a free port, against a
//! redis-server of the test's own and SQLite (PostgreSQL in one test),
//! driven over HTTP.

use cache_test_support::RedisServer;
use serde_json::{json, Value};
use shop::client::Client;
use shop::process::ShopProcess;
use std::process::Command;
use std::time::{Duration, Instant};

/// The shop binary with `env` set, the rest of the cache's settings cleared
/// (so that the caller's environment does not leak in).
fn shop(env: &[(&str, &str)]) -> ShopProcess {
    let mut command = Command::new(env!("CARGO_BIN_EXE_shop"));
    for var in [
        "REDIS_URL",
        "REDIS_CLUSTER_NODES",
        "CACHE_L1_CAPACITY",
        "CACHE_DISABLED",
        "CACHE_PREFIX",
        "DATABASE_URL",
        "SHOP_FLUSH_MS",
        "SHOP_PAGE_EVICTION",
        "RUST_LOG",
    ] {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    ShopProcess::start(command).unwrap_or_else(|e| panic!("{e}"))
}

async fn get(client: &mut Client, path: &str) -> (u16, Value) {
    let r = client.get(path).await.unwrap();
    (r.status, r.json())
}

async fn db_counts(shop: &ShopProcess) -> Value {
    get(&mut Client::new(shop.addr()), "/stats/db").await.1
}

/// Logs in as the seeded demo user.
async fn login_demo(client: &mut Client) -> shop::client::Response {
    client
        .post(
            "/login",
            Some(&json!({"username": "demo", "password": "demo"})),
        )
        .await
        .unwrap()
}

/// Polls `check` until it holds, for at most `limit`.
async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// A SQLite file of its own, for shops that share one database.
fn sqlite_file(name: &str) -> (tempdir::Dir, String) {
    let dir = tempdir::Dir::new(name);
    let url = format!("sqlite:{}", dir.path().join("shop.db").display());
    (dir, url)
}

mod tempdir {
    /// A directory under the target directory, removed when dropped.
    pub struct Dir(std::path::PathBuf);

    impl Dir {
        pub fn new(name: &str) -> Dir {
            let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }

        pub fn path(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[tokio::test]
async fn a_product_read_twice_costs_one_query() {
    let redis = RedisServer::start();
    let shop = shop(&[("REDIS_URL", &redis.url())]);
    let mut client = Client::new(shop.addr());
    let (status, first) = get(&mut client, "/products/42").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["id"], 42);
    assert_eq!(get(&mut client, "/products/42").await.1, first);
    let counts = db_counts(&shop).await;
    assert_eq!(counts["product"], 1, "{counts}");
    assert_eq!(counts["total"], 1, "{counts}");
    // An unknown id is remembered too: ids are never created.
    assert_eq!(client.get("/products/99999").await.unwrap().status, 404);
    assert_eq!(client.get("/products/99999").await.unwrap().status, 404);
    assert_eq!(db_counts(&shop).await["product"], 2);
    assert_eq!(
        redis.cmd(&["EXISTS", "cache:product:42"]).as_int(),
        1,
        "the entry is in Redis"
    );
}

#[tokio::test]
async fn after_a_put_the_product_and_the_first_page_show_the_new_value() {
    put_then_read("tag").await;
}

#[tokio::test]
async fn with_pattern_eviction_too() {
    put_then_read("pattern").await;
}

async fn put_then_read(page_eviction: &str) {
    let redis = RedisServer::start();
    let shop = shop(&[
        ("REDIS_URL", &redis.url()),
        ("SHOP_PAGE_EVICTION", page_eviction),
    ]);
    let mut client = Client::new(shop.addr());
    let (_, mut product) = get(&mut client, "/products/1").await;
    let (_, page) = get(&mut client, "/products?skip=0&limit=10").await;
    assert_eq!(page[0], product);
    let (_, second_page) = get(&mut client, "/products?skip=10&limit=10").await;
    assert_eq!(second_page[0]["id"], 11);

    product["name"] = json!("Brass lamp");
    product["stock"] = json!(7);
    let r = client.put("/products/1", &product).await.unwrap();
    assert_eq!((r.status, r.json()), (200, product.clone()));

    assert_eq!(get(&mut client, "/products/1").await.1, product);
    assert_eq!(
        get(&mut client, "/products?skip=0&limit=10").await.1[0],
        product
    );
    let counts = db_counts(&shop).await;
    assert_eq!(
        counts["product"], 1,
        "the PUT wrote the product through: {counts}"
    );
    assert_eq!(counts["product_update"], 1, "{counts}");
    assert_eq!(
        counts["product_page"], 3,
        "both pages were read once, the first once more after the PUT: {counts}"
    );
}

#[tokio::test]
async fn an_order_shows_in_the_totals_after_the_write_behind_flush() {
    let redis = RedisServer::start();
    let shop = shop(&[("REDIS_URL", &redis.url()), ("SHOP_FLUSH_MS", "100")]);
    let mut client = Client::new(shop.addr());
    let (_, before) = get(&mut client, "/orders/stats").await;
    let (_, profile) = get(&mut client, "/users/3/profile").await;

    let order = json!({"user_id": 3, "product_id": 5, "quantity": 2});
    let r = client.post("/orders", Some(&order)).await.unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let placed = r.json();
    let (_, product) = get(&mut client, "/products/5").await;
    assert_eq!(
        placed["total_cents"],
        2 * product["price_cents"].as_i64().unwrap()
    );

    let total = before["total"].as_i64().unwrap();
    let arrived = eventually(Duration::from_secs(10), || {
        let addr = shop.addr().to_owned();
        async move {
            let (_, now) = get(&mut Client::new(addr), "/orders/stats").await;
            now["total"] == total + 1
        }
    })
    .await;
    assert!(arrived, "the order never reached the totals");
    let (_, after) = get(&mut client, "/orders/stats").await;
    assert_eq!(after["pending"], before["pending"].as_i64().unwrap() + 1);
    assert_eq!(after["completed"], before["completed"]);
    let (_, new_profile) = get(&mut client, "/users/3/profile").await;
    assert_eq!(
        new_profile["orders"],
        profile["orders"].as_i64().unwrap() + 1
    );
    let counts = db_counts(&shop).await;
    assert!(counts["order_batch"].as_i64().unwrap() >= 1, "{counts}");
}

#[tokio::test]
async fn sessions_log_in_and_out_and_survive_a_restart() {
    let redis = RedisServer::start();
    let url = redis.url();
    let mut first = shop(&[("REDIS_URL", &url)]);
    let mut client = Client::new(first.addr());
    assert_eq!(client.get("/me").await.unwrap().status, 401);
    let r = client
        .post(
            "/login",
            Some(&json!({"username": "demo", "password": "wrong"})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.set_cookie, None);

    let r = login_demo(&mut client).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let cookie = r.set_cookie.expect("login sets a cookie");
    assert!(cookie.starts_with("shop_session="), "{cookie}");
    let id = cookie.trim_start_matches("shop_session=");
    assert_eq!(
        redis
            .cmd(&["EXISTS", &format!("cache:session:{id}")])
            .as_int(),
        1
    );
    client.set_cookie(Some(cookie.clone()));
    let (status, me) = get(&mut client, "/me").await;
    assert_eq!((status, me["username"].as_str()), (200, Some("demo")));

    // Restarted (killed, even): the session is in Redis, not in the process.
    first.kill();
    let second = shop(&[("REDIS_URL", &url)]);
    let mut client = Client::new(second.addr());
    client.set_cookie(Some(cookie.clone()));
    let (status, me) = get(&mut client, "/me").await;
    assert_eq!((status, me["username"].as_str()), (200, Some("demo")));

    assert_eq!(client.post("/logout", None).await.unwrap().status, 204);
    assert_eq!(client.get("/me").await.unwrap().status, 401);
    assert_eq!(
        redis
            .cmd(&["EXISTS", &format!("cache:session:{id}")])
            .as_int(),
        0,
        "revoked in Redis"
    );
}

#[tokio::test]
async fn two_shops_with_l1s_see_each_others_writes() {
    let redis = RedisServer::start();
    let (_dir, db) = sqlite_file("two-shops");
    let env = [
        ("REDIS_URL", redis.url()),
        ("DATABASE_URL", db),
        ("CACHE_L1_CAPACITY", "8388608".to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (a, b) = (shop(&env), shop(&env));
    let (mut on_a, mut on_b) = (Client::new(a.addr()), Client::new(b.addr()));

    let (_, mut product) = get(&mut on_b, "/products/9").await;
    get(&mut on_b, "/products/9").await; // B's L1 has it now
    assert_eq!(db_counts(&b).await["product"], 1);

    product["price_cents"] = json!(1234);
    assert_eq!(on_a.put("/products/9", &product).await.unwrap().status, 200);
    let seen = eventually(Duration::from_secs(5), || {
        let addr = b.addr().to_owned();
        async move { get(&mut Client::new(addr), "/products/9").await.1["price_cents"] == 1234 }
    })
    .await;
    assert!(seen, "B kept serving its L1 copy after A's PUT");
    assert_eq!(get(&mut on_b, "/products/9").await.1, product);
    assert_eq!(
        db_counts(&b).await["product"],
        1,
        "B read the new value from Redis, not the database"
    );
    // A page B cached before is gone too (A evicted `products:list:*`).
    let page = get(&mut on_b, "/products?skip=8&limit=2").await.1;
    assert_eq!(page[0], product);
}

#[tokio::test]
async fn bad_requests_get_a_status_and_a_message() {
    let shop = shop(&[]);
    let mut client = Client::new(shop.addr());
    let cases: [(&str, &str, Option<&str>, u16, &str); 11] = [
        ("GET", "/products/99999", None, 404, "no product 99999"),
        ("GET", "/products/lamp", None, 400, "the id in the path"),
        (
            "GET",
            "/products?limit=0",
            None,
            400,
            "limit must be 1 to 1000",
        ),
        (
            "GET",
            "/products?skip=-1",
            None,
            400,
            "skip must be 0 or more",
        ),
        ("GET", "/products?limit=ten", None, 400, "limit"),
        ("GET", "/users/5000/profile", None, 404, "no user 5000"),
        ("GET", "/nowhere", None, 404, "no such endpoint"),
        ("PUT", "/products/3", Some("{\"id\": 3"), 400, "EOF"),
        (
            "PUT",
            "/products/3",
            Some(r#"{"id": 4, "name": "x", "price_cents": 1, "stock": 1}"#),
            400,
            "the body's id 4 is not the path's 3",
        ),
        (
            "POST",
            "/orders",
            Some(r#"{"user_id": 1, "product_id": 123456, "quantity": 1}"#),
            400,
            "no product 123456",
        ),
        (
            "POST",
            "/orders",
            Some(r#"{"user_id": 1, "product_id": 1, "quantity": 0}"#),
            400,
            "quantity must be 1 to 1000",
        ),
    ];
    for (method, path, body, status, message) in cases {
        let r = client
            .send(method, path, body.map(str::to_owned))
            .await
            .unwrap();
        assert_eq!(r.status, status, "{method} {path}: {}", r.body);
        let error = r.json()["error"].as_str().unwrap_or_default().to_owned();
        assert!(
            error.contains(message),
            "{method} {path}: {error:?} lacks {message:?}"
        );
    }
    assert_eq!(
        client
            .put(
                "/products/424242",
                &json!({"id": 424242, "name": "x", "price_cents": 1, "stock": 1})
            )
            .await
            .unwrap()
            .status,
        404
    );
}

#[tokio::test]
async fn a_database_error_is_a_500_that_tells_nothing() {
    let (_dir, url) = sqlite_file("db-error");
    let shop = shop(&[("DATABASE_URL", &url)]);
    let mut client = Client::new(shop.addr());
    assert_eq!(get(&mut client, "/products/1").await.0, 200);
    let path = url.trim_start_matches("sqlite:");
    rusqlite::Connection::open(path)
        .unwrap()
        .execute_batch("DROP TABLE products")
        .unwrap();
    let r = client.get("/products/2").await.unwrap();
    assert_eq!(r.status, 500);
    assert_eq!(r.json(), json!({"error": "internal error"}));
    assert!(
        shop.log().contains("no such table"),
        "the cause is logged: {}",
        shop.log()
    );
    assert_eq!(
        get(&mut client, "/products/1").await.0,
        200,
        "a cached product is still served"
    );
}

#[tokio::test]
async fn a_redis_outage_changes_nothing_a_client_sees() {
    let mut redis = RedisServer::start();
    let shop = shop(&[("REDIS_URL", &redis.url()), ("SHOP_FLUSH_MS", "100")]);
    let mut client = Client::new(shop.addr());
    let (_, mut product) = get(&mut client, "/products/77").await;
    let (_, before) = get(&mut client, "/orders/stats").await;
    redis.kill();

    assert_eq!(
        get(&mut client, "/products/77").await,
        (200, product.clone())
    );
    product["stock"] = json!(0);
    assert_eq!(
        client.put("/products/77", &product).await.unwrap().status,
        200
    );
    assert_eq!(
        get(&mut client, "/products/77").await,
        (200, product.clone())
    );
    let (status, page) = get(&mut client, "/products?skip=76&limit=1").await;
    assert_eq!((status, &page[0]), (200, &product));
    let order = json!({"user_id": 2, "product_id": 77, "quantity": 1});
    let r = client.post("/orders", Some(&order)).await.unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let (status, after) = get(&mut client, "/orders/stats").await;
    assert_eq!(status, 200);
    assert_eq!(
        after["total"],
        before["total"].as_i64().unwrap() + 1,
        "the order went to the database directly"
    );
}

#[tokio::test]
async fn with_caching_off_every_read_is_a_query() {
    let shop = shop(&[("CACHE_DISABLED", "1")]);
    let mut client = Client::new(shop.addr());
    get(&mut client, "/products/42").await;
    let (status, _) = get(&mut client, "/products/42").await;
    assert_eq!(status, 200);
    assert_eq!(db_counts(&shop).await["product"], 2);
    let (_, before) = get(&mut client, "/orders/stats").await;
    let r = client
        .post(
            "/orders",
            Some(&json!({"user_id": 1, "product_id": 1, "quantity": 1})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202);
    let (_, after) = get(&mut client, "/orders/stats").await;
    assert_eq!(after["total"], before["total"].as_i64().unwrap() + 1);
    // Sessions still work, kept in the process.
    let r = login_demo(&mut client).await;
    client.set_cookie(r.set_cookie);
    assert_eq!(get(&mut client, "/me").await.0, 200);
}

/// The PostgreSQL on this machine (`TEST_POSTGRES_URL` to use another),
/// with a database of the test's own, dropped at the end.
#[tokio::test]
async fn on_postgresql_a_product_read_twice_costs_one_query() {
    let admin_url = std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let (admin, connection) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "this test needs PostgreSQL at {admin_url} (set TEST_POSTGRES_URL to another): {e}"
            )
        });
    tokio::spawn(connection);
    let name = format!("shop_test_{}", std::process::id());
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .await
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let url = match admin_url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("TEST_POSTGRES_URL names no database: {admin_url}"),
    };

    {
        let redis = RedisServer::start();
        let shop = shop(&[("REDIS_URL", &redis.url()), ("DATABASE_URL", &url)]);
        let mut client = Client::new(shop.addr());
        let (status, first) = get(&mut client, "/products/42").await;
        assert_eq!(status, 200, "{first}");
        assert_eq!(get(&mut client, "/products/42").await.1, first);
        let (_, stats) = get(&mut client, "/orders/stats").await;
        assert_eq!(stats["total"], 20000);
        let counts = db_counts(&shop).await;
        assert_eq!(
            (counts["product"].as_i64(), counts["total"].as_i64()),
            (Some(1), Some(2))
        );
    }
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .unwrap();
}

#[tokio::test]
async fn on_a_redis_cluster_reads_updates_orders_and_sessions_work() {
    let cluster = cache_test_support::RedisCluster::start();
    let nodes = cluster.urls().join(",");
    let shop = shop(&[
        ("REDIS_CLUSTER_NODES", &nodes),
        ("CACHE_PREFIX", "shop"),
        ("SHOP_FLUSH_MS", "100"),
    ]);
    let mut client = Client::new(shop.addr());
    let (status, mut product) = get(&mut client, "/products/5").await;
    assert_eq!(status, 200, "{product}");
    get(&mut client, "/products/5").await;
    get(&mut client, "/products?skip=0&limit=10").await;
    assert_eq!(db_counts(&shop).await["product"], 1);
    assert_eq!(
        cluster.keys("shop:product:5").len(),
        1,
        "stored in the cluster"
    );

    product["stock"] = json!(1);
    assert_eq!(
        client.put("/products/5", &product).await.unwrap().status,
        200
    );
    assert_eq!(get(&mut client, "/products/5").await.1, product);
    assert_eq!(
        get(&mut client, "/products?skip=0&limit=10").await.1[4],
        product
    );

    let (_, before) = get(&mut client, "/orders/stats").await;
    let order = json!({"user_id": 4, "product_id": 5, "quantity": 1});
    assert_eq!(
        client.post("/orders", Some(&order)).await.unwrap().status,
        202
    );
    let total = before["total"].as_i64().unwrap();
    let arrived = eventually(Duration::from_secs(10), || {
        let addr = shop.addr().to_owned();
        async move { get(&mut Client::new(addr), "/orders/stats").await.1["total"] == total + 1 }
    })
    .await;
    assert!(arrived, "the order never reached the totals");

    let r = login_demo(&mut client).await;
    client.set_cookie(r.set_cookie);
    assert_eq!(get(&mut client, "/me").await.0, 200);
    assert_eq!(client.post("/logout", None).await.unwrap().status, 204);
    assert_eq!(get(&mut client, "/me").await.0, 401);
}
