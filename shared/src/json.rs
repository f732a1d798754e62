//! Reading a request body that must be one JSON object.

use serde::de::DeserializeOwned;

/// Parses `body` as a `T` written as a JSON object. serde would also take a JSON
/// array of the fields in order (`["b", 1, "Ann", "Low"]`), which no client means
/// to send; that, and any other non-object, is refused with what was sent instead.
/// The error is a sentence for the client (serde's own, with line and column, for
/// a malformed object).
pub fn from_object<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        Some(b'{') => serde_json::from_slice(body).map_err(|err| err.to_string()),
        Some(b'[') => Err("got a JSON array; the body must be a JSON object".to_owned()),
        None => Err("the body is empty; it must be a JSON object".to_owned()),
        Some(_) => match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(other) => Err(format!(
                "got {}; the body must be a JSON object",
                kind(&other)
            )),
            Err(err) => Err(format!("not JSON: {err}")),
        },
    }
}

/// Whether a `Content-Type` header value says JSON: `application/json` or a
/// `…+json` type, any parameters (`; charset=utf-8`) ignored.
pub fn is_json_content_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence.to_ascii_lowercase().ends_with("+json")
}

fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a JSON array",
        serde_json::Value::Object(_) => "a JSON object",
    }
}

#[cfg(test)]
mod tests {
    use super::{from_object, is_json_content_type};
    use crate::Task;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(800))]

        #[test]
        fn task_parsing_never_panics_on_arbitrary_bytes(
            body in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..512),
                r#"\{("[a-z_]{1,8}": ?("[^"]{0,20}"|-?[0-9]{1,22}|null|true|\[\]|\{\}),?){0,6}\}"#
                    .prop_map(String::into_bytes),
            ],
        ) {
            if let Ok(task) = from_object::<Task>(&body) {
                let _ = task.check_sizes();
            }
        }
    }

    #[test]
    fn only_an_object_is_a_task() {
        let task: Task =
            from_object(br#" {"batchid":"b","id":1,"owner":"Ann","priority":"Low"}"#).expect("ok");
        assert_eq!(task.owner, "Ann");
        let refused = |body: &[u8]| from_object::<Task>(body).expect_err("refused");
        assert_eq!(
            refused(br#"["b",1,"Ann","Low",null]"#),
            "got a JSON array; the body must be a JSON object"
        );
        assert_eq!(
            refused(b"42"),
            "got a number; the body must be a JSON object"
        );
        assert_eq!(
            refused(b"  "),
            "the body is empty; it must be a JSON object"
        );
        assert!(refused(b"min=1").starts_with("not JSON: "));
        assert!(refused(br#"{"batchid":"b"}"#).contains("missing field"));
    }

    #[test]
    fn json_content_types() {
        let json = is_json_content_type;
        assert!(json("application/json"));
        assert!(json("Application/JSON; charset=utf-8"));
        assert!(json("application/vnd.api+json"));
        assert!(!json("text/plain"));
        assert!(!json("application/x-www-form-urlencoded"));
        assert!(!json(""));
    }
}
