//! A cached service with Prometheus metrics: `GET /product/{id}` is a
//! `#[cached]` lookup, `GET /metrics` the Prometheus text of the cache's
//! metrics (the `metrics` feature, with `metrics-exporter-prometheus` as
//! the recorder).
//!
//! ```text
//! cargo run --example metrics                  # the memory store; REDIS_URL=redis://127.0.0.1:6379 for Redis
//! curl http://127.0.0.1:9898/product/1         # a miss: the body runs
//! curl http://127.0.0.1:9898/product/1         # a hit
//! curl http://127.0.0.1:9898/metrics           # cache_gets_total{function="...",tier="l2",result="hit"} 1 ...
//! ```
//!
//! `METRICS_ADDR` sets the address (default `127.0.0.1:9898`; port 0 picks
//! a free one); the first line printed is the address it listens on. The
//! cache comes from `Cache::from_env()`, so `REDIS_URL`,
//! `CACHE_L1_CAPACITY` and the rest apply.

use cache_runtime::{cached, Cache};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

/// The product with this id, if there is one (ids below 1000): a stand-in
/// for a database query that takes 20 ms.
#[cached(ttl = 60, key = "product:{id}")]
async fn product(id: u64) -> Option<String> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    (id < 1000).then(|| format!("{{\"id\":{id},\"name\":\"product {id}\"}}"))
}

async fn handle(
    request: Request<Incoming>,
    metrics: PrometheusHandle,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path();
    let (status, content_type, body) = if path == "/metrics" {
        (
            StatusCode::OK,
            "text/plain; version=0.0.4",
            metrics.render(),
        )
    } else if let Some(id) = path.strip_prefix("/product/") {
        match id.parse::<u64>() {
            Ok(id) => match product(id).await {
                Some(json) => (StatusCode::OK, "application/json", json),
                None => (
                    StatusCode::NOT_FOUND,
                    "text/plain",
                    "no such product\n".into(),
                ),
            },
            Err(_) => (
                StatusCode::BAD_REQUEST,
                "text/plain",
                "the id is a number\n".into(),
            ),
        }
    } else {
        (
            StatusCode::NOT_FOUND,
            "text/plain",
            "GET /product/{id} or /metrics\n".into(),
        )
    };
    let response = Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response");
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::var("METRICS_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:9898".into())
        .parse()
        .map_err(|e| format!("METRICS_ADDR: {e}"))?;
    // The recorder first: metrics reported before it is installed are lost.
    let metrics = PrometheusBuilder::new().install_recorder()?;
    Cache::from_env()?.install()?;

    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |r| handle(r, metrics.clone()));
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await
            {
                eprintln!("connection: {error}");
            }
        });
    }
}
