//! Hiding credentials in URLs before they are logged, printed or shown on a page.
//!
//! A URL such as `redis://:hunter2@cache:6379` or
//! `https://user:token@hooks.example/consumetasks` carries its credentials with it;
//! every place that shows a configured URL goes through [`redact_url`] first.

use url::Url;

/// What replaces a credential.
const MASK: &str = "***";

/// Query parameters that carry a password (the redis crate's `?pass=` for Unix
/// sockets, and the usual names elsewhere).
const SECRET_PARAMS: &[&str] = &["pass", "password", "secret", "token"];

/// `url` with its credentials replaced by `***`: the whole `user:password@` part,
/// and the values of password-like query parameters. A URL that does not parse is
/// masked by its shape, so even a malformed one never shows a password.
pub fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(parsed) => redact_parsed(parsed),
        Err(_) => redact_shape(url),
    }
}

fn redact_parsed(mut url: Url) -> String {
    if !url.username().is_empty() || url.password().is_some() {
        // Both calls only fail for URLs that cannot have credentials, which then
        // have none to hide.
        let _ = url.set_password(None);
        let _ = url.set_username(MASK);
    }
    let has_secret = url
        .query_pairs()
        .any(|(name, _)| SECRET_PARAMS.contains(&name.as_ref()));
    if has_secret {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(name, value)| {
                let value = if SECRET_PARAMS.contains(&name.as_ref()) {
                    MASK.to_owned()
                } else {
                    value.into_owned()
                };
                (name.into_owned(), value)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

/// For a string that is not a URL: masks anything before an `@` in what looks
/// like the authority, and the whole query.
fn redact_shape(text: &str) -> String {
    let (scheme, rest) = match text.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), text),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("{MASK}@{host}"),
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, _)) => format!("{path}?{MASK}"),
        None => tail.to_owned(),
    };
    format!("{scheme}{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn user_and_password_are_masked() {
        let cases = [
            ("redis://:hunter2@cache:6379/0", "redis://***@cache:6379/0"),
            (
                "redis://default:hunter2@cache:6379",
                "redis://***@cache:6379",
            ),
            (
                "https://bot:s3cret@hooks.example/consumetasks",
                "https://***@hooks.example/consumetasks",
            ),
            ("https://tok3n@hooks.example/", "https://***@hooks.example/"),
        ];
        for (url, expected) in cases {
            assert_eq!(redact_url(url), expected, "{url}");
        }
    }

    #[test]
    fn password_query_parameters_are_masked_and_others_kept() {
        let redacted = redact_url("redis+unix:///run/redis.sock?db=2&pass=hunter2");
        assert_eq!(redacted, "redis+unix:///run/redis.sock?db=2&pass=***");
    }

    #[test]
    fn urls_without_credentials_are_unchanged() {
        for url in [
            "http://127.0.0.1:5001/consumetasks",
            "redis+unix:///tmp/r.sock",
            "https://hooks.example/a?b=c",
        ] {
            assert_eq!(redact_url(url), url);
        }
    }

    #[test]
    fn malformed_urls_never_show_a_password() {
        for bad in [
            "redis://:hunter2@cache:notaport",
            "redis://user:hunter2@[::1/x",
            "not a url user:hunter2@host",
            "redis://cache?pass=hunter2 x",
        ] {
            let shown = redact_url(bad);
            assert!(!shown.contains("hunter2"), "{bad} → {shown}");
        }
    }
}
