//! Request logging with a request id, for both apps: every request runs in a `request` span
//! carrying `request_id` (the caller's `x-request-id` when it sends a sane one,
//! else a new UUID), which is also returned in the `x-request-id` header.
//!
//! Successful requests are logged at `debug` (a load test sends thousands a
//! second); refused ones at `info` and server failures at `warn`. Headers are never
//! logged, so neither are signatures.

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use rand::RngExt as _;
use std::time::Instant;
use tracing::Instrument as _;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest caller-supplied request id we keep.
const MAX_ID_LEN: usize = 64;

fn caller_id(req: &ServiceRequest) -> Option<HeaderValue> {
    let value = req.headers().get(&REQUEST_ID)?;
    let sane = value.len() <= MAX_ID_LEN
        && value
            .as_bytes()
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b));
    sane.then(|| value.clone())
}

/// The middleware; install with `middleware::from_fn(request_log::log)`.
pub async fn log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = caller_id(&req).unwrap_or_else(|| {
        // From the thread's own random generator: `Uuid::new_v4` asks the kernel
        // (a getrandom system call) for every request.
        let uuid = uuid::Builder::from_random_bytes(rand::rng().random()).into_uuid();
        // unwrap: a hyphenated UUID is always a valid header value.
        #[allow(clippy::unwrap_used)]
        HeaderValue::from_str(
            uuid.hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer()),
        )
        .unwrap()
    });
    // The span carries only the id: its fields are formatted into text as it is
    // made, for every request, even when nothing inside it is logged, and each
    // field (in colour) is paid on every webhook (`scripts/profile ingest`,
    // docs/benchmarks.md). The line that ends the request, only formatted when its
    // level is on, gives the method and the path.
    let span = tracing::info_span!("request", request_id = id.to_str().unwrap_or("-"));
    let started = Instant::now();
    let mut response = next.call(req).instrument(span.clone()).await?;
    response.headers_mut().insert(REQUEST_ID, id);
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let req = response.request();
    let (method, path) = (req.method(), req.path());
    span.in_scope(|| match status {
        500.. => tracing::warn!(%method, path, status, elapsed_ms, "request failed"),
        400.. => tracing::info!(%method, path, status, elapsed_ms, "request refused"),
        _ => tracing::debug!(%method, path, status, elapsed_ms, "request served"),
    });
    Ok(response)
}
