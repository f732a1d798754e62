//! Webhook secrets: one key ([`Secret`]), the list a program signs or verifies with
//! ([`Secrets`], for rotation), and whether a program signs at all ([`Signing`]).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::KeyInit as _;
use rand::RngExt as _;

/// Shortest key accepted, in bytes. 24 bytes (192 bits) is what the Standard
/// Webhooks reference libraries generate at least; a shorter key can be guessed
/// offline from one captured webhook.
pub const MIN_KEY_BYTES: usize = 24;
/// Longest key accepted, in bytes. HMAC-SHA256 hashes a key longer than its 64-byte
/// block down to 32 bytes, so more adds nothing; refusing it catches a pasted
/// certificate or file by mistake.
pub const MAX_KEY_BYTES: usize = 64;
/// Most secrets in one list. A rotation needs two; the receiver computes one HMAC per
/// secret, and accepts at most this many signatures (see `MAX_SIGNATURES`).
pub const MAX_SECRETS: usize = super::MAX_SIGNATURES;

const SECRET_PREFIX: &str = "whsec_";
/// How to make a good secret, quoted by every secret error.
const HOW_TO_MAKE: &str = "make one with `echo whsec_$(openssl rand -base64 32)`";

/// Why a secret could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The text is not base64 after the `whsec_` prefix.
    #[error("a webhook secret must be whsec_ followed by base64; {HOW_TO_MAKE}")]
    NotBase64,
    /// No secret at all.
    #[error("the webhook secret is empty; {HOW_TO_MAKE}")]
    Empty,
    /// The key is too short to resist guessing.
    #[error(
        "a webhook secret's key is {len} bytes, too short to resist guessing: it must be \
         {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes; {HOW_TO_MAKE}"
    )]
    TooShort {
        /// The key's length in bytes.
        len: usize,
    },
    /// The key is longer than HMAC-SHA256 can use.
    #[error(
        "a webhook secret's key is {len} bytes: it must be {MIN_KEY_BYTES} to \
         {MAX_KEY_BYTES} bytes (HMAC-SHA256 gains nothing from more); {HOW_TO_MAKE}"
    )]
    TooLong {
        /// The key's length in bytes.
        len: usize,
    },
    /// More secrets than a rotation needs.
    #[error(
        "{count} webhook secrets given; at most {MAX_SECRETS} (space-separated) are accepted: \
         a rotation needs the old one and the new one"
    )]
    TooMany { count: usize },
}

/// A webhook signing key. Its `Debug` output is redacted.
#[derive(Clone)]
pub struct Secret {
    pub(super) key: Vec<u8>,
    /// The HMAC already keyed with `key`, cloned for each message: keying hashes the
    /// padded key (two SHA-256 blocks of the four a task's HMAC costs), the same work
    /// for every message (measured with `scripts/profile`, docs/benchmarks.md).
    pub(super) keyed: super::HmacSha256,
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.key == other.key
    }
}

impl Eq for Secret {}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::str::FromStr for Secret {
    type Err = SecretError;

    /// Reads `whsec_<base64>` (the prefix is optional) of a key of
    /// [`MIN_KEY_BYTES`] to [`MAX_KEY_BYTES`] bytes.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let encoded = text.trim();
        let encoded = encoded.strip_prefix(SECRET_PREFIX).unwrap_or(encoded);
        let key = BASE64.decode(encoded).map_err(|_| SecretError::NotBase64)?;
        match key.len() {
            0 => Err(SecretError::Empty),
            len if len < MIN_KEY_BYTES => Err(SecretError::TooShort { len }),
            len if len > MAX_KEY_BYTES => Err(SecretError::TooLong { len }),
            _ => Ok(Secret::from_key(key)),
        }
    }
}

impl Secret {
    /// A new random 32-byte secret.
    pub fn generate() -> Secret {
        let mut key = vec![0u8; 32];
        rand::rng().fill(&mut key[..]);
        Secret::from_key(key)
    }

    /// The secret of `key`, of any length (the caller checks it).
    pub(super) fn from_key(key: Vec<u8>) -> Secret {
        // unwrap: HMAC accepts keys of any length, so new_from_slice cannot fail.
        #[allow(clippy::unwrap_used)]
        let keyed = super::HmacSha256::new_from_slice(&key).unwrap();
        Secret { key, keyed }
    }

    /// The secret in its `whsec_<base64>` form, for handing to the other side.
    pub fn to_whsec(&self) -> String {
        format!("{SECRET_PREFIX}{}", BASE64.encode(&self.key))
    }
}

/// The secrets a program signs or verifies with: one normally, two while a secret
/// is rotated. Written space-separated (`whsec_old whsec_new`), as the Standard
/// Webhooks specification does for signatures. Its `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secrets(Vec<Secret>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets(<{} redacted>)", self.0.len())
    }
}

impl std::str::FromStr for Secrets {
    type Err = SecretError;

    /// Reads one to [`MAX_SECRETS`] space-separated secrets.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let secrets = text
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<Vec<Secret>, _>>()?;
        match secrets.len() {
            0 => Err(SecretError::Empty),
            count if count > MAX_SECRETS => Err(SecretError::TooMany { count }),
            _ => Ok(Secrets(secrets)),
        }
    }
}

impl From<Secret> for Secrets {
    fn from(secret: Secret) -> Secrets {
        Secrets(vec![secret])
    }
}

impl Secrets {
    /// Each secret, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = &Secret> {
        self.0.iter()
    }
}

/// Whether a program signs (or checks) webhooks, and with what. The one type both
/// programs use, so "signed or not" is decided, and explained, in one place.
#[derive(Debug, Clone)]
pub enum Signing {
    /// Standard Webhooks signatures with these secrets.
    Secrets(Secrets),
    /// No signatures (`--unsigned` on the producer, `--allow-unsigned` on the consumer).
    Unsigned,
}

/// Why a program cannot sign (or check) webhooks as configured. Never quotes the
/// secret's text: a mistyped real secret must not end up in a terminal or a log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningSetupError {
    /// Neither a secret nor the program's unsigned flag was given.
    #[error(
        "no webhook secret: set WEBHOOK_SECRET (or --webhook-secret) to the same whsec_<base64> \
         value for the producer and the consumer, for example \
         `export WEBHOOK_SECRET=whsec_$(openssl rand -base64 32)` before starting both; or pass \
         {unsigned_flag} to do without signatures"
    )]
    Missing {
        /// The flag that lets this program run unsigned.
        unsigned_flag: &'static str,
    },
    /// The secret given cannot be used (not a source, so the reason is said once).
    #[error("WEBHOOK_SECRET (or --webhook-secret) cannot be used: {0}")]
    Invalid(SecretError),
}

impl Signing {
    /// Signatures with the secrets in `secrets` (the text of WEBHOOK_SECRET) when
    /// given; otherwise unsigned only when `unsigned` (the program's `unsigned_flag`)
    /// was set.
    pub fn choose(
        secrets: Option<&str>,
        unsigned: bool,
        unsigned_flag: &'static str,
    ) -> Result<Signing, SigningSetupError> {
        match (secrets, unsigned) {
            (Some(text), _) => Ok(Signing::Secrets(
                text.parse().map_err(SigningSetupError::Invalid)?,
            )),
            (None, true) => Ok(Signing::Unsigned),
            (None, false) => Err(SigningSetupError::Missing { unsigned_flag }),
        }
    }
}
