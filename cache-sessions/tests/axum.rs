//! Sessions through an axum 0.8 app with tower-sessions' layer, on Redis,
//! driven over HTTP by hyper's client: log in, `/me`, log out, and the same
//! session seen (and revoked) by a second app instance.

use axum::routing::{get, post};
use axum::{http::StatusCode, Router};
use cache_runtime::Cache;
use cache_sessions::CacheSessionStore;
use cache_test_support::RedisServer;
use http_body_util::BodyExt as _;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

async fn login(session: Session) -> StatusCode {
    session.insert("user", "demo").await.expect("session store");
    StatusCode::NO_CONTENT
}

async fn me(session: Session) -> Result<String, StatusCode> {
    match session.get::<String>("user").await {
        Ok(Some(user)) => Ok(user),
        Ok(None) => Err(StatusCode::UNAUTHORIZED),
        Err(_) => Err(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

async fn logout(session: Session) -> StatusCode {
    session.flush().await.expect("session store");
    StatusCode::NO_CONTENT
}

/// An app instance on its own port, with the session store on `cache`.
async fn serve(cache: Cache) -> String {
    let layer = SessionManagerLayer::new(CacheSessionStore::new(cache))
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(time::Duration::hours(1)));
    let app = Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/logout", post(logout))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// One request: its status, body and `set-cookie` (the `name=value` part).
async fn call(
    addr: &str,
    method: &str,
    path: &str,
    cookie: Option<&str>,
) -> (u16, String, Option<String>) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let request = request
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let set_cookie = response
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        String::from_utf8(body.to_vec()).unwrap(),
        set_cookie,
    )
}

#[tokio::test]
async fn login_me_and_logout_work_across_two_instances() {
    let server = RedisServer::start();
    let cache = || {
        Cache::builder()
            .redis(server.url())
            .prefix("app")
            .l1_capacity(1 << 20)
            .build()
            .unwrap()
    };
    let (a, b) = (serve(cache()).await, serve(cache()).await);

    assert_eq!(call(&a, "GET", "/me", None).await.0, 401, "no session");
    let (status, _, cookie) = call(&a, "POST", "/login", None).await;
    assert_eq!(status, 204);
    let cookie = cookie.expect("login sets a cookie");
    assert!(cookie.starts_with("id="), "{cookie}");
    let id = cookie.trim_start_matches("id=");
    assert_eq!(
        server
            .cmd(&["EXISTS", &format!("app:session:{id}")])
            .as_int(),
        1,
        "one key per session, under the prefix"
    );

    assert_eq!(call(&a, "GET", "/me", Some(&cookie)).await.0, 200);
    let (status, body, _) = call(&b, "GET", "/me", Some(&cookie)).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "demo"),
        "the other instance has it"
    );

    // Logged out on B: revoked everywhere at once, A included.
    assert_eq!(call(&b, "POST", "/logout", Some(&cookie)).await.0, 204);
    assert_eq!(call(&a, "GET", "/me", Some(&cookie)).await.0, 401);
    assert_eq!(call(&b, "GET", "/me", Some(&cookie)).await.0, 401);
    assert_eq!(
        server
            .cmd(&["EXISTS", &format!("app:session:{id}")])
            .as_int(),
        0
    );
}
