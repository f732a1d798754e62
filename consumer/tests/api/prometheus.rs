//! Both programs' `/metrics` read by a real Prometheus: Debian's `prometheus`
//! server scrapes the consumer and the producer once they have handled a batch, so
//! the text is parsed by the same OpenMetrics parser a production scrape uses (the
//! programs answer `application/openmetrics-text`), and the histograms' counts are
//! read back through its query API.
//!
//! Not `promtool check metrics`: it reads only the older Prometheus text format, in
//! which an OpenMetrics counter (`# TYPE x counter`, then the sample `x_total`) is
//! a second, undocumented metric, so it flags every counter of both programs.

use crate::helpers::{eventually, http_client, spawn_app};
use clap::Parser as _;
use serde_json::{Value, json};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use taskhooks_shared::testing::RedisServer;
use tokio_util::sync::CancellationToken;

/// Tasks in the batch whose metrics are scraped.
const TASKS: u64 = 5;

/// A Prometheus server scraping `targets` every second, with its data in a fresh
/// directory; killed when dropped.
struct Prometheus {
    child: Mutex<Child>,
    port: u16,
    dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let child = self
            .child
            .get_mut()
            .unwrap_or_else(|poison| poison.into_inner());
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Ports tried for Prometheus: a free port is found by binding port 0 and releasing
/// it, and another process may take it before Prometheus binds it.
const PORT_TRIES: usize = 3;

impl Prometheus {
    /// Starts `prometheus` on a free port and waits until it is ready.
    ///
    /// # Panics
    /// When it is not installed (the test must fail, never skip), or does not start.
    async fn start(client: &reqwest::Client, targets: &[(&str, u16)]) -> Prometheus {
        let jobs: String = targets
            .iter()
            .map(|(job, port)| {
                format!(
                    "  - job_name: {job}\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
                )
            })
            .collect();
        let config = format!("global: {{scrape_interval: 1s}}\nscrape_configs:\n{jobs}");
        let mut logs = Vec::new();
        for _ in 0..PORT_TRIES {
            let prometheus = Prometheus::spawn(&config);
            match prometheus.ready(client).await {
                Ok(()) => return prometheus,
                Err(log) if log.contains("address already in use") => logs.push(log),
                Err(log) => panic!("prometheus did not start:\n{log}"),
            }
        }
        panic!(
            "prometheus found its port taken {PORT_TRIES} times:\n{}",
            logs.join("\n")
        );
    }

    /// Runs `prometheus` with `config`, in a fresh directory, on a port free just now.
    fn spawn(config: &str) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("taskhooks-prometheus-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a directory for Prometheus");
        std::fs::write(dir.join("prometheus.yml"), config)
            .expect("the Prometheus configuration is written");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("a log file");
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot run prometheus ({err}). Install it: 'sudo apt-get install \
                     prometheus' on Debian/Ubuntu (scripts/test does so when run as root)"
                )
            });
        Prometheus {
            child: Mutex::new(child),
            port,
            dir,
        }
    }

    /// Waits until `GET /-/ready` answers 200; `Err(log)` when Prometheus exits first.
    async fn ready(&self, client: &reqwest::Client) -> Result<(), String> {
        eventually("Prometheus to be ready", || async {
            let exited = self.child.lock().expect("not poisoned").try_wait();
            if let Ok(Some(_)) = exited {
                return Some(Err(self.log()));
            }
            let url = format!("http://127.0.0.1:{}/-/ready", self.port);
            let answer = client.get(url).send().await.ok()?;
            answer.status().is_success().then_some(Ok(()))
        })
        .await
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/<path>`'s `data`, once Prometheus answers.
    async fn api(&self, client: &reqwest::Client, path: &str) -> Option<Value> {
        let exited = self.child.lock().expect("not poisoned").try_wait();
        if let Ok(Some(status)) = exited {
            panic!("prometheus exited ({status}):\n{}", self.log());
        }
        let url = format!("http://127.0.0.1:{}/api/v1/{path}", self.port);
        let body: Value = client.get(url).send().await.ok()?.json().await.ok()?;
        (body["status"] == "success").then(|| body["data"].clone())
    }
}

/// The value of an instant query that selects one series; `None` until it has one.
async fn query(prometheus: &Prometheus, client: &reqwest::Client, promql: &str) -> Option<f64> {
    let path = format!("query?query={}", urlencode(promql));
    let data = prometheus.api(client, &path).await?;
    let [series] = data["result"].as_array()?.as_slice() else {
        return None;
    };
    series["value"][1].as_str()?.parse().ok()
}

/// Waits until `promql` evaluates to `expected`, failing after [`WAIT`] with the
/// last value seen.
async fn assert_eventually(
    prometheus: &Prometheus,
    client: &reqwest::Client,
    promql: &str,
    expected: f64,
) {
    let what = format!("{promql} to be {expected} in Prometheus");
    eventually(what, || async {
        let value = query(prometheus, client, promql).await;
        if value == Some(expected) {
            Ok(())
        } else {
            Err(format!("{value:?}"))
        }
    })
    .await;
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn a_real_prometheus_scrapes_both_programs_and_reads_the_histograms() {
    let redis = RedisServer::start();
    let consumer = spawn_app(Some(&redis)).await;
    let producer = producer::Application::build(
        producer::Config::try_parse_from([
            "producer",
            "--bind",
            "127.0.0.1:0",
            "--target",
            &format!("{}/consumetasks", consumer.address),
            "--webhook-secret",
            &consumer.secret.to_whsec(),
        ])
        .expect("producer arguments parse"),
    )
    .await
    .expect("producer builds");
    let producer_port = producer.port();
    let stop_producer = CancellationToken::new();
    tokio::spawn(producer.run_until_stopped(stop_producer.clone()));
    let _stop_producer = stop_producer.drop_guard();
    let client = http_client();
    let started = client
        .post(format!("http://127.0.0.1:{producer_port}/producetasks"))
        .header("content-type", "application/json")
        .body(json!({ "min": TASKS, "max": TASKS, "pace_ms": 0 }).to_string())
        .send()
        .await
        .expect("the batch request is sent");
    assert_eq!(started.status().as_u16(), 202);
    eventually("the batch to be counted", || async {
        (consumer.stats().await["total"] == TASKS).then_some(())
    })
    .await;

    let prometheus = Prometheus::start(
        &client,
        &[("consumer", consumer.port), ("producer", producer_port)],
    )
    .await;

    let targets = eventually("both targets scraped by Prometheus", || async {
        let data = prometheus.api(&client, "targets").await?;
        let targets = data["activeTargets"].as_array()?.clone();
        let scraped = targets.len() == 2 && targets.iter().all(|t| t["health"] != "unknown");
        scraped.then_some(targets)
    })
    .await;
    for target in &targets {
        assert_eq!(target["health"], "up", "a scrape failed: {target}");
    }
    let tasks = TASKS as f64;
    for (promql, expected) in [
        (
            r#"taskhooks_consumer_webhook_duration_seconds_count{outcome="published"}"#,
            tasks,
        ),
        (
            r#"taskhooks_producer_deliveries_total{outcome="delivered"}"#,
            tasks,
        ),
        ("taskhooks_producer_delivery_duration_seconds_count", tasks),
        // One script call per webhook received (all of them reach Redis here, a
        // retry after a 503 too), whatever became of it.
        (
            "taskhooks_consumer_redis_accept_duration_seconds_count \
             - scalar(sum(taskhooks_consumer_webhook_duration_seconds_count))",
            0.0,
        ),
    ] {
        assert_eventually(&prometheus, &client, promql, expected).await;
    }
}
