//! A small HTTP/1 client with keep-alive, for the load tool and the tests:
//! one connection, requests in turn, reconnecting after an error.

use http_body_util::BodyExt as _;
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;

/// A response: status, body, and the `name=value` part of `set-cookie`.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body, as text.
    pub body: String,
    /// The cookie set, if any.
    pub set_cookie: Option<String>,
}

impl Response {
    /// The body as JSON.
    ///
    /// # Panics
    ///
    /// If it is not JSON (for tests and the load tool, where that is a bug).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
}

/// One keep-alive connection to `addr`.
pub struct Client {
    addr: String,
    sender: Option<SendRequest<http_body_util::Full<Bytes>>>,
    /// Sent with every request once set (`Client::set_cookie`).
    cookie: Option<String>,
}

impl Client {
    /// A client for `addr` (`host:port`); connects on the first request.
    pub fn new(addr: impl Into<String>) -> Client {
        Client {
            addr: addr.into(),
            sender: None,
            cookie: None,
        }
    }

    /// Sends `cookie` (`name=value`) with the requests from now on; `None`
    /// sends none.
    pub fn set_cookie(&mut self, cookie: Option<String>) {
        self.cookie = cookie;
    }

    /// `GET path`.
    pub async fn get(&mut self, path: &str) -> Result<Response, String> {
        self.send("GET", path, None).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put(&mut self, path: &str, body: &serde_json::Value) -> Result<Response, String> {
        self.send("PUT", path, Some(body.to_string())).await
    }

    /// `POST path` with a JSON body (or none).
    pub async fn post(
        &mut self,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Response, String> {
        self.send("POST", path, body.map(|b| b.to_string())).await
    }

    /// One request; raw body text (need not be JSON).
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> Result<Response, String> {
        let sender = match &mut self.sender {
            Some(s) if !s.is_closed() => s,
            _ => {
                let stream = tokio::net::TcpStream::connect(&self.addr)
                    .await
                    .map_err(|e| format!("connect to {}: {e}", self.addr))?;
                stream.set_nodelay(true).map_err(|e| e.to_string())?;
                let (sender, connection) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                        .await
                        .map_err(|e| e.to_string())?;
                tokio::spawn(connection);
                self.sender.insert(sender)
            }
        };
        sender.ready().await.map_err(|e| e.to_string())?;
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.addr);
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(http_body_util::Full::new(Bytes::from(
                body.unwrap_or_default(),
            )))
            .map_err(|e| e.to_string())?;
        let result = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let set_cookie = response
                .headers()
                .get("set-cookie")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .map(str::to_owned);
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok(Response {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
                set_cookie,
            })
        }
        .await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }
}
