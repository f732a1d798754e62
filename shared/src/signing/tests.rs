//! Unit tests of signing and verification, on the specification's example.

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
    assert_eq!("whsec_!!!".parse::<Secret>(), Err(SecretError::NotBase64));
    assert_eq!("whsec_".parse::<Secret>(), Err(SecretError::Empty));
}

#[test]
fn keys_shorter_than_24_or_longer_than_64_bytes_are_refused_saying_how_to_make_one() {
    let whsec = |len: usize| format!("whsec_{}", BASE64.encode(vec![7u8; len]));
    assert_eq!(
        "whsec_AA==".parse::<Secret>(),
        Err(SecretError::TooShort { len: 1 })
    );
    assert_eq!(
        whsec(23).parse::<Secret>(),
        Err(SecretError::TooShort { len: 23 })
    );
    assert_eq!(
        whsec(65).parse::<Secret>(),
        Err(SecretError::TooLong { len: 65 })
    );
    assert!(whsec(24).parse::<Secret>().is_ok());
    assert!(whsec(64).parse::<Secret>().is_ok());
    let message = SecretError::TooShort { len: 1 }.to_string();
    assert!(
        message.contains("24 to 64 bytes") && message.contains("openssl rand -base64 32"),
        "{message}"
    );
}

#[test]
fn a_list_of_secrets_is_space_separated_and_bounded() {
    let (a, b) = (Secret::generate(), Secret::generate());
    let both: Secrets = format!(" {}  {} ", a.to_whsec(), b.to_whsec())
        .parse()
        .expect("two secrets parse");
    assert_eq!(both.iter().collect::<Vec<_>>(), [&a, &b]);
    assert_eq!(format!("{both:?}"), "Secrets(<2 redacted>)");
    assert_eq!(" ".parse::<Secrets>(), Err(SecretError::Empty));
    let six = vec![a.to_whsec(); 6].join(" ");
    assert_eq!(
        six.parse::<Secrets>(),
        Err(SecretError::TooMany { count: 6 })
    );
    let one_weak = format!("{} whsec_AA==", a.to_whsec());
    assert_eq!(
        one_weak.parse::<Secrets>(),
        Err(SecretError::TooShort { len: 1 })
    );
}

#[test]
fn every_secret_of_a_list_signs_and_any_one_verifies() {
    let (old, new) = (spec_secret(), Secret::generate());
    let both: Secrets = format!("{} {}", old.to_whsec(), new.to_whsec())
        .parse()
        .expect("parses");
    let headers = both.headers(SPEC_ID, SPEC_TS, SPEC_BODY);
    assert_eq!(headers.signature.split(' ').count(), 2);
    assert!(headers.signature.starts_with(SPEC_SIGNATURE));
    let ts = SPEC_TS.to_string();
    for verifier in [&old, &new] {
        let received = received(SPEC_ID, &ts, &headers.signature);
        assert_eq!(verifier.verify(received, SPEC_BODY, SPEC_TS), Ok(SPEC_ID));
    }
    let only_new = Secrets::from(new.clone()).headers(SPEC_ID, SPEC_TS, SPEC_BODY);
    assert_eq!(
        both.verify(
            received(SPEC_ID, &ts, &only_new.signature),
            SPEC_BODY,
            SPEC_TS
        ),
        Ok(SPEC_ID)
    );
    assert_eq!(
        Secrets::from(Secret::generate()).verify(
            received(SPEC_ID, &ts, &headers.signature),
            SPEC_BODY,
            SPEC_TS
        ),
        Err(SigningError::Mismatch)
    );
}

#[test]
fn empty_or_long_ids_and_too_many_or_malformed_signatures_are_refused_from_the_headers_alone() {
    let ts = SPEC_TS.to_string();
    let long_id = "m".repeat(MAX_ID_BYTES + 1);
    // A correct signature among six is still refused: the count is checked first.
    let six = [SPEC_SIGNATURE; 6].join(" ");
    let cases = [
        (
            received(&long_id, &ts, SPEC_SIGNATURE),
            SigningError::IdTooLong { len: 257 },
        ),
        (received("", &ts, SPEC_SIGNATURE), SigningError::EmptyId),
        (received(" ", &ts, SPEC_SIGNATURE), SigningError::EmptyId),
        (
            received(SPEC_ID, &ts, &six),
            SigningError::TooManySignatures { count: 6 },
        ),
        (
            received(SPEC_ID, &ts, "v1"),
            SigningError::MalformedSignature,
        ),
        (
            received(SPEC_ID, &ts, "v1,AAAA"),
            SigningError::MalformedSignature,
        ),
        (
            received(SPEC_ID, &ts, ",abc"),
            SigningError::MalformedSignature,
        ),
        (
            received(SPEC_ID, &ts, " "),
            SigningError::MalformedSignature,
        ),
    ];
    for (headers, expected) in cases {
        assert_eq!(headers.check(SPEC_TS).err(), Some(expected.clone()));
        assert_eq!(
            spec_secret().verify(headers, SPEC_BODY, SPEC_TS),
            Err(expected)
        );
    }
    let unsigned = ReceivedHeaders {
        id: Some(&long_id),
        ..ReceivedHeaders::default()
    };
    assert_eq!(
        unsigned.checked_id(),
        Err(SigningError::IdTooLong { len: 257 })
    );
    let exactly = "m".repeat(MAX_ID_BYTES);
    assert!(
        received(&exactly, &ts, SPEC_SIGNATURE)
            .check(SPEC_TS)
            .is_ok()
    );
    let with_other_versions = format!("v1a,xyz v2,abc {SPEC_SIGNATURE}");
    assert_eq!(
        spec_secret().verify(
            received(SPEC_ID, &ts, &with_other_versions),
            SPEC_BODY,
            SPEC_TS
        ),
        Ok(SPEC_ID)
    );
}

#[test]
fn the_missing_secret_message_names_the_unsigned_flag() {
    let err = Signing::choose(None, false, "--unsigned").expect_err("no secret");
    let message = err.to_string();
    assert!(
        message.contains("WEBHOOK_SECRET") && message.contains("--unsigned"),
        "{message}"
    );
    assert!(matches!(
        Signing::choose(None, true, "--unsigned"),
        Ok(Signing::Unsigned)
    ));
}
