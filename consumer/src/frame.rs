//! An events frame, `{"type":"events","events":[…]}`, written once by the hub and
//! shared by every socket of the process: a socket sends the very same bytes (a
//! reference count, not a copy), so a thousand sockets cost one serialisation, not
//! a thousand. A socket that needs less (its snapshot already holds the first
//! events) or more (several frames waiting, sent as one) composes a new text from
//! the frames' event slices, without parsing anything.

use crate::hub::Event;
use bytestring::ByteString;
use std::ops::Range;
use std::sync::Arc;

/// Everything before the first event of an events frame.
const HEAD: &str = r#"{"type":"events","events":["#;
/// Everything after the last.
const TAIL: &str = "]}";
/// The length of an events frame without its events.
pub(crate) const FRAME_OVERHEAD: usize = HEAD.len() + TAIL.len();

/// One events frame and where each of its events lies in the text.
#[derive(Debug)]
pub(crate) struct Frame {
    /// The frame's JSON text, sent as is by every socket that needs all of it.
    text: ByteString,
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
            text: ByteString::from(text),
            events: slices,
        }
    }

    /// What `event` adds to a frame's length (its comma counted even for the first,
    /// so a frame is at most [`FRAME_OVERHEAD`] plus its events' lengths).
    pub(crate) fn length_of(event: &Event) -> usize {
        event.json.get().len() + 1
    }

    /// How many events the frame holds.
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

/// The one frame text holding the events of `frames` after `seen` (the last `seq`
/// the client has), in order; `None` when it has them all. One whole frame is
/// shared as it is; anything else is composed from the frames' event slices.
pub(crate) fn compose(frames: &[Arc<Frame>], seen: u64) -> Option<ByteString> {
    if let [frame] = frames
        && frame.first_seq() > seen
    {
        return Some(frame.text.clone());
    }
    let mut text = String::new();
    for frame in frames {
        for (seq, range) in &frame.events {
            if *seq <= seen {
                continue; // already in the snapshot this client has
            }
            text.push_str(if text.is_empty() { HEAD } else { "," });
            text.push_str(&frame.text[range.clone()]);
        }
    }
    if text.is_empty() {
        return None;
    }
    text.push_str(TAIL);
    Some(ByteString::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use serde_json::value::RawValue;

    fn event(seq: u64) -> Event {
        let json = format!(r#"{{"seq":{seq},"task":{{"id":{seq},"owner":"a, b]"}}}}"#);
        // unwrap: the JSON above is valid.
        #[allow(clippy::unwrap_used)]
        let json = Arc::from(RawValue::from_string(json).unwrap());
        Event { seq, json }
    }

    fn frame(seqs: impl IntoIterator<Item = u64>) -> Arc<Frame> {
        let events: Vec<Event> = seqs.into_iter().map(event).collect();
        Arc::new(Frame::build(&events))
    }

    fn seqs_of(text: &str) -> Vec<u64> {
        let value: Value = serde_json::from_str(text).expect("a frame is JSON");
        assert_eq!(value["type"], "events");
        let events = value["events"].as_array().expect("an events array");
        events
            .iter()
            .map(|e| e["seq"].as_u64().expect("seq"))
            .collect()
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
    fn a_whole_frame_is_shared_not_copied() {
        let built = frame([3, 4]);
        let text = compose(std::slice::from_ref(&built), 2).expect("both events are new");
        assert_eq!(text.as_ptr(), built.text.as_ptr(), "the same bytes");
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
