//! Refusing the public demo secret where others can reach the program.
//!
//! docker-compose.yml publishes the ports on `TASKHOOKS_HOST` (127.0.0.1 unless set) and
//! passes that address to both programs as `PUBLISHED_ON`. On a loopback address the demo
//! secret is fine; anywhere else a program started without a secret of its own refuses to
//! start, since anyone who read the README could sign webhooks for it.

use crate::signing::Signing;
use std::net::IpAddr;

/// The secret docker-compose.yml falls back to: public, so for a laptop demo only.
pub const DEMO_SECRET: &str = "whsec_dGFza2hvb2tzLWRlbW8tc2VjcmV0LWNoYW5nZS1tZSE=";

/// The environment variable holding the address the ports are published on.
const PUBLISHED_ON: &str = "PUBLISHED_ON";

/// Ok unless `published_on` (the address the ports are published on, when known) is
/// reachable from other machines while `signing` has no secret, or holds the public
/// demo one (even beside others).
pub fn check_exposure(published_on: Option<&str>, signing: &Signing) -> Result<(), String> {
    let Some(address) = published_on.map(str::trim).filter(|a| !a.is_empty()) else {
        return Ok(());
    };
    if is_loopback(address) {
        return Ok(());
    }
    let problem = match signing {
        Signing::Unsigned => "no WEBHOOK_SECRET is set",
        Signing::Secrets(secrets) if secrets.iter().any(|s| s.to_whsec() == DEMO_SECRET) => {
            "WEBHOOK_SECRET is the public demo secret"
        }
        Signing::Secrets(_) => return Ok(()),
    };
    Err(format!(
        "refusing to start: the ports are published on {address} ({PUBLISHED_ON}), beyond this \
         machine, and {problem}. Set your own secret, e.g. \
         `echo \"WEBHOOK_SECRET=whsec_$(head -c32 /dev/urandom | base64)\" >> .env` beside \
         docker-compose.yml, or publish on 127.0.0.1 only (unset TASKHOOKS_HOST)"
    ))
}

/// `localhost`, or a loopback IP (with or without brackets).
fn is_loopback(address: &str) -> bool {
    address.eq_ignore_ascii_case("localhost")
        || address
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signing(whsec: &str) -> Signing {
        Signing::Secrets(whsec.parse().expect("valid whsec_ secrets"))
    }

    #[test]
    fn loopback_or_unknown_addresses_accept_the_demo_secret_and_none() {
        let demo = signing(DEMO_SECRET);
        for address in [
            None,
            Some(""),
            Some("127.0.0.1"),
            Some("localhost"),
            Some("::1"),
            Some("[::1]"),
        ] {
            assert_eq!(check_exposure(address, &demo), Ok(()), "{address:?}");
            assert_eq!(
                check_exposure(address, &Signing::Unsigned),
                Ok(()),
                "{address:?}"
            );
        }
    }

    #[test]
    fn an_open_address_refuses_the_demo_secret_and_says_how_to_set_one() {
        for address in ["0.0.0.0", "192.168.1.20", "::"] {
            let err = check_exposure(Some(address), &signing(DEMO_SECRET)).expect_err(address);
            assert!(
                err.contains("public demo secret") && err.contains("WEBHOOK_SECRET=whsec_"),
                "{err}"
            );
        }
    }

    #[test]
    fn an_open_address_refuses_a_missing_secret() {
        let err = check_exposure(Some("0.0.0.0"), &Signing::Unsigned).expect_err("no secret");
        assert!(
            err.contains("no WEBHOOK_SECRET is set") && err.contains("TASKHOOKS_HOST"),
            "{err}"
        );
    }

    #[test]
    fn an_open_address_accepts_a_secret_of_ones_own() {
        let own = crate::Secret::generate().to_whsec();
        assert_eq!(check_exposure(Some("0.0.0.0"), &signing(&own)), Ok(()));
        let rotating = signing(&format!("{own} {DEMO_SECRET}"));
        assert!(check_exposure(Some("0.0.0.0"), &rotating).is_err());
    }
}
