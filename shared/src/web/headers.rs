//! The browser-facing security headers, on every answer of both programs: a
//! Content-Security-Policy that lets a page load only its own scripts, styles and
//! sockets and never be framed, `nosniff`, `X-Frame-Options` for older browsers,
//! and a Referrer-Policy.

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;

/// The policy. Both pages load only files from `/static/` (no inline script or
/// style, no CDN); the dashboard opens a same-origin WebSocket (`ws:`/`wss:`
/// spelled out for browsers whose `'self'` does not cover sockets); the page's
/// icon is the empty `data:,` URL. `frame-ancestors 'none'` is what stops
/// clickjacking of the Produce Tasks button.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self' ws: wss:; \
    img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// `same-origin`, not `no-referrer`: under `no-referrer` a browser sends
/// `Origin: null` with the page's own POSTs, which the origin check must refuse.
pub const REFERRER_POLICY: &str = "same-origin";

const HEADERS: [(HeaderName, &str); 4] = [
    (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, REFERRER_POLICY),
];

/// The middleware; install with `middleware::from_fn(headers::secure)`.
pub async fn secure(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let mut response = next.call(req).await?;
    let headers = response.headers_mut();
    for (name, value) in HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    Ok(response)
}
