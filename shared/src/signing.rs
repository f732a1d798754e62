//! Standard Webhooks signing and verification (<https://www.standardwebhooks.com>).
//!
//! A webhook carries three headers:
//! - `webhook-id`: the message id, the same on every retry of one message;
//! - `webhook-timestamp`: Unix seconds when this attempt was signed;
//! - `webhook-signature`: space-separated `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`
//!   entries; any one valid entry is enough, so a sender can sign with an old and a
//!   new secret while secrets are rotated.
//!
//! Secrets are written `whsec_<base64 key>`. Comparison is constant-time (the `hmac`
//! crate's `verify_slice`), and a [`Secret`] never prints its key.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{KeyInit as _, Mac as _};
use rand::RngExt as _;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Name of the header carrying the message id.
pub const HEADER_ID: &str = "webhook-id";
/// Name of the header carrying the signing time in Unix seconds.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// Name of the header carrying the signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// How far a timestamp may be from the receiver's clock, either way, in seconds.
/// Five minutes, as the specification recommends: enough for clock skew and retries
/// in flight, short enough that a captured request cannot be replayed later.
pub const TOLERANCE_SECS: i64 = 5 * 60;

const SECRET_PREFIX: &str = "whsec_";
const VERSION_PREFIX: &str = "v1,";

/// Why a webhook's signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    /// A required header is absent or not valid text.
    #[error("the {0} header is missing; sign the request with the Standard Webhooks headers")]
    MissingHeader(&'static str),
    /// The timestamp header is not a whole number of seconds.
    #[error("the webhook-timestamp header must be Unix seconds, got {0:?}")]
    InvalidTimestamp(String),
    /// The timestamp is too far from the receiver's clock.
    #[error(
        "the webhook-timestamp is {skew_secs} s away from this server's clock (more than {TOLERANCE_SECS} s); sign each attempt afresh and check the clocks"
    )]
    StaleTimestamp {
        /// Receiver time minus the timestamp, in seconds.
        skew_secs: i64,
    },
    /// No `v1` signature matched.
    #[error(
        "no webhook-signature matched the body; check that sender and receiver share the same secret"
    )]
    Mismatch,
}

/// Why a secret could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The text is not base64 after the `whsec_` prefix.
    #[error("a webhook secret must be whsec_ followed by base64 (for example whsec_{example})")]
    NotBase64 {
        /// A valid example, so the message says what to write.
        example: String,
    },
    /// The key is empty.
    #[error("a webhook secret must not be empty")]
    Empty,
}

/// A webhook signing key. Its `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    key: Vec<u8>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::str::FromStr for Secret {
    type Err = SecretError;

    /// Reads `whsec_<base64>`; the prefix is optional.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let encoded = text.trim();
        let encoded = encoded.strip_prefix(SECRET_PREFIX).unwrap_or(encoded);
        let key = BASE64.decode(encoded).map_err(|_| SecretError::NotBase64 {
            example: BASE64.encode(b"a-32-byte-or-longer-random-key!!"),
        })?;
        if key.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Secret { key })
    }
}

/// The three signature headers of one webhook attempt, as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookHeaders {
    /// `webhook-id`.
    pub id: String,
    /// `webhook-timestamp`, Unix seconds.
    pub timestamp: i64,
    /// `webhook-signature`.
    pub signature: String,
}

/// The signature headers as a receiver found them (any may be missing).
#[derive(Debug, Clone, Copy, Default)]
pub struct ReceivedHeaders<'a> {
    /// `webhook-id`, if present.
    pub id: Option<&'a str>,
    /// `webhook-timestamp`, if present.
    pub timestamp: Option<&'a str>,
    /// `webhook-signature`, if present.
    pub signature: Option<&'a str>,
}

impl Secret {
    /// A new random 32-byte secret.
    pub fn generate() -> Secret {
        let mut key = vec![0u8; 32];
        rand::rng().fill(&mut key[..]);
        Secret { key }
    }

    /// The secret in its `whsec_<base64>` form, for handing to the other side.
    pub fn to_whsec(&self) -> String {
        format!("{SECRET_PREFIX}{}", BASE64.encode(&self.key))
    }

    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
        // unwrap: HMAC accepts keys of any length, so new_from_slice cannot fail.
        #[allow(clippy::unwrap_used)]
        let mut mac = HmacSha256::new_from_slice(&self.key).unwrap();
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The `v1,<base64>` signature of one message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self
            .mac(id, &timestamp.to_string(), body)
            .finalize()
            .into_bytes();
        format!("{VERSION_PREFIX}{}", BASE64.encode(tag))
    }

    /// All three headers for one attempt.
    pub fn headers(&self, id: &str, timestamp: i64, body: &[u8]) -> WebhookHeaders {
        WebhookHeaders {
            id: id.to_owned(),
            timestamp,
            signature: self.sign(id, timestamp, body),
        }
    }

    /// Checks a received webhook against this secret at time `now` (Unix seconds).
    /// Returns the verified message id.
    pub fn verify<'a>(
        &self,
        headers: ReceivedHeaders<'a>,
        body: &[u8],
        now: i64,
    ) -> Result<&'a str, SigningError> {
        let id = headers.id.ok_or(SigningError::MissingHeader(HEADER_ID))?;
        let ts_text = headers
            .timestamp
            .ok_or(SigningError::MissingHeader(HEADER_TIMESTAMP))?;
        let signatures = headers
            .signature
            .ok_or(SigningError::MissingHeader(HEADER_SIGNATURE))?;
        let timestamp: i64 = ts_text
            .trim()
            .parse()
            .map_err(|_| SigningError::InvalidTimestamp(ts_text.to_owned()))?;
        let skew_secs = now.saturating_sub(timestamp);
        if skew_secs.abs() > TOLERANCE_SECS {
            return Err(SigningError::StaleTimestamp { skew_secs });
        }
        let mac = self.mac(id, ts_text.trim(), body);
        let matched = signatures
            .split_whitespace()
            .filter_map(|entry| entry.strip_prefix(VERSION_PREFIX))
            .filter_map(|encoded| BASE64.decode(encoded).ok())
            .any(|tag| mac.clone().verify_slice(&tag).is_ok());
        if matched {
            Ok(id)
        } else {
            Err(SigningError::Mismatch)
        }
    }
}

/// The current time in Unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example from the Standard Webhooks specification's reference libraries.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: i64 = 1614265330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn spec_secret() -> Secret {
        SPEC_SECRET.parse().expect("spec secret parses")
    }

    fn received<'a>(id: &'a str, ts: &'a str, sig: &'a str) -> ReceivedHeaders<'a> {
        ReceivedHeaders {
            id: Some(id),
            timestamp: Some(ts),
            signature: Some(sig),
        }
    }

    #[test]
    fn signing_matches_the_specification_vector() {
        assert_eq!(
            spec_secret().sign(SPEC_ID, SPEC_TS, SPEC_BODY),
            SPEC_SIGNATURE
        );
    }

    #[test]
    fn specification_vector_verifies() {
        let ts = SPEC_TS.to_string();
        let headers = received(SPEC_ID, &ts, SPEC_SIGNATURE);
        assert_eq!(
            spec_secret().verify(headers, SPEC_BODY, SPEC_TS),
            Ok(SPEC_ID)
        );
    }

    #[test]
    fn tampered_body_id_or_timestamp_is_a_mismatch() {
        let secret = spec_secret();
        let ts = SPEC_TS.to_string();
        let later = (SPEC_TS + 1).to_string();
        let cases = [
            (
                received(SPEC_ID, &ts, SPEC_SIGNATURE),
                &br#"{"test": 2432232315}"#[..],
            ),
            (received("msg_other", &ts, SPEC_SIGNATURE), SPEC_BODY),
            (received(SPEC_ID, &later, SPEC_SIGNATURE), SPEC_BODY),
        ];
        for (headers, body) in cases {
            assert_eq!(
                secret.verify(headers, body, SPEC_TS),
                Err(SigningError::Mismatch)
            );
        }
    }

    #[test]
    fn stale_and_future_timestamps_are_rejected() {
        let secret = spec_secret();
        for now in [SPEC_TS + TOLERANCE_SECS + 1, SPEC_TS - TOLERANCE_SECS - 1] {
            let ts = SPEC_TS.to_string();
            let err = secret
                .verify(received(SPEC_ID, &ts, SPEC_SIGNATURE), SPEC_BODY, now)
                .expect_err("outside the tolerance");
            assert!(
                matches!(err, SigningError::StaleTimestamp { .. }),
                "{err:?}"
            );
        }
        let ts = SPEC_TS.to_string();
        let edge = SPEC_TS + TOLERANCE_SECS;
        assert!(
            secret
                .verify(received(SPEC_ID, &ts, SPEC_SIGNATURE), SPEC_BODY, edge)
                .is_ok()
        );
    }

    #[test]
    fn any_one_of_several_signatures_is_enough() {
        let old = Secret::generate();
        let new = spec_secret();
        let both = format!(
            "{} {}",
            old.sign(SPEC_ID, SPEC_TS, SPEC_BODY),
            SPEC_SIGNATURE
        );
        let ts = SPEC_TS.to_string();
        assert!(
            new.verify(received(SPEC_ID, &ts, &both), SPEC_BODY, SPEC_TS)
                .is_ok()
        );
        let wrong_version = SPEC_SIGNATURE.replacen("v1,", "v2,", 1);
        assert_eq!(
            new.verify(received(SPEC_ID, &ts, &wrong_version), SPEC_BODY, SPEC_TS),
            Err(SigningError::Mismatch)
        );
    }

    #[test]
    fn missing_headers_and_bad_timestamps_are_named() {
        let secret = spec_secret();
        let missing = ReceivedHeaders::default();
        assert_eq!(
            secret.verify(missing, SPEC_BODY, SPEC_TS),
            Err(SigningError::MissingHeader(HEADER_ID))
        );
        let bad = received(SPEC_ID, "yesterday", SPEC_SIGNATURE);
        assert!(matches!(
            secret.verify(bad, SPEC_BODY, SPEC_TS),
            Err(SigningError::InvalidTimestamp(_))
        ));
    }

    #[test]
    fn secrets_round_trip_and_never_print_their_key() {
        let secret = Secret::generate();
        let again: Secret = secret.to_whsec().parse().expect("own output parses");
        assert_eq!(secret, again);
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        assert!(matches!(
            "whsec_!!!".parse::<Secret>(),
            Err(SecretError::NotBase64 { .. })
        ));
        assert_eq!("whsec_".parse::<Secret>(), Err(SecretError::Empty));
    }
}
