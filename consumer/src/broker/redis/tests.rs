//! The contract between the accept script's Lua and the Rust that reads it.

use super::subscriber::events_channel;
use super::*;
use crate::event::Event;
use crate::event::leading_seq;
use crate::events_frame::{Frame, write_payload};
use actix_web::web::BytesMut;
use futures_util::StreamExt as _;
use taskhooks_shared::testing::RedisServer;

/// The contract between the accept script's Lua (`ACCEPT` in `redis_accept.rs`) and
/// the Rust that reads what it publishes (`event.rs`): the script's event text
/// is the text `Event::new` writes, byte for byte, it starts with its `seq`
/// (so `leading_seq` reads it without a second parse), the events of one call
/// are one message on the `v2` channel, and an event goes into an events frame
/// and a snapshot as it is, its values in the order of the frame's `fields`;
/// the snapshot reads the keys the script writes.
#[tokio::test]
async fn the_accept_script_writes_the_event_json_rust_writes_and_reads() {
    let redis = RedisServer::start();
    let client = RedisClient::open(&redis.url()).expect("a Redis URL");
    let broker = RedisBroker::new(client, "contract").expect("a broker");
    let client = redis::Client::open(redis.url()).expect("a Redis URL");
    let (mut sink, mut published) = client.get_async_pubsub().await.expect("a pubsub").split();
    sink.subscribe(events_channel("{contract}"))
        .await
        .expect("subscribed");
    let task = Task {
        batchid: r#"b "quoted" \ é"#.to_owned(),
        id: 7,
        owner: r#"Ann, "the" ]},"seq":1"#.to_owned(),
        priority: Priority::Major,
        created_at: Some(1_700_000_000_123),
    };

    let seq = broker
        .accept(Some("msg_contract"), &task)
        .await
        .expect("accepted");
    let message = published.next().await.expect("one message published");
    let text: String = message.get_payload().expect("UTF-8");

    let seq = seq.expect("a new webhook, not a duplicate");
    let written = Event::new(seq, &task);
    assert_eq!(
        text,
        format!("[{}]", written.json.get()),
        "Lua writes what Rust writes"
    );
    assert_eq!(
        leading_seq(written.json.get()),
        Some(seq),
        "its seq read from its first bytes"
    );
    let events = Event::batch_from_json(&text).expect("an event");
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [seq]);
    let mut frame = BytesMut::new();
    write_payload(&[Arc::new(Frame::build(&events))], 0, &mut frame);
    let frame: serde_json::Value = serde_json::from_slice(&frame).expect("a JSON frame");
    let mut named = serde_json::Map::new();
    for (i, field) in frame["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .enumerate()
    {
        let field = field.as_str().expect("a field name");
        named.insert(field.to_owned(), frame["events"][0][i].clone());
    }
    let mut expected = serde_json::to_value(&task).expect("a task serialises");
    expected["seq"] = seq.into();
    assert_eq!(
        serde_json::Value::Object(named),
        expected,
        "the task as sent"
    );
    let snapshot = broker.snapshot().await.expect("a snapshot");
    assert_eq!(
        snapshot.recent[0].get(),
        written.json.get(),
        "the recent list holds the same text"
    );
    assert_eq!((snapshot.seq, snapshot.totals.sum()), (seq, 1));
    assert_eq!(snapshot.totals.get(Priority::Major), 1);

    // The webhooks of one call: one message, their events in seq order.
    let second = Task {
        id: 8,
        ..task.clone()
    };
    let calls = [
        broker.accept.call(None, task_values(&task), task.priority),
        broker
            .accept
            .call(None, task_values(&second), second.priority),
    ];
    let mut conn = broker.conn.clone();
    let seqs = broker
        .run_accept(&mut conn, &calls.iter().collect::<Vec<_>>())
        .await
        .expect("one call");
    let message = published.next().await.expect("one message for the call");
    let text: String = message.get_payload().expect("UTF-8");
    let events = Event::batch_from_json(&text).expect("two events");
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs);
    assert_eq!(seqs, [seq + 1, seq + 2]);
    let recent: Vec<u64> = broker
        .snapshot()
        .await
        .expect("a snapshot")
        .recent
        .iter()
        .map(|event| leading_seq(event.get()).expect("a seq"))
        .collect();
    assert_eq!(
        recent,
        [seq + 2, seq + 1, seq],
        "the recent list, newest first"
    );
}
