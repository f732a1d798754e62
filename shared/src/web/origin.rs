//! The two guards both programs put in front of what a foreign page must not do:
//! the `Host` check on every request ([`host_guard`]), and the cross-site check
//! ([`guard`]) on the producer's state-changing requests and the consumer's `/ws`.
//!
//! **The `Host` check.** A page at `http://evil.example:5001` whose name is
//! re-pointed at 127.0.0.1 (DNS rebinding) is same-origin with itself: the
//! browser lets it read every answer, with no `Origin` to give it away. Only the
//! `Host` it sends does, so every request must name us by a host a rebinding
//! attack cannot forge (`localhost`, an IP literal, or a name on the
//! allow-list), as Vite's and webpack-dev-server's `allowedHosts` do. The paths a
//! program declares open ([`OriginPolicy::open_to_any_host`]: probes, metrics, a
//! signed webhook) skip it; their callers (Kubernetes, Prometheus, a sender
//! behind a tunnel or a load balancer) address us by names we cannot foresee.
//!
//! **The cross-site check.**
//! A browser names the page that made a request in `Origin`. The request is let
//! through when it has no `Origin` (curl, a script: not a browser's cross-site
//! request), when its origin is on the configured allow-list, or when it is the
//! page's own origin — the `Host` the browser addressed, so it works behind a
//! proxy that keeps `Host` and in a container bound to `0.0.0.0` whose port is
//! published elsewhere — *and* that host is one a rebinding attack cannot forge:
//! `localhost`, an IP literal, or a name on the allow-list. The scheme is not
//! compared with our own: behind a proxy that speaks TLS for us the page is
//! `https://` while we only ever see plain HTTP. (A page at
//! `http://evil.example:5000` whose name is re-pointed at 127.0.0.1 is
//! same-origin with itself; only its `Host` gives it away.)

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{StatusCode, uri::Authority};
use actix_web::middleware::Next;
use actix_web::{Error, web};
use std::net::IpAddr;
use url::Url;

/// The configured allow-list; the default allows only the page's own origin on
/// `localhost` or an IP address.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    origins: Vec<Origin>,
    hosts: Vec<String>,
    /// Paths (exact) that any `Host` may reach.
    open_paths: &'static [&'static str],
}

/// A web origin: scheme, lower-case host, port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

/// Why a request was refused; the text says what to do (the 403's `error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `Origin: null` or something that is not an http(s) origin.
    #[error(
        "refused: Origin {0:?} is not a web page's origin (a sandboxed frame or a local file); \
         open the page at its own http:// address"
    )]
    Opaque(String),
    /// A page of another site.
    #[error(
        "refused: a page at {origin} may not do this here (cross-site request); use the page \
         served at this address, or add {origin} to ALLOWED_ORIGINS (--allowed-origins)"
    )]
    Foreign { origin: String },
    /// The page's own origin, but under a name we were not told about.
    #[error(
        "refused: this server was reached by the name {host:?}, which it was not configured \
         for (a guard against DNS rebinding); open it at localhost or its IP address, or add \
         {host} to ALLOWED_HOSTS (--allowed-hosts)"
    )]
    UnknownHost {
        /// The host name of the request's `Host`.
        host: String,
    },
    /// No `Host` header (HTTP/1.1 requires one; every browser sends it).
    #[error(
        "the request has no Host header; HTTP/1.1 requires one (curl and browsers send it): \
         name this server by localhost, its IP address or a name in ALLOWED_HOSTS"
    )]
    NoHost,
    /// A `Host` that is not `host[:port]`.
    #[error("the Host header {0:?} is not host[:port]; name this server as in its URL")]
    BadHost(String),
}

impl Refusal {
    /// The answer's status: 400 for a request no browser sends (no `Host`, or
    /// one that is not a host), 403 for the refusals proper.
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::NoHost | Refusal::BadHost(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::FORBIDDEN,
        }
    }
}

/// A bad entry in the allow-lists, reported at start-up.
#[derive(Debug, thiserror::Error)]
#[error(
    "ALLOWED_ORIGINS (--allowed-origins) entry {0:?} is not an origin; write it as \
     scheme://host[:port], for example https://taskhooks.example"
)]
pub struct BadOrigin(String);

impl OriginPolicy {
    /// The allow-lists: origins (`https://host[:port]`, compared exactly) and host
    /// names trusted as a page's own (the origins' hosts are trusted too). Blank
    /// entries are ignored.
    pub fn new(origins: &[String], hosts: &[String]) -> Result<OriginPolicy, BadOrigin> {
        let origins = origins
            .iter()
            .map(|o| o.trim())
            .filter(|o| !o.is_empty())
            .map(|o| parse_origin(o.trim_end_matches('/')).ok_or_else(|| BadOrigin(o.to_owned())))
            .collect::<Result<Vec<_>, _>>()?;
        let hosts = hosts
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .chain(origins.iter().map(|o| o.host.clone()))
            .collect();
        Ok(OriginPolicy {
            origins,
            hosts,
            open_paths: &[],
        })
    }

    /// The same policy, letting any `Host` reach these paths (compared exactly):
    /// probes and metrics, whose callers name us as they please.
    pub fn open_to_any_host(self, paths: &'static [&'static str]) -> OriginPolicy {
        OriginPolicy {
            open_paths: paths,
            ..self
        }
    }

    /// Whether a request for `path` naming us by `host` (its `Host` header) may
    /// go on: `host` must be `localhost`, an IP literal or an allowed name, unless
    /// `path` is open to any host.
    pub fn check_host(&self, path: &str, host: Option<&str>) -> Result<(), Refusal> {
        if self.open_paths.contains(&path) {
            return Ok(());
        }
        let host = host.ok_or(Refusal::NoHost)?;
        let authority = host
            .parse::<Authority>()
            .map_err(|_| Refusal::BadHost(host.to_owned()))?;
        let name = authority.host().to_ascii_lowercase();
        if self.trusts(&name) {
            Ok(())
        } else {
            Err(Refusal::UnknownHost { host: name })
        }
    }

    /// Whether a request with these `Origin` and `Host` headers may go on.
    pub fn check(&self, origin: Option<&str>, host: Option<&str>) -> Result<(), Refusal> {
        let Some(origin_text) = origin else {
            return Ok(());
        };
        let origin =
            parse_origin(origin_text).ok_or_else(|| Refusal::Opaque(origin_text.to_owned()))?;
        if self.origins.contains(&origin) {
            return Ok(());
        }
        let foreign = || Refusal::Foreign {
            origin: origin_text.to_owned(),
        };
        let authority = host
            .and_then(|h| h.parse::<Authority>().ok())
            .ok_or_else(foreign)?;
        let host = authority.host().to_ascii_lowercase();
        let port = authority.port_u16().unwrap_or(default_port(&origin.scheme));
        if host != origin.host || port != origin.port {
            return Err(foreign());
        }
        if self.trusts(&host) {
            Ok(())
        } else {
            Err(Refusal::UnknownHost { host })
        }
    }

    /// Whether `host` (lower case) cannot be the victim of DNS rebinding.
    fn trusts(&self, host: &str) -> bool {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost"
            || host.ends_with(".localhost")
            || bare.parse::<IpAddr>().is_ok()
            || self.hosts.iter().any(|h| h == host)
    }
}

fn parse_origin(text: &str) -> Option<Origin> {
    let url = Url::parse(text).ok()?;
    let plain = url.path() == "/" && url.query().is_none() && url.username().is_empty();
    if !matches!(url.scheme(), "http" | "https") || !plain {
        return None;
    }
    Some(Origin {
        scheme: url.scheme().to_owned(),
        host: url.host_str()?.to_ascii_lowercase(),
        port: url.port_or_known_default()?,
    })
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "https" { 443 } else { 80 }
}

/// The `Host` check as a middleware, around every route of the app (the shared
/// server wraps it): reads the app's `web::Data<OriginPolicy>` (the default
/// policy when there is none) and answers a refused request with 403 (400 for
/// no `Host` or a malformed one) and `{"error": …}` before anything else runs.
/// Over HTTP/2 the host is the request's `:authority`.
pub async fn host_guard<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    let default = OriginPolicy::default();
    let policy = match req.app_data::<web::Data<OriginPolicy>>() {
        Some(policy) => policy.as_ref(),
        None => &default,
    };
    // The open paths (the signed webhook among them) read no header at all.
    if policy.open_paths.contains(&req.path()) {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let host = match req.headers().get(header::HOST) {
        Some(value) => Some(String::from_utf8_lossy(value.as_bytes()).into_owned()),
        None => req.uri().authority().map(|a| a.as_str().to_owned()),
    };
    let verdict = policy.check_host(req.path(), host.as_deref());
    match verdict {
        Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
        Err(refusal) => {
            let response = super::json_error(refusal.status(), refusal);
            Ok(req.into_response(response).map_into_right_body())
        }
    }
}

/// The middleware; wrap a resource in it with
/// `.wrap(middleware::from_fn(origin::guard))`. It reads the app's
/// `web::Data<OriginPolicy>` (the default policy when there is none) and answers
/// a refused request with 403 and `{"error": …}` before the handler runs.
pub async fn guard<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    let header_text = |name| {
        req.headers()
            .get(name)
            .map(|v: &HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let (origin, host) = (header_text(header::ORIGIN), header_text(header::HOST));
    let verdict = match req.app_data::<web::Data<OriginPolicy>>() {
        Some(policy) => policy.check(origin.as_deref(), host.as_deref()),
        None => OriginPolicy::default().check(origin.as_deref(), host.as_deref()),
    };
    match verdict {
        Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
        Err(refusal) => {
            let response = super::json_error(refusal.status(), refusal);
            Ok(req.into_response(response).map_into_right_body())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(origins: &[&str], hosts: &[&str]) -> OriginPolicy {
        let own = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        OriginPolicy::new(&own(origins), &own(hosts)).expect("a valid policy")
    }

    #[test]
    fn requests_without_origin_are_not_cross_site_and_pass() {
        assert_eq!(policy(&[], &[]).check(None, Some("evil.example")), Ok(()));
        assert_eq!(policy(&[], &[]).check(None, None), Ok(()));
    }

    #[test]
    fn the_pages_own_origin_on_localhost_or_an_ip_needs_no_configuration() {
        let default = policy(&[], &[]);
        for (origin, host) in [
            ("http://localhost:5000", "localhost:5000"),
            ("http://127.0.0.1:5000", "127.0.0.1:5000"),
            ("http://LOCALHOST:5000", "localhost:5000"),
            ("http://[::1]:5000", "[::1]:5000"),
            ("http://192.168.1.20", "192.168.1.20"),
            ("http://192.168.1.20", "192.168.1.20:80"),
            ("https://10.0.0.5", "10.0.0.5"),
            ("http://app.localhost:8080", "app.localhost:8080"),
        ] {
            assert_eq!(default.check(Some(origin), Some(host)), Ok(()), "{origin}");
        }
    }

    #[test]
    fn another_sites_page_is_refused() {
        let default = policy(&[], &[]);
        for (origin, host) in [
            ("https://evil.example", "127.0.0.1:5000"),
            ("http://localhost:5001", "localhost:5000"),
            ("http://127.0.0.1:5000", "localhost:5000"),
        ] {
            let refusal = default.check(Some(origin), Some(host));
            assert!(matches!(refusal, Err(Refusal::Foreign { .. })), "{origin}");
        }
    }

    #[test]
    fn a_rebound_name_is_refused_unless_allowed() {
        let rebound =
            policy(&[], &[]).check(Some("http://evil.example:5000"), Some("evil.example:5000"));
        assert_eq!(
            rebound,
            Err(Refusal::UnknownHost {
                host: "evil.example".into()
            })
        );
        let named = policy(&[], &["Tasks.Example"]);
        assert_eq!(
            named.check(Some("https://tasks.example"), Some("tasks.example")),
            Ok(())
        );
    }

    #[test]
    fn allowed_origins_pass_from_anywhere_and_their_hosts_are_trusted() {
        let allowed = policy(
            &["https://tasks.example/", " http://other.example:8080"],
            &[],
        );
        assert_eq!(
            allowed.check(Some("http://other.example:8080"), Some("127.0.0.1:5000")),
            Ok(())
        );
        // Behind a TLS proxy that keeps Host, the page's own origin is https.
        assert_eq!(
            allowed.check(Some("https://tasks.example"), Some("tasks.example")),
            Ok(())
        );
        assert!(
            allowed
                .check(Some("http://other.example"), Some("x"))
                .is_err()
        );
    }

    #[test]
    fn opaque_and_malformed_origins_are_refused() {
        for origin in ["null", "file://", "chrome-extension://abc", "not an origin"] {
            let refusal = policy(&[], &[]).check(Some(origin), Some("localhost"));
            assert!(matches!(refusal, Err(Refusal::Opaque(_))), "{origin}");
        }
    }

    #[test]
    fn every_request_must_name_us_by_a_host_rebinding_cannot_forge() {
        let default = policy(&[], &[]);
        for host in [
            "localhost:5001",
            "LOCALHOST",
            "app.localhost:5001",
            "127.0.0.1:5001",
            "[::1]:5001",
            "192.168.1.20",
        ] {
            assert_eq!(
                default.check_host("/api/stats", Some(host)),
                Ok(()),
                "{host}"
            );
        }
        assert_eq!(
            default.check_host("/api/stats", Some("evil.example:5001")),
            Err(Refusal::UnknownHost {
                host: "evil.example".into()
            })
        );
        for lookalike in ["127.0.0.1.nip.io", "localhost.evil.example", "0x7f.1"] {
            let refusal = default.check_host("/", Some(lookalike));
            assert!(
                matches!(refusal, Err(Refusal::UnknownHost { .. })),
                "{lookalike}"
            );
        }
        let named = policy(&[], &["tasks.example"]);
        assert_eq!(named.check_host("/", Some("Tasks.Example:5001")), Ok(()));
    }

    #[test]
    fn open_paths_take_any_host_and_nothing_else_does() {
        let probes = policy(&[], &[]).open_to_any_host(&["/healthz", "/metrics"]);
        assert_eq!(probes.check_host("/healthz", Some("10-0-0-5.pod")), Ok(()));
        assert_eq!(probes.check_host("/metrics", None), Ok(()));
        let near_misses = ["/healthz/", "/metrics.txt", "/HEALTHZ"];
        for path in near_misses {
            assert!(probes.check_host(path, Some("pod")).is_err(), "{path}");
        }
    }

    #[test]
    fn a_missing_or_malformed_host_is_a_bad_request() {
        let default = policy(&[], &[]);
        let missing = default.check_host("/", None).expect_err("refused");
        assert_eq!(
            (missing.clone(), missing.status().as_u16()),
            (Refusal::NoHost, 400)
        );
        let bad = default.check_host("/", Some("a b")).expect_err("refused");
        assert_eq!(bad.status().as_u16(), 400, "{bad}");
        let rebound = default.check_host("/", Some("evil.example"));
        assert_eq!(rebound.expect_err("refused").status().as_u16(), 403);
    }

    #[test]
    fn bad_allow_list_entries_are_reported() {
        for bad in ["tasks.example", "ftp://x", "https://x/path"] {
            assert!(OriginPolicy::new(&[bad.to_owned()], &[]).is_err(), "{bad}");
        }
    }
}
