//! What fault injection is told to do (`PUT /api/faults`), checked field by field,
//! and what it has done so far.

use serde::Serialize;
use serde_json::{Map, Value};

/// Most webhooks `fail_next` or `drop_next` may name at once.
pub(crate) const MAX_NEXT: u64 = 10_000;
/// Longest `delay_ms`: past it a sender has long timed out.
pub(crate) const MAX_DELAY_MS: u64 = 30_000;
/// The statuses a refusal may answer: what a real receiver answers when busy or broken.
pub(crate) const FAIL_STATUSES: [u16; 5] = [429, 500, 502, 503, 504];
/// The default refusal: the receiver is unavailable.
const DEFAULT_STATUS: u16 = 503;

/// The faults in force, shared by every replica on one Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Settings {
    /// The next this many verified webhooks are refused.
    pub(crate) fail_next: u64,
    /// The status of a refusal: one of [`FAIL_STATUSES`].
    pub(crate) fail_status: u16,
    /// Each verified webhook is refused with this probability, in percent.
    pub(crate) fail_percent: u64,
    /// Every answer waits this long, in milliseconds.
    pub(crate) delay_ms: u64,
    /// The next this many published webhooks get no answer: the connection is closed.
    pub(crate) drop_next: u64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            fail_next: 0,
            fail_status: DEFAULT_STATUS,
            fail_percent: 0,
            delay_ms: 0,
            drop_next: 0,
        }
    }
}

/// What has been injected so far, every replica together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Injected {
    /// Verified webhooks refused (not counted, not published).
    pub(crate) refused: u64,
    /// Webhooks counted and published whose answer was dropped.
    pub(crate) dropped: u64,
}

/// The names of the settings, in the order they are shown.
pub(crate) const FIELDS: [&str; 5] = [
    "fail_next",
    "fail_status",
    "fail_percent",
    "delay_ms",
    "drop_next",
];

impl Settings {
    /// The setting `name` as a number (for the Redis hash).
    pub(crate) fn get(&self, name: &str) -> Option<u64> {
        Some(match name {
            "fail_next" => self.fail_next,
            "fail_status" => u64::from(self.fail_status),
            "fail_percent" => self.fail_percent,
            "delay_ms" => self.delay_ms,
            "drop_next" => self.drop_next,
            _ => return None,
        })
    }

    /// Sets `name` to `value`, already checked by [`Change::parse`].
    pub(crate) fn set(&mut self, name: &str, value: u64) {
        match name {
            "fail_next" => self.fail_next = value,
            // unwrap_or: checked to be one of FAIL_STATUSES, all below u16::MAX.
            "fail_status" => self.fail_status = u16::try_from(value).unwrap_or(DEFAULT_STATUS),
            "fail_percent" => self.fail_percent = value,
            "delay_ms" => self.delay_ms = value,
            "drop_next" => self.drop_next = value,
            _ => {}
        }
    }

    /// Whether any fault is set: when none is, a webhook does no fault work at all.
    pub(crate) fn any(&self) -> bool {
        self.fail_next > 0 || self.fail_percent > 0 || self.delay_ms > 0 || self.drop_next > 0
    }
}

/// The fields a `PUT /api/faults` sets, each checked; the others keep their value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Change(pub(crate) Vec<(&'static str, u64)>);

impl Change {
    /// Reads a JSON object of settings, saying which field is wrong and why.
    pub(crate) fn parse(body: &[u8]) -> Result<Change, String> {
        let object: Map<String, Value> =
            taskhooks_shared::json::from_object(body).map_err(|err| {
                format!("the body must be a JSON object like {{\"fail_next\": 5}}: {err}")
            })?;
        let mut change = Vec::new();
        for (name, value) in &object {
            let Some(&field) = FIELDS.iter().find(|f| **f == name) else {
                return Err(format!(
                    "unknown field {name:?}; the settings are {}",
                    FIELDS.join(", ")
                ));
            };
            change.push((field, check(field, value)?));
        }
        Ok(Change(change))
    }

    /// `settings` with this change made.
    pub(crate) fn apply(&self, mut settings: Settings) -> Settings {
        for (name, value) in &self.0 {
            settings.set(name, *value);
        }
        settings
    }
}

/// Checks one field's value, naming the field and its bounds when it is wrong.
fn check(field: &'static str, value: &Value) -> Result<u64, String> {
    let number = value
        .as_u64()
        .ok_or_else(|| format!("{field} must be a whole number, got {value}"))?;
    let bad = |bounds: &str| Err(format!("{field} must be {bounds}, got {number}"));
    match field {
        "fail_status" if !FAIL_STATUSES.iter().any(|s| u64::from(*s) == number) => {
            bad("one of 429, 500, 502, 503, 504")
        }
        "fail_percent" if number > 100 => bad("from 0 to 100"),
        "delay_ms" if number > MAX_DELAY_MS => bad("from 0 to 30000 (milliseconds)"),
        "fail_next" | "drop_next" if number > MAX_NEXT => bad("from 0 to 10000"),
        _ => Ok(number),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_sets_only_the_fields_given() {
        let change = Change::parse(br#"{"fail_next": 4, "fail_status": 429}"#).expect("valid");
        let settings = change.apply(Settings {
            delay_ms: 200,
            ..Settings::default()
        });

        assert_eq!(
            settings,
            Settings {
                fail_next: 4,
                fail_status: 429,
                delay_ms: 200,
                ..Settings::default()
            }
        );
        assert_eq!(Change::parse(b"{}"), Ok(Change::default()));
    }

    #[test]
    fn a_bad_value_names_its_field() {
        let cases = [
            (
                r#"{"fail_next": 10001}"#,
                "fail_next must be from 0 to 10000",
            ),
            (r#"{"fail_next": -1}"#, "fail_next must be a whole number"),
            (r#"{"fail_status": 404}"#, "fail_status must be one of"),
            (
                r#"{"fail_percent": 101}"#,
                "fail_percent must be from 0 to 100",
            ),
            (
                r#"{"fail_percent": 2.5}"#,
                "fail_percent must be a whole number",
            ),
            (r#"{"delay_ms": 30001}"#, "delay_ms must be from 0 to 30000"),
            (r#"{"drop_next": "3"}"#, "drop_next must be a whole number"),
            (r#"{"fail_nxt": 3}"#, "unknown field \"fail_nxt\""),
            ("[1]", "JSON object"),
            ("", "JSON object"),
        ];
        for (body, expected) in cases {
            let err = Change::parse(body.as_bytes()).expect_err(body);
            assert!(err.contains(expected), "{body}: {err}");
        }
    }
}
