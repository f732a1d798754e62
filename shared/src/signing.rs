//! Standard Webhooks signing and verification (<https://www.standardwebhooks.com>).
//!
//! A webhook carries three headers:
//! - `webhook-id`: the message id, the same on every retry of one message;
//! - `webhook-timestamp`: Unix seconds when this attempt was signed;
//! - `webhook-signature`: space-separated `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`
//!   entries; any one valid entry is enough, so a sender can sign with an old and a
//!   new secret while secrets are rotated.
//!
//! Secrets are written `whsec_<base64 key>` (24 to 64 bytes), several space-separated
//! while rotating. Comparison is constant-time (the `hmac` crate's `verify_slice`),
//! and a [`Secret`] never prints its key. Everything that needs neither the body nor
//! a secret ([`ReceivedHeaders::check`]: id size, timestamp window, signature count
//! and shape) is checked first, so a forged request costs no HMAC.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::Mac as _;

#[cfg(test)]
mod proptests;
mod secret;

pub use secret::{
    MAX_KEY_BYTES, MAX_SECRETS, MIN_KEY_BYTES, Secret, SecretError, Secrets, Signing,
    SigningSetupError,
};

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
/// Longest `webhook-id` accepted, in bytes. Ids are short (`msg_<uuid>` is 40
/// bytes); the id is also a Redis key for a day, so its size is ours to bound.
pub const MAX_ID_BYTES: usize = 256;
/// Most entries accepted in `webhook-signature`. A rotation needs two; each entry
/// costs a comparison, so a header of thousands is refused before any HMAC.
pub const MAX_SIGNATURES: usize = 5;

const VERSION_PREFIX: &str = "v1,";
/// Bytes in an HMAC-SHA256 tag.
const TAG_BYTES: usize = 32;
/// Characters in one `v1,<base64 tag>` signature.
const SIGNATURE_CHARS: usize = VERSION_PREFIX.len() + TAG_BYTES.div_ceil(3) * 4;

/// Why a webhook's signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    /// A required header is absent.
    #[error("the {0} header is missing; sign the request with the Standard Webhooks headers")]
    MissingHeader(&'static str),
    /// A signature header holds bytes that are not visible ASCII.
    #[error("the {0} header is not plain text: send visible ASCII characters only")]
    NotText(&'static str),
    /// The id is empty: it would deduplicate every other empty one.
    #[error("the webhook-id header is empty; send a unique id such as msg_<uuid>")]
    EmptyId,
    /// The id is longer than [`MAX_ID_BYTES`].
    #[error(
        "the webhook-id is {len} bytes; at most {MAX_ID_BYTES} are accepted: use a short \
         unique id such as msg_<uuid>"
    )]
    IdTooLong {
        /// The id's length in bytes.
        len: usize,
    },
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
    /// More entries in `webhook-signature` than [`MAX_SIGNATURES`].
    #[error(
        "the webhook-signature header has {count} signatures; at most {MAX_SIGNATURES} are \
         accepted: sign with the current secret (and the previous one while rotating)"
    )]
    TooManySignatures { count: usize },
    /// An entry of `webhook-signature` is not `<version>,<base64>`, or a `v1` one
    /// is not the base64 of 32 bytes.
    #[error(
        "the webhook-signature header must be space-separated v1,<base64 of the 32-byte \
         HMAC-SHA256> entries"
    )]
    MalformedSignature,
    /// No `v1` signature matched.
    #[error(
        "no webhook-signature matched the body; check that sender and receiver share the same secret"
    )]
    Mismatch,
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

/// Headers that passed every check that needs neither the body nor a secret:
/// what is left is the HMAC, [`CheckedHeaders::verify`].
#[derive(Debug, Clone)]
pub struct CheckedHeaders<'a> {
    id: &'a str,
    timestamp: &'a str,
    tags: Vec<[u8; TAG_BYTES]>,
}

impl<'a> ReceivedHeaders<'a> {
    /// The id, when present, checked to be neither empty nor over [`MAX_ID_BYTES`]:
    /// all that is checked of an unsigned webhook.
    pub fn checked_id(&self) -> Result<Option<&'a str>, SigningError> {
        match self.id {
            Some(id) if id.len() > MAX_ID_BYTES => Err(SigningError::IdTooLong { len: id.len() }),
            Some(id) if id.trim().is_empty() => Err(SigningError::EmptyId),
            id => Ok(id),
        }
    }

    /// Everything that can be checked from the headers alone, at time `now` (Unix
    /// seconds): cheap, computes no HMAC, so a receiver runs it before reading the body.
    pub fn check(self, now: i64) -> Result<CheckedHeaders<'a>, SigningError> {
        let id = self
            .checked_id()?
            .ok_or(SigningError::MissingHeader(HEADER_ID))?;
        let ts_text = self
            .timestamp
            .ok_or(SigningError::MissingHeader(HEADER_TIMESTAMP))?
            .trim();
        let signatures = self
            .signature
            .ok_or(SigningError::MissingHeader(HEADER_SIGNATURE))?;
        let timestamp: i64 = ts_text
            .parse()
            .map_err(|_| SigningError::InvalidTimestamp(ts_text.to_owned()))?;
        let skew_secs = now.saturating_sub(timestamp);
        if skew_secs.abs() > TOLERANCE_SECS {
            return Err(SigningError::StaleTimestamp { skew_secs });
        }
        Ok(CheckedHeaders {
            id,
            timestamp: ts_text,
            tags: v1_tags(signatures)?,
        })
    }
}

/// The decoded `v1` tags of a `webhook-signature` header. Entries of other versions
/// are skipped, as the specification says, but counted against [`MAX_SIGNATURES`].
fn v1_tags(header: &str) -> Result<Vec<[u8; TAG_BYTES]>, SigningError> {
    let count = header.split_whitespace().count();
    if count == 0 {
        return Err(SigningError::MalformedSignature); // an empty header
    }
    if count > MAX_SIGNATURES {
        return Err(SigningError::TooManySignatures { count });
    }
    let mut tags = Vec::new();
    for entry in header.split_whitespace() {
        let Some((version, encoded)) = entry.split_once(',') else {
            return Err(SigningError::MalformedSignature);
        };
        if version.is_empty() {
            return Err(SigningError::MalformedSignature);
        }
        if version == "v1" {
            let tag = BASE64
                .decode(encoded)
                .ok()
                .and_then(|bytes| <[u8; TAG_BYTES]>::try_from(bytes).ok())
                .ok_or(SigningError::MalformedSignature)?;
            tags.push(tag);
        }
    }
    Ok(tags)
}

impl<'a> CheckedHeaders<'a> {
    pub fn id(&self) -> &'a str {
        self.id
    }

    /// Checks the signatures over `body` against every secret in turn; any one
    /// match is enough. Returns the verified message id.
    pub fn verify<'s>(
        &self,
        secrets: impl IntoIterator<Item = &'s Secret>,
        body: &[u8],
    ) -> Result<&'a str, SigningError> {
        let matched = secrets.into_iter().any(|secret| {
            let mac = secret.mac(self.id, self.timestamp, body);
            self.tags
                .iter()
                .any(|tag| mac.clone().verify_slice(tag).is_ok())
        });
        if matched {
            Ok(self.id)
        } else {
            Err(SigningError::Mismatch)
        }
    }
}

impl Secret {
    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The `v1,<base64>` signature of one message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut signature = String::with_capacity(SIGNATURE_CHARS);
        self.sign_into(id, &timestamp.to_string(), body, &mut signature);
        signature
    }

    /// Appends the `v1,<base64>` signature of one message to `out`: the producer
    /// signs every attempt, and one buffer for all its secrets saves an
    /// allocation or two per secret.
    fn sign_into(&self, id: &str, timestamp: &str, body: &[u8], out: &mut String) {
        let tag = self.mac(id, timestamp, body).finalize().into_bytes();
        out.push_str(VERSION_PREFIX);
        BASE64.encode_string(tag, out);
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
        headers.check(now)?.verify([self], body)
    }
}

impl Secrets {
    /// All three headers for one attempt, with one `v1,` signature per secret.
    pub fn headers(&self, id: &str, timestamp: i64, body: &[u8]) -> WebhookHeaders {
        let timestamp_text = timestamp.to_string();
        let mut signature = String::with_capacity(self.iter().count() * (SIGNATURE_CHARS + 1));
        for secret in self.iter() {
            if !signature.is_empty() {
                signature.push(' ');
            }
            secret.sign_into(id, &timestamp_text, body, &mut signature);
        }
        WebhookHeaders {
            id: id.to_owned(),
            timestamp,
            signature,
        }
    }

    /// Checks a received webhook against these secrets at time `now` (Unix seconds).
    /// Returns the verified message id.
    pub fn verify<'a>(
        &self,
        headers: ReceivedHeaders<'a>,
        body: &[u8],
        now: i64,
    ) -> Result<&'a str, SigningError> {
        headers.check(now)?.verify(self.iter(), body)
    }
}

/// The current time in Unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests;
