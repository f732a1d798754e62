//! Reading the dashboard socket's frames: an events frame (told apart by its head,
//! the consumer's own constant) is read for each event's `seq` and `created_at`
//! only, the other values skipped without being built; every other frame
//! (snapshots, status) is rare and read for its type. The shape of the messages is
//! pinned by the consumer's `ws::feed::tests::the_messages_the_dashboard_reads_keep_their_shape`:
//! each event an array in the order of the frame's `fields`,
//! `[seq,"batchid",id,"owner","priority",created_at]`.

use consumer::ws::{EVENTS_FRAME_HEAD, EventRow};
use serde::Deserialize;

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

/// An events frame: its events' `seq` and `created_at`, the rest skipped.
#[derive(Deserialize)]
struct EventsFrame {
    events: Vec<EventRow>,
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
    if text.starts_with(EVENTS_FRAME_HEAD) {
        let frame: EventsFrame = serde_json::from_str(text)
            .map_err(|err| format!("an events frame is not one: {err}: {}", preview(text)))?;
        if frame.events.is_empty() {
            return Err(format!("an events frame without events: {}", preview(text)));
        }
        let events = frame.events.into_iter().map(|row| (row.0, row.1));
        return Ok(Frame::Events(events.collect()));
    }
    let frame: OtherFrame<'_> =
        serde_json::from_str(text).map_err(|err| format!("a frame is not JSON: {err}"))?;
    match (frame.kind, frame.seq, frame.status) {
        ("snapshot", Some(seq), _) => Ok(Frame::Snapshot { seq }),
        ("status", _, Some("unavailable")) => Ok(Frame::Unavailable),
        _ => Err(format!("an unexpected frame: {}", preview(text))),
    }
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
        serde_json::json!([seq, "b", seq, owner, "Low", created_at])
    }

    fn events_frame(events: &[serde_json::Value]) -> String {
        // The consumer's own head, as the consumer writes it.
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
    fn numbers_written_inside_a_task_s_text_are_not_mistaken_for_values() {
        let owner = r#"x",99,"y"],[5,"#;
        let text = events_frame(&[event(3, owner, Some(10)), event(4, owner, None)]);

        assert_eq!(
            parse(&text),
            Ok(Frame::Events(vec![(3, Some(10)), (4, None)]))
        );
    }

    #[test]
    fn snapshots_and_status_frames_are_read_by_serde() {
        let snapshot = r#"{"type":"snapshot","seq":42,"totals":{"Low":1},"fields":[],"recent":[[42,"b",1,"o","Low",null]]}"#;
        let status = r#"{"type":"status","status":"unavailable","error":"Redis is gone"}"#;

        assert_eq!(parse(snapshot), Ok(Frame::Snapshot { seq: 42 }));
        assert_eq!(parse(status), Ok(Frame::Unavailable));
    }

    #[test]
    fn malformed_frames_are_reported() {
        for text in [
            format!("{EVENTS_FRAME_HEAD}]}}"),
            format!("{EVENTS_FRAME_HEAD}[x]]}}"),
            format!(r#"{EVENTS_FRAME_HEAD}[1,"b",1,"o","Low"]]}}"#),
            r#"{"type":"hello"}"#.to_owned(),
            "not json".to_owned(),
        ] {
            assert!(parse(&text).is_err(), "{text}");
        }
    }
}
