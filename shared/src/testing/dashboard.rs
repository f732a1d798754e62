//! Reading the consumer's dashboard messages as the page does.

use serde_json::Value;

/// `message` with each event array under `events` or `recent` turned into
/// `{"seq":N,"task":{…}}` by the names in its `fields`, as the page does
/// (`named` in `static/js/dashboard.js`); a message without `fields` as it is.
pub fn named_events(mut message: Value) -> Value {
    let fields: Vec<String> = match message.get("fields") {
        Some(fields) => serde_json::from_value(fields.clone()).expect("field names"),
        None => return message,
    };
    for list in ["events", "recent"] {
        let Some(events) = message.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for event in events {
            let values = event.as_array().expect("an event is an array");
            assert_eq!(values.len(), fields.len(), "{values:?} against {fields:?}");
            let mut task = serde_json::Map::new();
            let mut seq = Value::Null;
            for (field, value) in fields.iter().zip(values) {
                match field.as_str() {
                    "seq" => seq = value.clone(),
                    // The task as the producer sent it: no `created_at` when it had none.
                    "created_at" if value.is_null() => {}
                    _ => {
                        task.insert(field.clone(), value.clone());
                    }
                }
            }
            *event = serde_json::json!({ "seq": seq, "task": task });
        }
    }
    message
}
