//! The wire event: one published task as a JSON array in the order of [`FIELDS`],
//! `[seq,"batchid",id,"owner","priority",created_at]` (`created_at` may be `null`),
//! written here for the in-process broker and in Lua by the accept script in Redis
//! (`broker/redis_accept.rs`), and read here from the Redis channel, where one
//! message carries the events of one script call as an array of these.
//!
//! An array, not an object: the field names would be over a third of every event's
//! bytes, and a thousand sockets copy each event (issue 28). The names travel once per
//! message instead, as the `fields` of every events frame and snapshot. That both
//! sides write the same text, and that [`leading_seq`] reads the script's `seq`
//! from its first bytes, is checked by one test that runs the real script:
//! `broker::redis::tests::the_accept_script_writes_the_event_json_rust_writes_and_reads`.

use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use std::sync::Arc;
use taskhooks_shared::Task;

/// The names of an event's values, in order: what a client zips each event with.
pub(crate) const FIELDS: [&str; 6] = ["seq", "batchid", "id", "owner", "priority", "created_at"];
/// [`FIELDS`] as JSON text, as every events frame carries it (a macro, so that
/// `events_frame::HEAD` is put together from it by `concat!`).
macro_rules! fields_json {
    () => {
        r#"["seq","batchid","id","owner","priority","created_at"]"#
    };
}
pub(crate) use fields_json;

#[derive(Debug, Clone)]
pub(crate) struct Event {
    /// Position in the global order of accepted events (1, 2, …).
    pub(crate) seq: u64,
    /// The event's JSON, sent to browsers as is.
    pub(crate) json: Arc<RawValue>,
}

/// An event read back from its text, an array of exactly [`FIELDS`]' length: its
/// `seq` (`.0`) and `created_at` (`.1`), the values between skipped. Read here only
/// when the text does not start with its `seq`; the fan-out benchmark's client reads
/// every event with it.
#[derive(serde::Deserialize)]
#[serde(from = "Values")]
pub struct EventRow(pub u64, pub Option<u64>);

/// The values of an event as serde reads the array.
#[derive(serde::Deserialize)]
struct Values(
    u64,
    IgnoredAny,
    IgnoredAny,
    IgnoredAny,
    IgnoredAny,
    Option<u64>,
);

impl From<Values> for EventRow {
    fn from(values: Values) -> EventRow {
        EventRow(values.0, values.5)
    }
}

/// The values after `seq` of `task`'s event, without the brackets: what the accept
/// script wraps as `[seq,` … `]`.
pub(crate) fn task_values(task: &Task) -> String {
    let values = (
        &task.batchid,
        task.id,
        &task.owner,
        task.priority,
        task.created_at,
    );
    // unwrap: a Task is plain strings and numbers, which always serialise.
    #[allow(clippy::unwrap_used)]
    let mut json = serde_json::to_string(&values).unwrap();
    json.pop();
    json.remove(0);
    json
}

impl Event {
    /// The event `seq` of `task`, as the accept script writes it.
    pub(crate) fn new(seq: u64, task: &Task) -> Event {
        // Put together as the accept script does, around the same serde-written values.
        let json = format!("[{seq},{}]", task_values(task));
        // unwrap: a number and serde's values of a tuple, in brackets, are JSON.
        #[allow(clippy::unwrap_used)]
        let json = RawValue::from_string(json).unwrap();
        Event {
            seq,
            json: Arc::from(json),
        }
    }

    /// Reads one event. `seq` is read from its first bytes, where the accept script
    /// writes it, so the hot path parses each event once, not twice; any other text
    /// is parsed again for it.
    fn from_raw(raw: Box<RawValue>) -> Result<Event, serde_json::Error> {
        let seq = match leading_seq(raw.get()) {
            Some(seq) => seq,
            None => serde_json::from_str::<EventRow>(raw.get())?.0,
        };
        Ok(Event {
            seq,
            json: Arc::from(raw),
        })
    }

    /// Reads a channel message, the events of one accept call as one JSON array, in
    /// `seq` order; the text is checked as JSON once.
    pub(crate) fn batch_from_json(json: &str) -> Result<Vec<Event>, serde_json::Error> {
        let raws: Vec<&RawValue> = serde_json::from_str(json)?;
        raws.into_iter()
            .map(|raw| Event::from_raw(raw.to_owned()))
            .collect()
    }
}

/// The event `seq` of a task of batch "b" with id `seq`, owner "o", priority Low: for
/// tests of what carries events.
#[cfg(test)]
pub(crate) fn test_event(seq: u64) -> Event {
    let task = Task {
        batchid: "b".into(),
        id: seq,
        owner: "o".into(),
        priority: taskhooks_shared::Priority::Low,
        created_at: None,
    };
    Event::new(seq, &task)
}

/// `N` of valid JSON that starts `[N,`: the event's `seq`, as the accept script
/// writes it (checked by the test named atop this file); `None` for any other start.
pub(crate) fn leading_seq(json: &str) -> Option<u64> {
    let rest = json.strip_prefix('[')?;
    let digits = rest.find(|c: char| !c.is_ascii_digit())?;
    if digits == 0 || !rest[digits..].starts_with(',') {
        return None;
    }
    rest[..digits].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskhooks_shared::Priority;

    fn one(text: &str) -> Result<Event, serde_json::Error> {
        let mut events = Event::batch_from_json(&format!("[{text}]"))?;
        assert_eq!(events.len(), 1);
        Ok(events.remove(0))
    }

    #[test]
    fn an_event_s_seq_is_read_from_its_start_or_else_parsed() {
        let from_start = one(r#"[42,"b",1,"o","Low",null]"#).expect("an event");
        let spaced = one(r#"[ 44 , "b", 1, "o", "Low", 5 ]"#).expect("an event");

        assert_eq!((from_start.seq, spaced.seq), (42, 44));
        assert_eq!(from_start.json.get(), r#"[42,"b",1,"o","Low",null]"#);
    }

    #[test]
    fn a_message_gives_its_events_in_order() {
        let events =
            Event::batch_from_json(r#"[[7,"b",0,"o","Low",null],[8,"b",1,"o","Major",3]]"#)
                .expect("two events");

        assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [7, 8]);
        assert_eq!(events[1].json.get(), r#"[8,"b",1,"o","Major",3]"#);
    }

    #[test]
    fn text_that_is_not_an_event_is_refused() {
        for text in [
            r#"[42,"b",1,"o","Low"#,
            r#"[042,"b",1,"o","Low",null]"#,
            r#"[-1,"b",1,"o","Low",null]"#,
            r#"[1.5,"b",1,"o","Low",null]"#,
            r#"["b",1,"o","Low",null]"#,
            r#"{"seq":1,"task":{}}"#,
            "42",
        ] {
            assert!(one(text).is_err(), "{text} was accepted");
        }
        assert!(Event::batch_from_json(r#"{"seq":1}"#).is_err());
    }

    #[test]
    fn an_event_written_here_starts_with_its_seq_and_follows_the_field_list() {
        let task = Task {
            batchid: "b".into(),
            id: 3,
            owner: "Ann".into(),
            priority: Priority::Low,
            created_at: None,
        };

        let event = Event::new(9, &task);

        assert_eq!(leading_seq(event.json.get()), Some(9));
        assert_eq!(event.json.get(), r#"[9,"b",3,"Ann","Low",null]"#);
        let fields: Vec<String> = serde_json::from_str(fields_json!()).expect("a list");
        assert_eq!(fields, FIELDS);
    }
}
