//! The trivial sink of `scripts/bench`: answers 200 with an empty body to any
//! request on any path, after reading its body, on one actix worker per core.
//! It checks nothing, so that wrk against it shows what this machine's HTTP
//! alone allows: the ceiling `producer send` is measured against. `GET /count`
//! alone is different: it gives the number of requests answered so far, so that
//! the benchmark can check that every task arrived exactly once.
//!
//! `cargo run --release -p producer --example sink -- --port 15102`

use actix_web::{App, HttpResponse, HttpServer, web};
use clap::Parser as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// The sink's flags.
#[derive(Debug, clap::Parser)]
struct Args {
    /// Port to listen on, on 127.0.0.1 (0 picks a free one).
    #[arg(long)]
    port: u16,
}

/// Requests answered; one relaxed increment each, shared by the workers.
static ANSWERED: AtomicU64 = AtomicU64::new(0);

/// Reads the body (as a real receiver must, and so that the connection can be
/// kept alive), then answers 200.
async fn accept(_body: web::Bytes) -> HttpResponse {
    ANSWERED.fetch_add(1, Ordering::Relaxed);
    HttpResponse::Ok().finish()
}

async fn count() -> String {
    ANSWERED.load(Ordering::Relaxed).to_string()
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let server = HttpServer::new(|| {
        App::new()
            .route("/count", web::get().to(count))
            .default_service(web::to(accept))
    })
    .shutdown_timeout(1)
    .bind(("127.0.0.1", args.port))?;
    for addr in server.addrs() {
        eprintln!("sink listening on http://{addr}");
    }
    server.run().await
}
