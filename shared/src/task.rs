//! The task model: what one webhook carries.

use serde::{Deserialize, Serialize};

/// How urgent a task is. The order of the variants is the order used everywhere:
/// chart bars, totals and code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Priority {
    /// Can wait.
    Low,
    /// Should be looked at soon.
    Moderate,
    /// Needs attention today.
    Major,
    /// Drop everything.
    Critical,
}

impl Priority {
    /// All priorities, in display order.
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Moderate,
        Priority::Major,
        Priority::Critical,
    ];

    /// The name used in JSON, in Redis and on the page.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "Low",
            Priority::Moderate => "Moderate",
            Priority::Major => "Major",
            Priority::Critical => "Critical",
        }
    }

    /// Position of this priority in [`Priority::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One fake task, sent as the body of one webhook.
///
/// The first four field names are exactly those of the original Python tutorial,
/// so its producer and ours are interchangeable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// The batch this task belongs to (a UUIDv4 in our producer).
    pub batchid: String,
    /// The task's position in its batch, from 0.
    pub id: u64,
    /// A fake person's name, unique within the batch.
    pub owner: String,
    pub priority: Priority,
    /// When the producer created the task, in milliseconds since the Unix epoch.
    /// Optional so that the original Python producer's tasks are accepted too;
    /// the dashboard uses it to show end-to-end latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<u64>,
}

/// Longest `owner` accepted, in characters. Fake names are under 40; every
/// dashboard snapshot carries 200 recent tasks, so this bounds a snapshot's size.
pub const MAX_OWNER_CHARS: usize = 200;
/// Longest `batchid` accepted, in characters (our producer sends a 36-character UUID).
pub const MAX_BATCHID_CHARS: usize = 100;

impl Task {
    /// Checks the string fields against [`MAX_OWNER_CHARS`] and [`MAX_BATCHID_CHARS`];
    /// the error names the field and the limit.
    pub fn check_sizes(&self) -> Result<(), String> {
        for (field, value, limit) in [
            ("owner", &self.owner, MAX_OWNER_CHARS),
            ("batchid", &self.batchid, MAX_BATCHID_CHARS),
        ] {
            let len = value.chars().count();
            if len > limit {
                return Err(format!(
                    "the {field} is {len} characters; at most {limit} are accepted"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_and_batchid_are_capped_by_characters_naming_the_field() {
        let mut task = Task {
            batchid: "b".repeat(MAX_BATCHID_CHARS),
            id: 0,
            owner: "é".repeat(MAX_OWNER_CHARS),
            priority: Priority::Low,
            created_at: None,
        };
        assert_eq!(task.check_sizes(), Ok(()));
        task.owner.push('x');
        assert_eq!(
            task.check_sizes(),
            Err("the owner is 201 characters; at most 200 are accepted".to_owned())
        );
        task.owner.pop();
        task.batchid.push('x');
        assert_eq!(
            task.check_sizes(),
            Err("the batchid is 101 characters; at most 100 are accepted".to_owned())
        );
    }

    #[test]
    fn task_round_trips_with_the_seed_field_names() {
        let json = r#"{"batchid":"b","id":3,"owner":"Ann Lee","priority":"Major"}"#;
        let task: Task = serde_json::from_str(json).expect("valid task");
        assert_eq!(task.priority, Priority::Major);
        assert_eq!(task.created_at, None);
        assert_eq!(serde_json::to_string(&task).expect("serializes"), json);
    }

    #[test]
    fn unknown_priority_is_rejected() {
        let json = r#"{"batchid":"b","id":3,"owner":"A","priority":"High"}"#;
        let err = serde_json::from_str::<Task>(json).expect_err("High is not a priority");
        assert!(err.to_string().contains("unknown variant"), "{err}");
    }

    #[test]
    fn priorities_are_in_display_order() {
        let names: Vec<_> = Priority::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(names, ["Low", "Moderate", "Major", "Critical"]);
        assert!(
            Priority::ALL
                .iter()
                .enumerate()
                .all(|(i, p)| p.index() == i)
        );
    }
}
