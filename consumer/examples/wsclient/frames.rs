//! Reading the dashboard socket's frames as cheaply as the check allows: an events
//! frame is scanned for each event's `"seq":` and its task's `"created_at":` only,
//! without building anything; every other frame (snapshots, status) is rare and
//! parsed with serde.
//!
//! Why the scan is exact: an events frame is `{"type":"events","events":[E, …]}`
//! where each `E` is `{"seq":N,"task":{…}}` with the task's fields as the consumer
//! serialises them. Inside a JSON string a quote is always escaped (`\"`), so the
//! bytes `"seq":` and `"created_at":` can only be keys, never text of a task. The
//! frame's head is the consumer's own constant; the whole shape of the messages is
//! pinned by the consumer's `ws::feed::tests::the_messages_the_dashboard_reads_keep_their_shape`.

use consumer::ws::EVENTS_FRAME_HEAD;
use serde::Deserialize;

const SEQ_KEY: &str = r#""seq":"#;
const CREATED_AT_KEY: &str = r#""created_at":"#;

/// One text frame of the dashboard socket.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A snapshot: the state after event `seq`.
    Snapshot { seq: u64 },
    /// Live events, their `(seq, created_at)` in order.
    Events(Vec<(u64, Option<u64>)>),
    /// `{"type":"status","status":"unavailable",…}`: events have stopped for now.
    Unavailable,
}

/// The fields of the rare frames that matter here; the rest is skipped.
#[derive(Deserialize)]
struct OtherFrame<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    seq: Option<u64>,
    #[serde(borrow)]
    status: Option<&'a str>,
}

/// Reads one text frame; the error says what was wrong with it.
pub(crate) fn parse(text: &str) -> Result<Frame, String> {
    if let Some(events) = text.strip_prefix(EVENTS_FRAME_HEAD) {
        let mut found = Vec::new();
        scan_events(events, |seq, created_at| found.push((seq, created_at)))?;
        return Ok(Frame::Events(found));
    }
    let frame: OtherFrame<'_> =
        serde_json::from_str(text).map_err(|err| format!("a frame is not JSON: {err}"))?;
    match (frame.kind, frame.seq, frame.status) {
        ("snapshot", Some(seq), _) => Ok(Frame::Snapshot { seq }),
        ("status", _, Some("unavailable")) => Ok(Frame::Unavailable),
        _ => Err(format!("an unexpected frame: {}", preview(text))),
    }
}

/// Calls `each(seq, created_at)` for every event of an events frame's array, in
/// order; fails when there is none or a number is not one.
fn scan_events(mut rest: &str, mut each: impl FnMut(u64, Option<u64>)) -> Result<(), String> {
    let mut next = rest.find(SEQ_KEY);
    if next.is_none() {
        return Err(format!("an events frame without events: {}", preview(rest)));
    }
    while let Some(at) = next {
        let (seq, after) = leading_number(&rest[at + SEQ_KEY.len()..])
            .ok_or_else(|| format!("an event's seq is not a number: {}", preview(rest)))?;
        next = after.find(SEQ_KEY);
        // This event's own text: up to the next event's key.
        let event = &after[..next.unwrap_or(after.len())];
        let created_at = event
            .find(CREATED_AT_KEY)
            .and_then(|i| leading_number(&event[i + CREATED_AT_KEY.len()..]))
            .map(|(created_at, _)| created_at);
        each(seq, created_at);
        rest = after;
    }
    Ok(())
}

/// The whole number `text` starts with, and the text after it.
fn leading_number(text: &str) -> Option<(u64, &str)> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let number = text[..digits].parse().ok()?;
    Some((number, &text[digits..]))
}

/// The start of a frame, for an error message.
fn preview(text: &str) -> &str {
    let mut end = text.len().min(120);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64, owner: &str, created_at: Option<u64>) -> serde_json::Value {
        let mut task = serde_json::json!({
            "batchid": "b", "id": seq, "owner": owner, "priority": "Low",
        });
        if let Some(created_at) = created_at {
            task["created_at"] = created_at.into();
        }
        serde_json::json!({ "seq": seq, "task": task })
    }

    fn events_frame(events: &[serde_json::Value]) -> String {
        // The consumer's own head, `type` first, which serde_json's map would not
        // keep (insertion order is a feature), so the frame is put together by hand.
        let events: Vec<String> = events.iter().map(ToString::to_string).collect();
        format!("{EVENTS_FRAME_HEAD}{}]}}", events.join(","))
    }

    #[test]
    fn an_events_frame_gives_each_seq_with_its_own_created_at() {
        let text = events_frame(&[
            event(7, "Ann", Some(1_700_000_000_123)),
            event(8, "Bob", None),
            event(9, "Cy", Some(1_700_000_000_125)),
        ]);

        let frame = parse(&text);

        let expected = vec![
            (7, Some(1_700_000_000_123)),
            (8, None),
            (9, Some(1_700_000_000_125)),
        ];
        assert_eq!(frame, Ok(Frame::Events(expected)));
    }

    #[test]
    fn keys_written_inside_a_task_s_text_are_not_mistaken_for_keys() {
        let owner = r#"x","seq":99,"created_at":5"#;
        let text = events_frame(&[event(3, owner, Some(10)), event(4, owner, None)]);

        assert_eq!(
            parse(&text),
            Ok(Frame::Events(vec![(3, Some(10)), (4, None)]))
        );
    }

    #[test]
    fn snapshots_and_status_frames_are_read_by_serde() {
        let snapshot =
            r#"{"type":"snapshot","seq":42,"totals":{"Low":1},"recent":[{"seq":42,"task":{}}]}"#;
        let status = r#"{"type":"status","status":"unavailable","error":"Redis is gone"}"#;

        assert_eq!(parse(snapshot), Ok(Frame::Snapshot { seq: 42 }));
        assert_eq!(parse(status), Ok(Frame::Unavailable));
    }

    #[test]
    fn malformed_frames_are_reported() {
        for text in [
            r#"{"type":"events","events":[]}"#,
            r#"{"type":"events","events":[{"seq":x}]}"#,
            r#"{"type":"hello"}"#,
            "not json",
        ] {
            assert!(parse(text).is_err(), "{text}");
        }
    }
}
