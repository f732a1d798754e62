//! The wire event: one published task as the JSON text `{"seq":N,"task":{…}}`,
//! written here for the in-process broker and in Lua by the accept script in Redis
//! (`broker/redis_accept.rs`), and read here from the Redis channel. That both write
//! the same text, and that [`Event::from_json`] reads the script's `seq` from its
//! first bytes, is checked by one test that runs the real script:
//! `broker::redis::tests::the_accept_script_writes_the_event_json_rust_writes_and_reads`.

use serde_json::value::RawValue;
use std::sync::Arc;
use taskhooks_shared::Task;

#[derive(Debug, Clone)]
pub(crate) struct Event {
    /// Position in the global order of accepted events (1, 2, …).
    pub(crate) seq: u64,
    /// The event's JSON, sent to browsers as is.
    pub(crate) json: Arc<RawValue>,
}

/// What is read of an event whose text does not start with its `seq`.
#[derive(serde::Deserialize)]
struct SeqOnly {
    seq: u64,
}

impl Event {
    /// The event `seq` of `task`, as the accept script writes it.
    pub(crate) fn new(seq: u64, task: &Task) -> Event {
        #[derive(serde::Serialize)]
        struct EventJson<'a> {
            seq: u64,
            task: &'a Task,
        }
        // unwrap: a Task is plain strings and numbers, which always serialise.
        #[allow(clippy::unwrap_used)]
        let json = serde_json::value::to_raw_value(&EventJson { seq, task }).unwrap();
        Event {
            seq,
            json: Arc::from(json),
        }
    }

    /// Reads an event published by any consumer process. The text is checked as
    /// JSON once; `seq` is then read from its first bytes, where the accept script
    /// writes it, so the hot path parses each event once, not twice; any other
    /// text is parsed again for it.
    pub(crate) fn from_json(json: &str) -> Result<Event, serde_json::Error> {
        let raw = RawValue::from_string(json.to_owned())?;
        let seq = match leading_seq(raw.get()) {
            Some(seq) => seq,
            None => serde_json::from_str::<SeqOnly>(raw.get())?.seq,
        };
        Ok(Event {
            seq,
            json: Arc::from(raw),
        })
    }
}

/// `N` of valid JSON that starts `{"seq":N,`: the object's `seq`, as the accept
/// script writes it (checked by the test named atop this file); `None` for any
/// other start.
pub(crate) fn leading_seq(json: &str) -> Option<u64> {
    let rest = json.strip_prefix(r#"{"seq":"#)?;
    let digits = rest.find(|c: char| !c.is_ascii_digit())?;
    if !rest[digits..].starts_with(',') {
        return None;
    }
    rest[..digits].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskhooks_shared::Priority;

    #[test]
    fn an_event_s_seq_is_read_from_its_start_or_else_parsed() {
        let from_start = Event::from_json(r#"{"seq":42,"task":{"id":1}}"#).expect("an event");
        let elsewhere = Event::from_json(r#"{"task":{"seq":7},"seq":43}"#).expect("an event");
        let spaced = Event::from_json(r#"{ "seq" : 44 , "task" : {} }"#).expect("an event");

        assert_eq!((from_start.seq, elsewhere.seq, spaced.seq), (42, 43, 44));
        assert_eq!(from_start.json.get(), r#"{"seq":42,"task":{"id":1}}"#);
    }

    #[test]
    fn text_that_is_not_an_event_is_refused() {
        for text in [
            r#"{"seq":42,"task":"#,
            r#"{"seq":042,"task":{}}"#,
            r#"{"seq":-1,"task":{}}"#,
            r#"{"seq":1.5,"task":{}}"#,
            r#"{"task":{}}"#,
            "42",
        ] {
            assert!(Event::from_json(text).is_err(), "{text} was accepted");
        }
    }

    #[test]
    fn an_event_written_here_starts_with_its_seq() {
        let task = Task {
            batchid: "b".into(),
            id: 3,
            owner: "Ann".into(),
            priority: Priority::Low,
            created_at: None,
        };

        let event = Event::new(9, &task);

        assert_eq!(leading_seq(event.json.get()), Some(9));
    }
}
