//! The HTTP client both suites send requests to the app under test with.

use super::WAIT;
use serde_json::Value;

/// A `reqwest` client that gives up after [`WAIT`], so a hung server fails the test
/// instead of hanging it.
///
/// # Panics
/// When the client cannot be built (no TLS provider: a broken build, not a test).
pub fn http_client() -> reqwest::Client {
    // reqwest is built without a default TLS provider (as the producer is); the
    // first caller installs ring, later ones find it installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(WAIT)
        .build()
        .expect("reqwest client builds")
}

/// Requests to one app under test, by path.
#[derive(Debug, Clone)]
pub struct TestClient {
    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub address: String,
    /// For requests the methods below do not cover.
    pub client: reqwest::Client,
}

impl TestClient {
    /// A client of the app listening on `127.0.0.1:port`.
    pub fn new(port: u16) -> TestClient {
        TestClient {
            address: format!("http://127.0.0.1:{port}"),
            client: http_client(),
        }
    }

    /// GETs `path`.
    ///
    /// # Panics
    /// When the request cannot be sent or gets no answer in [`WAIT`].
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request is sent")
    }

    /// GETs `path`; returns the status and the body, which must be JSON.
    ///
    /// # Panics
    /// As [`get`](Self::get), and when the body is not JSON.
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self.get(path).await;
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON body"))
    }

    /// Sends `method path` with an optional raw body, as `application/json` when it
    /// is a POST (as the pages do); returns the status and the body as JSON, or as
    /// a JSON string when it is not JSON (an empty HEAD answer, a plain-text one).
    pub async fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        self.call_with(method, path, body, &[]).await
    }

    /// Like [`call`](Self::call), with these extra headers (later ones win).
    ///
    /// # Panics
    /// When `method` is not a method, or the request gets no answer in [`WAIT`].
    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let post = method == "POST";
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.address));
        if post {
            request = request.header("content-type", "application/json");
        }
        if let Some(body) = body {
            request = request.body(body.to_owned());
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("request is sent");
        let status = response.status().as_u16();
        let text = response.text().await.expect("a body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}
