//! Property tests: whatever the headers and body, verification never panics, and
//! nothing but a correct signature by one of the secrets over the exact bytes passes.

use super::*;
use proptest::prelude::*;

/// Cases per property: with the others in this crate, a few thousand in all,
/// in well under a second.
const CASES: u32 = 600;
const NOW: i64 = 1_700_000_000;

fn secret() -> impl Strategy<Value = Secret> {
    proptest::collection::vec(any::<u8>(), MIN_KEY_BYTES..=MAX_KEY_BYTES).prop_map(Secret::from_key)
}

/// A header value as a client may send it: any text, often close to a real one.
fn header_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        any::<String>(),
        "v1,[A-Za-z0-9+/=]{0,50}( v1,[A-Za-z0-9+/=]{0,50}){0,7}",
        "[ 0-9+-]{0,24}",
    ])
}

/// A message a sender signs: id, timestamp near `NOW`, body.
fn message() -> impl Strategy<Value = (String, i64, Vec<u8>)> {
    (
        "[A-Za-z0-9_]{1,64}",
        NOW - TOLERANCE_SECS..=NOW + TOLERANCE_SECS,
        proptest::collection::vec(any::<u8>(), 0..512),
    )
}

fn received<'a>(id: &'a str, ts: &'a str, sig: &'a str) -> ReceivedHeaders<'a> {
    ReceivedHeaders {
        id: Some(id),
        timestamp: Some(ts),
        signature: Some(sig),
    }
}

/// `text` with its character at `at` (modulo its length) replaced by another.
fn change_char(text: &str, at: usize) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let i = at % chars.len();
    chars[i] = if chars[i] == 'x' { 'y' } else { 'x' };
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn arbitrary_headers_and_bodies_never_panic_and_are_refused(
        secret in secret(),
        id in header_text(),
        timestamp in header_text(),
        signature in header_text(),
        body in proptest::collection::vec(any::<u8>(), 0..256),
        now in any::<i64>(),
    ) {
        let headers = ReceivedHeaders {
            id: id.as_deref(),
            timestamp: timestamp.as_deref(),
            signature: signature.as_deref(),
        };
        prop_assert!(secret.verify(headers, &body, now).is_err());
        let _ = headers.checked_id();
    }

    #[test]
    fn a_correct_signature_by_any_listed_secret_is_accepted(
        signer in secret(),
        other in secret(),
        (id, ts, body) in message(),
        signer_first in any::<bool>(),
    ) {
        let signature = signer.sign(&id, ts, &body);
        let ts_text = ts.to_string();
        let list = if signer_first { [&signer, &other] } else { [&other, &signer] };
        let checked = received(&id, &ts_text, &signature).check(NOW);
        prop_assert_eq!(checked.and_then(|c| c.verify(list, &body)), Ok(id.as_str()));
    }

    #[test]
    fn a_signature_by_any_other_secret_is_refused(
        signer in secret(),
        verifier in secret(),
        (id, ts, body) in message(),
    ) {
        prop_assume!(signer != verifier);
        let signature = signer.sign(&id, ts, &body);
        let ts_text = ts.to_string();
        prop_assert_eq!(
            verifier.verify(received(&id, &ts_text, &signature), &body, NOW),
            Err(SigningError::Mismatch)
        );
    }

    #[test]
    fn changing_any_byte_of_id_timestamp_body_or_signature_is_refused(
        secret in secret(),
        (id, ts, body) in message(),
        at in any::<usize>(),
        mask in 1u8..,
    ) {
        let signature = secret.sign(&id, ts, &body);
        let ts_text = ts.to_string();
        let verify = |id: &str, ts: &str, body: &[u8], sig: &str| {
            secret.verify(received(id, ts, sig), body, NOW).map(str::to_owned)
        };
        prop_assert!(verify(&change_char(&id, at), &ts_text, &body, &signature).is_err());
        prop_assert!(verify(&id, &change_char(&ts_text, at), &body, &signature).is_err());
        prop_assert!(verify(&id, &ts_text, &body, &change_char(&signature, at)).is_err());
        let mut tag = BASE64.decode(&signature[3..]).expect("own signature decodes");
        let i = at % tag.len();
        tag[i] ^= mask;
        let flipped_tag = format!("v1,{}", BASE64.encode(&tag));
        prop_assert_eq!(verify(&id, &ts_text, &body, &flipped_tag), Err(SigningError::Mismatch));
        if !body.is_empty() {
            let mut flipped = body.clone();
            let i = at % flipped.len();
            flipped[i] ^= mask;
            prop_assert_eq!(verify(&id, &ts_text, &flipped, &signature), Err(SigningError::Mismatch));
        }
        let mut longer = body.clone();
        longer.push(b' ');
        prop_assert_eq!(verify(&id, &ts_text, &longer, &signature), Err(SigningError::Mismatch));
    }

    #[test]
    fn secret_text_never_panics_and_only_good_keys_parse(text in any::<String>()) {
        if let Ok(secrets) = text.parse::<Secrets>() {
            prop_assert!(secrets.iter().all(|s| (MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&s.key.len())));
        }
    }
}
