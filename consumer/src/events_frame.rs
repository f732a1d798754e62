//! An events frame, `{"type":"events","fields":[…],"events":[…]}` (each event an
//! array of the values `fields` names, see `event.rs`), written once by the hub and
//! shared by every socket of the process, so a thousand sockets cost one
//! serialisation, not a thousand: each copies the text into its WebSocket frame as
//! it is. A socket that needs less (its snapshot already holds the first events) or
//! more (several frames waiting, sent as one) composes its text from the frames'
//! event slices instead, without parsing anything.

use crate::event::{Event, fields_json};
use actix_web::web::BytesMut;
use std::ops::Range;
use std::sync::Arc;

/// Everything before the first event of an events frame (the fan-out benchmark's
/// client matches it to tell an events frame from the rare others).
pub const HEAD: &str = concat!(
    r#"{"type":"events","fields":"#,
    fields_json!(),
    r#","events":["#
);
/// Everything after the last.
const TAIL: &str = "]}";
/// The length of an events frame without its events.
pub(crate) const FRAME_OVERHEAD: usize = HEAD.len() + TAIL.len();

/// One events frame and where each of its events lies in the text.
#[derive(Debug)]
pub(crate) struct Frame {
    /// The frame's JSON text, sent as is by every socket that needs all of it.
    text: Box<str>,
    /// Each event's `seq` and the byte range of its JSON in `text`, in order.
    events: Vec<(u64, Range<usize>)>,
}

impl Frame {
    /// The frame of `events` (at least one, in `seq` order).
    pub(crate) fn build(events: &[Event]) -> Frame {
        let bytes = events.iter().map(|e| e.json.get().len() + 1).sum::<usize>();
        let mut text = String::with_capacity(HEAD.len() + bytes + TAIL.len());
        text.push_str(HEAD);
        let mut slices = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            let start = text.len();
            text.push_str(event.json.get());
            slices.push((event.seq, start..text.len()));
        }
        text.push_str(TAIL);
        Frame {
            text: text.into_boxed_str(),
            events: slices,
        }
    }

    /// What `event` adds to a frame's length (its comma counted even for the first,
    /// so a frame is at most [`FRAME_OVERHEAD`] plus its events' lengths).
    pub(crate) fn length_of(event: &Event) -> usize {
        event.json.get().len() + 1
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    /// The length of its text in bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.text.len()
    }

    /// The `seq` of its last event (0 for none).
    pub(crate) fn last_seq(&self) -> u64 {
        self.events.last().map_or(0, |(seq, _)| *seq)
    }

    /// Its events' `seq`s, in order.
    #[cfg(test)]
    pub(crate) fn seqs(&self) -> Vec<u64> {
        self.events.iter().map(|(seq, _)| *seq).collect()
    }

    /// The `seq` of its first event (0 for none).
    fn first_seq(&self) -> u64 {
        self.events.first().map_or(0, |(seq, _)| *seq)
    }
}

/// The length of the frame text holding the events of `frames` after `seen` (the
/// last `seq` the client has); 0 when it has them all.
pub(crate) fn payload_len(frames: &[Arc<Frame>], seen: u64) -> usize {
    if let [frame] = frames
        && frame.first_seq() > seen
    {
        return frame.text.len();
    }
    let events = new_events(frames, seen)
        .map(|json| json.len() + 1)
        .sum::<usize>();
    if events == 0 {
        0
    } else {
        FRAME_OVERHEAD + events - 1
    }
}

/// Appends that frame text to `out`: one whole frame as it is, anything else
/// composed from the frames' event slices, in order.
pub(crate) fn write_payload(frames: &[Arc<Frame>], seen: u64, out: &mut BytesMut) {
    if let [frame] = frames
        && frame.first_seq() > seen
    {
        return out.extend_from_slice(frame.text.as_bytes());
    }
    let mut first = true;
    for json in new_events(frames, seen) {
        let before = if std::mem::take(&mut first) {
            HEAD
        } else {
            ","
        };
        out.extend_from_slice(before.as_bytes());
        out.extend_from_slice(json.as_bytes());
    }
    if !first {
        out.extend_from_slice(TAIL.as_bytes());
    }
}

/// The JSON of the events of `frames` after `seen`, in order.
fn new_events(frames: &[Arc<Frame>], seen: u64) -> impl Iterator<Item = &str> {
    let events = frames.iter().flat_map(|frame| {
        let text = &frame.text;
        frame
            .events
            .iter()
            .map(move |(seq, range)| (*seq, &text[range.clone()]))
    });
    // Skipped: already in the snapshot this client has.
    events
        .filter(move |(seq, _)| *seq > seen)
        .map(|(_, json)| json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn frame(seqs: impl IntoIterator<Item = u64>) -> Arc<Frame> {
        let events: Vec<Event> = seqs.into_iter().map(crate::event::test_event).collect();
        Arc::new(Frame::build(&events))
    }

    /// The frame text for the events of `frames` after `seen`, if any.
    fn compose(frames: &[Arc<Frame>], seen: u64) -> Option<String> {
        let mut out = BytesMut::new();
        write_payload(frames, seen, &mut out);
        assert_eq!(
            out.len(),
            payload_len(frames, seen),
            "the length said beforehand"
        );
        (!out.is_empty()).then(|| String::from_utf8(out.to_vec()).expect("UTF-8"))
    }

    fn seqs_of(text: &str) -> Vec<u64> {
        let value: Value = serde_json::from_str(text).expect("a frame is JSON");
        assert_eq!(value["type"], "events");
        assert_eq!(value["fields"][0], "seq");
        let events = value["events"].as_array().expect("an events array");
        events.iter().map(|e| e[0].as_u64().expect("seq")).collect()
    }

    #[test]
    fn a_built_frame_is_the_events_frame_of_its_events() {
        let built = frame([3, 4, 5]);
        assert_eq!(seqs_of(&built.text), [3, 4, 5]);
        assert_eq!(
            (built.len(), built.first_seq(), built.last_seq()),
            (3, 3, 5)
        );
    }

    #[test]
    fn a_whole_frame_is_sent_as_it_is() {
        let built = frame([3, 4]);
        let text = compose(std::slice::from_ref(&built), 2).expect("both events are new");
        assert_eq!(text, &*built.text);
    }

    #[test]
    fn events_the_client_already_has_are_left_out() {
        let built = frame([3, 4, 5]);
        let text = compose(std::slice::from_ref(&built), 4).expect("seq 5 is new");
        assert_eq!(seqs_of(&text), [5]);
        assert_eq!(compose(&[built], 5), None, "nothing new");
    }

    #[test]
    fn waiting_frames_are_sent_as_one() {
        let text = compose(&[frame([1, 2]), frame([3]), frame([4, 5])], 1).expect("new events");
        assert_eq!(seqs_of(&text), [2, 3, 4, 5]);
    }
}
