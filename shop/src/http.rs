//! The HTTP side: settings, the router, the handlers and their errors.

use crate::db::{Db, DbError, QueryCounts};
use crate::model::{NewOrder, OrderRequest, OrderStats, Product, Profile};
use crate::services;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cache_runtime::write_behind::{Item, WriteBehind};
use cache_runtime::{Cache, CacheError};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

/// The shop's settings, from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `SHOP_ADDR`: where to listen (default `127.0.0.1:8080`; port 0 takes
    /// a free one, printed at start).
    pub addr: String,
    /// `DATABASE_URL`: `sqlite::memory:` (the default), `sqlite:PATH`, or
    /// `postgres://...`.
    pub database_url: String,
    /// `SHOP_FLUSH_MS`: how often written-behind orders reach the database
    /// (default 500 ms, or sooner every 500 orders).
    pub flush_interval: Duration,
    /// `SHOP_PAGE_EVICTION`: how an update removes the cached pages, `tag`
    /// (the default) or `pattern`.
    pub page_eviction: PageEviction,
}

/// How `PUT /products/{id}` removes the cached pages of products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageEviction {
    /// By their tag, `product_pages`: the pages alone are touched.
    Tag,
    /// By their keys' pattern, `products:list:*`: on Redis a `SCAN` of the
    /// whole keyspace, on the memory store a walk over every entry.
    Pattern,
}

impl Config {
    /// Reads `SHOP_ADDR`, `DATABASE_URL` and `SHOP_FLUSH_MS`. The cache's
    /// own settings (`REDIS_URL`, `CACHE_L1_CAPACITY`, `CACHE_DISABLED`,
    /// ...) are read by [`Cache::from_env`].
    pub fn from_env() -> Result<Config, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let flush_interval = match var("SHOP_FLUSH_MS") {
            None => Duration::from_millis(500),
            Some(v) => Duration::from_millis(
                v.parse()
                    .map_err(|_| format!("SHOP_FLUSH_MS: expected milliseconds, got `{v}`"))?,
            ),
        };
        let page_eviction = match var("SHOP_PAGE_EVICTION").as_deref() {
            None | Some("tag") => PageEviction::Tag,
            Some("pattern") => PageEviction::Pattern,
            Some(other) => {
                return Err(format!(
                    "SHOP_PAGE_EVICTION: expected `tag` or `pattern`, got `{other}`"
                ))
            }
        };
        Ok(Config {
            addr: var("SHOP_ADDR").unwrap_or_else(|| "127.0.0.1:8080".into()),
            database_url: var("DATABASE_URL").unwrap_or_else(|| "sqlite::memory:".into()),
            flush_interval,
            page_eviction,
        })
    }
}

/// What the handlers share.
#[derive(Clone)]
pub struct Shop {
    db: Db,
    /// `None` when caching is off: orders then go to the database at once.
    orders: Option<Arc<WriteBehind<NewOrder>>>,
    page_eviction: PageEviction,
}

impl Shop {
    /// Opens the database and starts the order flusher; installs `cache` as
    /// the cached functions' cache.
    pub async fn start(config: &Config, cache: Cache) -> Result<Shop, Box<dyn std::error::Error>> {
        let db = Db::open(&config.database_url).await?;
        cache.install()?;
        let orders = if cache.is_disabled() {
            None
        } else {
            let sink_db = db.clone();
            let sink = move |batch: Vec<Item<NewOrder>>| {
                let db = sink_db.clone();
                async move {
                    let orders: Vec<NewOrder> = batch.into_iter().map(|i| i.value).collect();
                    db.insert_orders(&orders).await?;
                    services::forget_order_totals(&db, orders.iter().map(|o| o.user_id)).await;
                    Ok::<_, DbError>(())
                }
            };
            let orders = cache
                .write_behind("orders", sink)
                .batch_size(500)
                .interval(config.flush_interval)
                .ttl(Duration::from_secs(3600))
                .start()?;
            Some(Arc::new(orders))
        };
        Ok(Shop {
            db,
            orders,
            page_eviction: config.page_eviction,
        })
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Delivers the orders written so far, then stops the flusher.
    pub async fn shutdown(&self) -> Result<(), CacheError> {
        match &self.orders {
            Some(orders) => orders.shutdown().await,
            None => Ok(()),
        }
    }
}

/// The routes, with the session layer on `sessions`.
pub fn router(shop: Shop, sessions: Cache) -> Router {
    let layer = SessionManagerLayer::new(cache_sessions::CacheSessionStore::new(sessions))
        .with_name("shop_session")
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(time::Duration::days(1)));
    Router::new()
        .route("/products", get(list_products))
        .route("/products/{id}", get(get_product).put(put_product))
        .route("/orders", post(place_order))
        .route("/orders/stats", get(order_stats))
        .route("/users/{id}/profile", get(user_profile))
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/logout", post(logout))
        .route("/stats/db", get(db_stats))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .layer(layer)
        .with_state(shop)
}

/// Serves the shop until SIGINT or SIGTERM, then delivers the orders still
/// on their way. Prints `shop listening on http://ADDR` once it accepts.
pub async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let cache = Cache::from_env()?;
    // Sessions are state, not a cache: with caching off they are kept in
    // this process (the cache then holds nothing at all).
    let sessions = if cache.is_disabled() {
        Cache::builder().prefix(cache.prefix()).build()?
    } else {
        cache.clone()
    };
    let shop = Shop::start(&config, cache.clone()).await?;
    let listener = tokio::net::TcpListener::bind(&config.addr)
        .await
        .map_err(|e| format!("SHOP_ADDR {}: {e}", config.addr))?;
    let addr = listener.local_addr()?;
    println!(
        "shop listening on http://{addr} (database: {}, cache: {}, sessions: {})",
        shop.db().kind(),
        cache.backend_kind(),
        sessions.backend_kind(),
    );
    use std::io::Write as _;
    std::io::stdout().flush()?;
    axum::serve(listener, router(shop.clone(), sessions))
        .with_graceful_shutdown(stop_signal())
        .await?;
    shop.shutdown().await?;
    Ok(())
}

async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// An error as a client sees it: a status and `{"error": "..."}`. A
/// database or session store failure is logged and answered with a bare
/// 500, nothing of its cause.
#[derive(Debug)]
enum ApiError {
    NotFound(String),
    BadRequest(String),
    Unauthorized(&'static str),
    Internal,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, m.to_owned()),
            ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal error".into()),
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        tracing::error!(error = %e, "request failed");
        ApiError::Internal
    }
}

impl From<tower_sessions::session::Error> for ApiError {
    fn from(e: tower_sessions::session::Error) -> Self {
        tracing::error!(error = %e, "session store failed");
        ApiError::Internal
    }
}

type ApiResult<T> = Result<T, ApiError>;

fn path_id(path: Result<Path<i64>, PathRejection>) -> ApiResult<i64> {
    match path {
        Ok(Path(id)) => Ok(id),
        Err(e) => Err(ApiError::BadRequest(format!(
            "the id in the path: {}",
            e.body_text()
        ))),
    }
}

fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> ApiResult<T> {
    match body {
        Ok(Json(v)) => Ok(v),
        Err(e) => Err(ApiError::BadRequest(e.body_text())),
    }
}

async fn get_product(
    State(shop): State<Shop>,
    id: Result<Path<i64>, PathRejection>,
) -> ApiResult<Json<Product>> {
    let id = path_id(id)?;
    match services::product(&shop.db, id).await? {
        Some(p) => Ok(Json(p)),
        None => Err(ApiError::NotFound(format!("no product {id}"))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    #[serde(default)]
    skip: i64,
    #[serde(default = "default_limit")]
    limit: i64,
}

fn default_limit() -> i64 {
    100
}

async fn list_products(
    State(shop): State<Shop>,
    page: Result<Query<Page>, QueryRejection>,
) -> ApiResult<Json<Vec<Product>>> {
    let Query(page) = page.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if page.skip < 0 {
        return Err(ApiError::BadRequest("skip must be 0 or more".into()));
    }
    if !(1..=1000).contains(&page.limit) {
        return Err(ApiError::BadRequest("limit must be 1 to 1000".into()));
    }
    Ok(Json(
        services::products_page(&shop.db, page.skip, page.limit).await?,
    ))
}

async fn put_product(
    State(shop): State<Shop>,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<Product>, JsonRejection>,
) -> ApiResult<Json<Product>> {
    let id = path_id(id)?;
    let product = json_body(body)?;
    if product.id != id {
        return Err(ApiError::BadRequest(format!(
            "the body's id {} is not the path's {id}",
            product.id
        )));
    }
    if product.name.trim().is_empty() {
        return Err(ApiError::BadRequest("name must not be empty".into()));
    }
    if product.price_cents < 0 || product.stock < 0 {
        return Err(ApiError::BadRequest(
            "price_cents and stock must be 0 or more".into(),
        ));
    }
    let saved = match shop.page_eviction {
        PageEviction::Tag => services::save_product(&shop.db, product).await?,
        PageEviction::Pattern => {
            services::save_product_evicting_by_pattern(&shop.db, product).await?
        }
    };
    match saved {
        Some(p) => Ok(Json(p)),
        None => Err(ApiError::NotFound(format!("no product {id}"))),
    }
}

async fn place_order(
    State(shop): State<Shop>,
    body: Result<Json<OrderRequest>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<NewOrder>)> {
    let req = json_body(body)?;
    if !(1..=1000).contains(&req.quantity) {
        return Err(ApiError::BadRequest("quantity must be 1 to 1000".into()));
    }
    let Some(product) = services::product(&shop.db, req.product_id).await? else {
        return Err(ApiError::BadRequest(format!(
            "no product {}",
            req.product_id
        )));
    };
    if services::user_profile(&shop.db, req.user_id)
        .await?
        .is_none()
    {
        return Err(ApiError::BadRequest(format!("no user {}", req.user_id)));
    }
    let order = NewOrder {
        // Below 2^53, so that JavaScript clients read it exactly.
        id: rand::random_range(1..1i64 << 53),
        user_id: req.user_id,
        product_id: req.product_id,
        quantity: req.quantity,
        total_cents: req.quantity * product.price_cents,
    };
    let behind = match &shop.orders {
        Some(orders) => match orders.write(&format!("order:{}", order.id), &order).await {
            Ok(_) => true,
            Err(e) => {
                // Redis is down or slow: the order goes to the database now.
                tracing::warn!(error = %e, "order not written behind; storing it directly");
                false
            }
        },
        None => false,
    };
    if !behind {
        shop.db.insert_orders(std::slice::from_ref(&order)).await?;
        services::forget_order_totals(&shop.db, [order.user_id]).await;
    }
    Ok((StatusCode::ACCEPTED, Json(order)))
}

async fn order_stats(State(shop): State<Shop>) -> ApiResult<Json<OrderStats>> {
    Ok(Json(services::order_stats(&shop.db).await?))
}

async fn user_profile(
    State(shop): State<Shop>,
    id: Result<Path<i64>, PathRejection>,
) -> ApiResult<Json<Profile>> {
    let id = path_id(id)?;
    match services::user_profile(&shop.db, id).await? {
        Some(p) => Ok(Json(p)),
        None => Err(ApiError::NotFound(format!("no user {id}"))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    username: String,
    password: String,
}

const USER_ID: &str = "user_id";

async fn login(
    State(shop): State<Shop>,
    session: Session,
    body: Result<Json<Login>, JsonRejection>,
) -> ApiResult<Json<Profile>> {
    let login = json_body(body)?;
    let Some(id) = shop
        .db
        .check_login(&login.username, &login.password)
        .await?
    else {
        return Err(ApiError::Unauthorized("wrong username or password"));
    };
    // A new id at login: a session id known before it is worth nothing.
    session.cycle_id().await?;
    session.insert(USER_ID, id).await?;
    match services::user_profile(&shop.db, id).await? {
        Some(p) => Ok(Json(p)),
        None => Err(ApiError::Internal),
    }
}

async fn me(State(shop): State<Shop>, session: Session) -> ApiResult<Json<Profile>> {
    let Some(id) = session.get::<i64>(USER_ID).await? else {
        return Err(ApiError::Unauthorized("not logged in"));
    };
    match services::user_profile(&shop.db, id).await? {
        Some(p) => Ok(Json(p)),
        None => Err(ApiError::Unauthorized("not logged in")),
    }
}

async fn logout(session: Session) -> ApiResult<StatusCode> {
    session.flush().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn db_stats(State(shop): State<Shop>) -> Json<QueryCounts> {
    Json(shop.db.counts())
}
