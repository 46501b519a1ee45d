//! The database: SQLite embedded in the binary (the default) or PostgreSQL
//! (`DATABASE_URL=postgres://...`), behind one small API. Every statement
//! sent is counted by kind, for `GET /stats/db`.
//!
//! Both dialects run the same SQL: `$1`-style parameters in order of
//! appearance, `CAST(... AS BIGINT)`, and `ON CONFLICT DO NOTHING`.

use crate::model::{NewOrder, OrderStats, Product, Profile};
use serde::Serialize;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What a statement was for: the kinds `GET /stats/db` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    /// One product by id.
    Product,
    /// A page of products.
    ProductPage,
    /// A product's update.
    ProductUpdate,
    /// A batch of orders (one statement, whatever its size).
    OrderBatch,
    /// The order totals.
    OrderStats,
    /// A user's profile.
    UserProfile,
    /// A user's credentials, at login.
    Login,
}

impl Query {
    const ALL: [Query; 7] = [
        Query::Product,
        Query::ProductPage,
        Query::ProductUpdate,
        Query::OrderBatch,
        Query::OrderStats,
        Query::UserProfile,
        Query::Login,
    ];

    /// The kind's name in `/stats/db`.
    pub fn name(self) -> &'static str {
        match self {
            Query::Product => "product",
            Query::ProductPage => "product_page",
            Query::ProductUpdate => "product_update",
            Query::OrderBatch => "order_batch",
            Query::OrderStats => "order_stats",
            Query::UserProfile => "user_profile",
            Query::Login => "login",
        }
    }
}

/// A database failure. Its text is for the log, never for a client: it can
/// name tables, columns and the server.
#[derive(Debug)]
pub struct DbError(String);

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "database error: {}", self.0)
    }
}

impl std::error::Error for DbError {}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        DbError(e.to_string())
    }
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        // The source holds the server's message; the outer text alone is
        // often just "db error".
        match std::error::Error::source(&e) {
            Some(source) => DbError(format!("{e}: {source}")),
            None => DbError(e.to_string()),
        }
    }
}

/// A statement's parameter.
#[derive(Debug, Clone)]
enum Param {
    Int(i64),
    Text(String),
}

/// A result cell.
#[derive(Debug, Clone)]
enum Cell {
    Int(i64),
    Text(String),
    Null,
}

/// One result row.
struct Row(Vec<Cell>);

impl Row {
    fn int(&self, i: usize) -> Result<i64, DbError> {
        match self.0.get(i) {
            Some(Cell::Int(v)) => Ok(*v),
            Some(Cell::Null) => Ok(0),
            other => Err(DbError(format!(
                "column {i}: expected an integer, got {other:?}"
            ))),
        }
    }

    fn text(&self, i: usize) -> Result<String, DbError> {
        match self.0.get(i) {
            Some(Cell::Text(v)) => Ok(v.clone()),
            other => Err(DbError(format!("column {i}: expected text, got {other:?}"))),
        }
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
  id BIGINT PRIMARY KEY, username TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
  salt TEXT NOT NULL, password_hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS products (
  id BIGINT PRIMARY KEY, name TEXT NOT NULL, price_cents BIGINT NOT NULL, stock BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
  id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL, product_id BIGINT NOT NULL,
  quantity BIGINT NOT NULL, total_cents BIGINT NOT NULL, status TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS orders_by_user ON orders (user_id);
";

/// The sample data: users (user 1 is `demo`), 10,000 products, 20,000
/// orders, the same on every start and in both dialects; rows already there
/// are kept, so a restarted shop (or a second one on the same database)
/// changes nothing.
const SEED: &str = "
WITH RECURSIVE seq(n) AS (SELECT 2 UNION ALL SELECT n + 1 FROM seq WHERE n < 1000)
INSERT INTO users (id, username, name, salt, password_hash)
SELECT n, 'user' || n, 'User ' || n, '', '' FROM seq WHERE true ON CONFLICT DO NOTHING;
WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 10000)
INSERT INTO products (id, name, price_cents, stock)
SELECT n, 'Product ' || n, 100 + (n * 7919) % 9900, (n * 31) % 500 FROM seq WHERE true
ON CONFLICT DO NOTHING;
WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 20000)
INSERT INTO orders (id, user_id, product_id, quantity, total_cents, status)
SELECT n, 1 + (n * 7) % 1000, 1 + (n * 31) % 10000, 1 + n % 5,
       (1 + n % 5) * (100 + ((1 + (n * 31) % 10000) * 7919) % 9900),
       CASE WHEN n % 4 = 0 THEN 'pending' ELSE 'completed' END
FROM seq WHERE true ON CONFLICT DO NOTHING;
";

/// How many products the sample data has.
pub const PRODUCTS: i64 = 10_000;
/// How many users the sample data has.
pub const USERS: i64 = 1_000;

/// The demo user's login.
pub const DEMO_USER: (&str, &str) = ("demo", "demo");
const DEMO_SALT: &str = "4f1c2a9e";

/// The salted SHA-256 of a password, in hex. (A real service would use a
/// password hash such as Argon2; this keeps the sample's dependencies few.)
pub fn password_hash(salt: &str, password: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{salt}:{password}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    counts: [AtomicU64; Query::ALL.len()],
}

enum Backend {
    Sqlite {
        conns: Vec<Arc<Mutex<rusqlite::Connection>>>,
        next: AtomicUsize,
    },
    Postgres {
        clients: Vec<tokio_postgres::Client>,
        next: AtomicUsize,
    },
}

/// Statement counts, for `GET /stats/db`: `{"total": n, "product": n, ...}`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct QueryCounts {
    /// Every statement sent since the start (the seeding not included).
    pub total: u64,
    /// By kind.
    #[serde(flatten)]
    pub by_kind: std::collections::BTreeMap<String, u64>,
}

impl Db {
    /// Opens the database `url` names, creates the tables if they are
    /// missing and adds the sample rows that are missing: `sqlite::memory:`
    /// (the default), `sqlite:PATH` (a file, created if needed; several
    /// shops may share it), or `postgres://...`.
    pub async fn open(url: &str) -> Result<Db, DbError> {
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            open_postgres(url).await?
        } else if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.to_owned();
            tokio::task::spawn_blocking(move || open_sqlite(&path))
                .await
                .map_err(|e| DbError(e.to_string()))??
        } else {
            return Err(DbError(
                "DATABASE_URL must start with sqlite: or postgres://".into(),
            ));
        };
        let db = Db {
            inner: Arc::new(Inner {
                backend,
                counts: Default::default(),
            }),
        };
        db.batch(SCHEMA).await?;
        db.batch(SEED).await?;
        db.execute_uncounted(
            "INSERT INTO users (id, username, name, salt, password_hash)
             VALUES (1, $1, 'Demo User', $2, $3) ON CONFLICT DO NOTHING",
            vec![
                Param::Text(DEMO_USER.0.into()),
                Param::Text(DEMO_SALT.into()),
                Param::Text(password_hash(DEMO_SALT, DEMO_USER.1)),
            ],
        )
        .await?;
        Ok(db)
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn kind(&self) -> &'static str {
        match self.inner.backend {
            Backend::Sqlite { .. } => "sqlite",
            Backend::Postgres { .. } => "postgres",
        }
    }

    /// The statements sent so far, by kind.
    pub fn counts(&self) -> QueryCounts {
        let mut by_kind = std::collections::BTreeMap::new();
        let mut total = 0;
        for (q, n) in Query::ALL.iter().zip(&self.inner.counts) {
            let n = n.load(Ordering::Relaxed);
            total += n;
            by_kind.insert(q.name().to_owned(), n);
        }
        QueryCounts { total, by_kind }
    }

    /// One product, or `None` for an unknown id.
    pub async fn product(&self, id: i64) -> Result<Option<Product>, DbError> {
        let rows = self
            .query(
                Query::Product,
                "SELECT id, name, price_cents, stock FROM products WHERE id = $1",
                vec![Param::Int(id)],
            )
            .await?;
        rows.first().map(product).transpose()
    }

    /// Products by id, `limit` of them after the first `skip`.
    pub async fn products_page(&self, skip: i64, limit: i64) -> Result<Vec<Product>, DbError> {
        let rows = self
            .query(
                Query::ProductPage,
                "SELECT id, name, price_cents, stock FROM products ORDER BY id LIMIT $1 OFFSET $2",
                vec![Param::Int(limit), Param::Int(skip)],
            )
            .await?;
        rows.iter().map(product).collect()
    }

    /// Stores `p`'s fields under its id; `false` if no product has that id.
    pub async fn update_product(&self, p: &Product) -> Result<bool, DbError> {
        let n = self
            .execute(
                Query::ProductUpdate,
                "UPDATE products SET name = $1, price_cents = $2, stock = $3 WHERE id = $4",
                vec![
                    Param::Text(p.name.clone()),
                    Param::Int(p.price_cents),
                    Param::Int(p.stock),
                    Param::Int(p.id),
                ],
            )
            .await?;
        Ok(n > 0)
    }

    /// Inserts the orders in one statement, keeping an order already there
    /// (a batch delivered twice changes nothing).
    pub async fn insert_orders(&self, orders: &[NewOrder]) -> Result<(), DbError> {
        if orders.is_empty() {
            return Ok(());
        }
        let mut sql = String::from(
            "INSERT INTO orders (id, user_id, product_id, quantity, total_cents, status) VALUES ",
        );
        let mut params = Vec::with_capacity(orders.len() * 6);
        for (i, o) in orders.iter().enumerate() {
            let n = i * 6;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${}, ${})",
                n + 1,
                n + 2,
                n + 3,
                n + 4,
                n + 5,
                n + 6
            ));
            params.extend([
                Param::Int(o.id),
                Param::Int(o.user_id),
                Param::Int(o.product_id),
                Param::Int(o.quantity),
                Param::Int(o.total_cents),
                Param::Text("pending".into()),
            ]);
        }
        sql.push_str(" ON CONFLICT DO NOTHING");
        self.execute(Query::OrderBatch, &sql, params).await?;
        Ok(())
    }

    /// The order totals.
    pub async fn order_stats(&self) -> Result<OrderStats, DbError> {
        let rows = self
            .query(
                Query::OrderStats,
                "SELECT COUNT(*),
                        CAST(COALESCE(SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END), 0) AS BIGINT),
                        CAST(COALESCE(SUM(CASE WHEN status = 'completed' THEN 1 ELSE 0 END), 0) AS BIGINT),
                        CAST(COALESCE(SUM(CASE WHEN status = 'completed' THEN total_cents ELSE 0 END), 0) AS BIGINT)
                 FROM orders",
                vec![],
            )
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| DbError("no row of totals".into()))?;
        Ok(OrderStats {
            total: row.int(0)?,
            pending: row.int(1)?,
            completed: row.int(2)?,
            revenue_cents: row.int(3)?,
        })
    }

    /// A user's profile, or `None` for an unknown id.
    pub async fn user_profile(&self, id: i64) -> Result<Option<Profile>, DbError> {
        let rows = self
            .query(
                Query::UserProfile,
                "SELECT u.id, u.username, u.name, COUNT(o.id),
                        CAST(COALESCE(SUM(o.total_cents), 0) AS BIGINT)
                 FROM users u LEFT JOIN orders o ON o.user_id = u.id
                 WHERE u.id = $1 GROUP BY u.id, u.username, u.name",
                vec![Param::Int(id)],
            )
            .await?;
        rows.first()
            .map(|r| {
                Ok(Profile {
                    id: r.int(0)?,
                    username: r.text(1)?,
                    name: r.text(2)?,
                    orders: r.int(3)?,
                    spent_cents: r.int(4)?,
                })
            })
            .transpose()
    }

    /// The user id of `username` if `password` is theirs.
    pub async fn check_login(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<i64>, DbError> {
        let rows = self
            .query(
                Query::Login,
                "SELECT id, salt, password_hash FROM users WHERE username = $1",
                vec![Param::Text(username.to_owned())],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let hash = row.text(2)?;
        // Users without a password (all but the demo user) cannot log in.
        if hash.is_empty() || hash != password_hash(&row.text(1)?, password) {
            return Ok(None);
        }
        Ok(Some(row.int(0)?))
    }

    fn count(&self, q: Query) {
        self.inner.counts[q as usize].fetch_add(1, Ordering::Relaxed);
    }

    async fn query(&self, q: Query, sql: &str, params: Vec<Param>) -> Result<Vec<Row>, DbError> {
        self.count(q);
        match &self.inner.backend {
            Backend::Sqlite { .. } => {
                let sql = sql.to_owned();
                self.on_sqlite(move |conn| {
                    let mut stmt = conn.prepare_cached(&sql)?;
                    let mut rows =
                        stmt.query(rusqlite::params_from_iter(params.iter().map(sql_value)))?;
                    let mut out = Vec::new();
                    while let Some(row) = rows.next()? {
                        let n = row.as_ref().column_count();
                        let mut cells = Vec::with_capacity(n);
                        for i in 0..n {
                            cells.push(match row.get_ref(i)? {
                                rusqlite::types::ValueRef::Integer(v) => Cell::Int(v),
                                rusqlite::types::ValueRef::Text(t) => {
                                    Cell::Text(String::from_utf8_lossy(t).into_owned())
                                }
                                rusqlite::types::ValueRef::Null => Cell::Null,
                                other => {
                                    return Err(DbError(format!(
                                        "column {i}: unexpected {:?}",
                                        other.data_type()
                                    )))
                                }
                            });
                        }
                        out.push(Row(cells));
                    }
                    Ok(out)
                })
                .await
            }
            Backend::Postgres { .. } => {
                let client = self.pg_client();
                let params = pg_params(&params);
                let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                    .iter()
                    .map(|p| &**p as &(dyn tokio_postgres::types::ToSql + Sync))
                    .collect();
                let rows = client.query(sql, &refs).await?;
                rows.iter()
                    .map(|row| {
                        use tokio_postgres::types::Type;
                        let mut cells = Vec::with_capacity(row.len());
                        for (i, column) in row.columns().iter().enumerate() {
                            let ty = column.type_();
                            cells.push(if *ty == Type::INT8 {
                                row.try_get::<_, Option<i64>>(i)?
                                    .map_or(Cell::Null, Cell::Int)
                            } else if *ty == Type::INT4 {
                                row.try_get::<_, Option<i32>>(i)?
                                    .map_or(Cell::Null, |v| Cell::Int(v.into()))
                            } else if *ty == Type::TEXT || *ty == Type::VARCHAR {
                                row.try_get::<_, Option<String>>(i)?
                                    .map_or(Cell::Null, Cell::Text)
                            } else {
                                return Err(DbError(format!("column {i}: unexpected type {ty}")));
                            });
                        }
                        Ok(Row(cells))
                    })
                    .collect()
            }
        }
    }

    async fn execute(&self, q: Query, sql: &str, params: Vec<Param>) -> Result<u64, DbError> {
        self.count(q);
        self.execute_uncounted(sql, params).await
    }

    async fn execute_uncounted(&self, sql: &str, params: Vec<Param>) -> Result<u64, DbError> {
        match &self.inner.backend {
            Backend::Sqlite { .. } => {
                let sql = sql.to_owned();
                self.on_sqlite(move |conn| {
                    let mut stmt = conn.prepare_cached(&sql)?;
                    let n =
                        stmt.execute(rusqlite::params_from_iter(params.iter().map(sql_value)))?;
                    Ok(n as u64)
                })
                .await
            }
            Backend::Postgres { .. } => {
                let params = pg_params(&params);
                let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                    .iter()
                    .map(|p| &**p as &(dyn tokio_postgres::types::ToSql + Sync))
                    .collect();
                Ok(self.pg_client().execute(sql, &refs).await?)
            }
        }
    }

    /// Runs statements without parameters, uncounted (the schema, the seed).
    async fn batch(&self, sql: &'static str) -> Result<(), DbError> {
        match &self.inner.backend {
            Backend::Sqlite { .. } => {
                self.on_sqlite(move |conn| {
                    conn.execute_batch(sql)?;
                    Ok(())
                })
                .await
            }
            Backend::Postgres { .. } => Ok(self.pg_client().batch_execute(sql).await?),
        }
    }

    /// Runs `f` on a SQLite connection, off the async workers (its calls block).
    async fn on_sqlite<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, DbError> {
        let conn = self.sqlite_conn();
        tokio::task::spawn_blocking(move || f(&conn.lock().unwrap_or_else(|e| e.into_inner())))
            .await
            .map_err(|e| DbError(e.to_string()))?
    }

    /// A connection: a free one if there is one, else the next in turn.
    fn sqlite_conn(&self) -> Arc<Mutex<rusqlite::Connection>> {
        let Backend::Sqlite { conns, next } = &self.inner.backend else {
            unreachable!("only called on SQLite")
        };
        let start = next.fetch_add(1, Ordering::Relaxed);
        (0..conns.len())
            .map(|i| &conns[(start + i) % conns.len()])
            .find(|c| c.try_lock().is_ok())
            .unwrap_or(&conns[start % conns.len()])
            .clone()
    }

    /// The next client in turn (each pipelines its queries).
    fn pg_client(&self) -> &tokio_postgres::Client {
        let Backend::Postgres { clients, next } = &self.inner.backend else {
            unreachable!("only called on PostgreSQL")
        };
        &clients[next.fetch_add(1, Ordering::Relaxed) % clients.len()]
    }
}

fn product(r: &Row) -> Result<Product, DbError> {
    Ok(Product {
        id: r.int(0)?,
        name: r.text(1)?,
        price_cents: r.int(2)?,
        stock: r.int(3)?,
    })
}

fn sql_value(p: &Param) -> rusqlite::types::Value {
    match p {
        Param::Int(v) => rusqlite::types::Value::Integer(*v),
        Param::Text(v) => rusqlite::types::Value::Text(v.clone()),
    }
}

fn pg_params(params: &[Param]) -> Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>> {
    params
        .iter()
        .map(|p| -> Box<dyn tokio_postgres::types::ToSql + Sync + Send> {
            match p {
                Param::Int(v) => Box::new(*v),
                Param::Text(v) => Box::new(v.clone()),
            }
        })
        .collect()
}

/// SQLite: one connection in memory (an in-memory database is private to
/// its connection), four on a file in WAL mode (readers do not wait for
/// each other; a writer waits up to 5 s for another).
fn open_sqlite(path: &str) -> Result<Backend, DbError> {
    let open = |path: &str| -> Result<rusqlite::Connection, DbError> {
        let conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(conn)
    };
    let conns = if path == ":memory:" || path.is_empty() {
        vec![open(":memory:")?]
    } else {
        let first = open(path)?;
        first.pragma_update(None, "journal_mode", "WAL")?;
        let mut conns = vec![first];
        for _ in 1..4 {
            conns.push(open(path)?);
        }
        conns
    };
    Ok(Backend::Sqlite {
        conns: conns.into_iter().map(|c| Arc::new(Mutex::new(c))).collect(),
        next: AtomicUsize::new(0),
    })
}

/// PostgreSQL: four connections, queries spread over them in turn.
async fn open_postgres(url: &str) -> Result<Backend, DbError> {
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::error!(error = %DbError::from(e), "PostgreSQL connection closed");
            }
        });
        clients.push(client);
    }
    Ok(Backend::Postgres {
        clients,
        next: AtomicUsize::new(0),
    })
}
