//! The `Host` check on every request (a guard against DNS rebinding): a page
//! whose name was re-pointed at the consumer reads nothing, while probes,
//! Prometheus and a signed webhook are answered whatever name they use.

use crate::helpers::{open_ws_with, spawn_app, spawn_app_with, task};
use crate::raw::read_response;
use taskhooks_shared::testing::RedisServer;
use taskhooks_shared::{Priority, Secret};
use tokio::io::AsyncWriteExt as _;

/// The name a rebinding page sends: its own, re-pointed at 127.0.0.1.
const REBOUND: &str = "evil.example:5001";

#[tokio::test]
async fn a_rebound_name_reads_nothing_and_is_told_about_allowed_hosts() {
    let redis = RedisServer::start();
    let app = spawn_app(Some(&redis)).await;
    let rebound = [("host", REBOUND)];

    for path in ["/api/stats", "/", "/static/js/dashboard.js", "/nowhere"] {
        let (status, json) = app.call_with("GET", path, None, &rebound).await;

        assert_eq!(status, 403, "{path}: {json}");
        let error = json["error"].as_str().expect("a JSON error");
        assert!(error.contains("ALLOWED_HOSTS"), "{path}: {error}");
        assert!(error.contains("\"evil.example\""), "{path}: {error}");
    }
    let (status, body) = open_ws_with(app.port, "host", REBOUND)
        .await
        .expect_err("refused");
    assert_eq!(status, 403, "the WebSocket upgrade: {body}");
}

#[tokio::test]
async fn probes_and_metrics_answer_whatever_host_they_name() {
    let redis = RedisServer::start();
    let app = spawn_app(Some(&redis)).await;

    for path in ["/healthz", "/readyz", "/metrics"] {
        for host in [REBOUND, "10-0-0-5.pod.cluster.local", "consumer"] {
            let (status, body) = app.call_with("GET", path, None, &[("host", host)]).await;

            assert_eq!(status, 200, "{path} as {host}: {body}");
        }
    }
}

#[tokio::test]
async fn localhost_ip_literals_and_allowed_names_pass() {
    let secret = Secret::generate();
    let args = [
        "--webhook-secret".to_owned(),
        secret.to_whsec(),
        "--allowed-hosts".to_owned(),
        "wall.example".to_owned(),
    ];
    let app = spawn_app_with(secret, &args).await;
    let port = app.port;

    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        "wall.example:5001".to_owned(),
        "WALL.example".to_owned(),
    ] {
        let (status, body) = app
            .call_with("GET", "/api/stats", None, &[("host", &host)])
            .await;
        assert_eq!(status, 200, "{host}: {body}");
        assert_eq!(open_ws_with(port, "host", &host).await, Ok(()), "{host}");
    }
    let (status, _) = app
        .call_with("GET", "/api/stats", None, &[("host", "other.example")])
        .await;
    assert_eq!(status, 403, "a name not on the list");
}

#[tokio::test]
async fn a_signed_webhook_is_taken_by_any_name_an_unsigned_one_is_not() {
    let app = spawn_app(None).await;
    let body = serde_json::to_vec(&task("b", 0, Priority::Low)).expect("JSON");
    let headers = app
        .secret
        .headers("msg_lb", taskhooks_shared::signing::unix_now(), &body);
    let send = |host: &'static str, signed: bool| {
        let mut request = app
            .client
            .post(format!("{}/consumetasks", app.address))
            .header("host", host)
            .header("content-type", "application/json")
            .body(body.clone());
        if signed {
            request = request
                .header("webhook-id", headers.id.clone())
                .header("webhook-timestamp", headers.timestamp.to_string())
                .header("webhook-signature", headers.signature.clone());
        }
        request.send()
    };

    // Compose's producer names the load balancer: `lb:5001`.
    let signed = send("lb:5001", true).await.expect("sent");
    assert_eq!(signed.status().as_u16(), 200);
    let forged = send(REBOUND, false).await.expect("sent");
    assert_eq!(
        forged.status().as_u16(),
        401,
        "the signature is still checked"
    );

    let unsigned = spawn_app_with(Secret::generate(), &["--allow-unsigned".to_owned()]).await;
    let response = unsigned
        .client
        .post(format!("{}/consumetasks", unsigned.address))
        .header("host", REBOUND)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .expect("sent");
    assert_eq!(
        response.status().as_u16(),
        403,
        "no signature: the Host check guards it"
    );
    let local = unsigned
        .client
        .post(format!("{}/consumetasks", unsigned.address))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("sent");
    assert_eq!(local.status().as_u16(), 200);
}

#[tokio::test]
async fn a_request_without_a_host_is_a_bad_request() {
    let app = spawn_app(None).await;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connects");
    stream
        .write_all(b"GET /api/stats HTTP/1.0\r\n\r\n")
        .await
        .expect("written");

    let (status, _, json) = read_response(&mut stream).await;

    assert_eq!(status, 400, "{json}");
    assert!(
        json["error"]
            .as_str()
            .expect("an error")
            .contains("no Host header"),
        "{json}"
    );
}
