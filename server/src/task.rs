//! What a task is: its states, what a submission holds, a stored task and its events.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use taskmanager_proto::pb;

/// The lifecycle state of a task. The text forms are the original API's status strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
pub enum TaskState {
    /// Waiting to run (or for its next attempt).
    #[serde(rename = "QUEUED")]
    Queued,
    /// Held by a worker.
    #[serde(rename = "IN_PROGRESS")]
    InProgress,
    /// Finished successfully.
    #[serde(rename = "COMPLETED")]
    Completed,
    /// Failed for good.
    #[serde(rename = "FAILED")]
    Failed,
    /// Cancelled.
    #[serde(rename = "CANCELLED")]
    Cancelled,
}

impl TaskState {
    /// The original status string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::InProgress => "IN_PROGRESS",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// Parses an original status string.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "QUEUED" => Self::Queued,
            "IN_PROGRESS" => Self::InProgress,
            "COMPLETED" => Self::Completed,
            "FAILED" => Self::Failed,
            "CANCELLED" => Self::Cancelled,
            _ => return None,
        })
    }

    /// True for states a task never leaves.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    /// The typed protobuf state.
    pub fn to_proto(self) -> pb::TaskState {
        match self {
            Self::Queued => pb::TaskState::Queued,
            Self::InProgress => pb::TaskState::InProgress,
            Self::Completed => pb::TaskState::Completed,
            Self::Failed => pb::TaskState::Failed,
            Self::Cancelled => pb::TaskState::Cancelled,
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated task to accept.
#[derive(Clone, Debug, PartialEq)]
pub struct NewTask {
    /// The id the task will have (chosen by the server, not the store).
    pub id: String,
    /// Free-text description.
    pub description: String,
    /// 0 (LOW) to 2 (HIGH).
    pub priority: u8,
    /// First operand.
    pub number1: i32,
    /// Second operand.
    pub number2: i32,
    /// Handler name.
    pub kind: String,
    /// Opaque handler input.
    pub payload: Vec<u8>,
    /// Deduplication key, if any.
    pub idempotency_key: Option<String>,
    /// Attempts in all.
    pub max_attempts: u32,
    /// Delay before the task becomes runnable.
    pub delay: Duration,
    /// W3C `traceparent` of the call that submitted it, so that its attempts join that trace.
    pub trace_parent: Option<String>,
}

/// The answer to one accepted submission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submitted {
    /// The task's id (an earlier task's, when deduplicated).
    pub id: String,
    /// True when the idempotency key matched an earlier task.
    pub deduplicated: bool,
}

/// A stored task.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRecord {
    /// Its id.
    pub id: String,
    /// Free-text description.
    pub description: String,
    /// 0 (LOW) to 2 (HIGH).
    pub priority: u8,
    /// First operand.
    pub number1: i32,
    /// Second operand.
    pub number2: i32,
    /// Handler name.
    pub kind: String,
    /// Opaque handler input.
    pub payload: Vec<u8>,
    /// Deduplication key, if any.
    pub idempotency_key: Option<String>,
    /// Current state.
    pub state: TaskState,
    /// Current attempt (0 before the first).
    pub attempt: u32,
    /// Attempts in all.
    pub max_attempts: u32,
    /// Progress of the current attempt, percent.
    pub progress: u32,
    /// Handler output, once completed.
    pub result: String,
    /// Last error.
    pub error: String,
    /// Accepted at, ms since the epoch.
    pub created_ms: i64,
    /// Last change, ms since the epoch.
    pub updated_ms: i64,
    /// Sequence number of the latest event.
    pub seq: u64,
    /// True when a cancellation was requested while running.
    pub cancel_requested: bool,
    /// W3C `traceparent` of the call that submitted it.
    pub trace_parent: Option<String>,
}

impl TaskRecord {
    /// The protobuf snapshot.
    pub fn to_proto(&self) -> pb::Task {
        pb::Task {
            task_id: self.id.clone(),
            task_description: self.description.clone(),
            priority: i32::from(self.priority),
            number1: self.number1,
            number2: self.number2,
            kind: self.kind.clone(),
            payload: self.payload.clone(),
            idempotency_key: self.idempotency_key.clone().unwrap_or_default(),
            state: self.state.to_proto().into(),
            status: self.state.as_str().to_owned(),
            sequence: self.seq,
            progress: self.progress,
            attempt: self.attempt,
            max_attempts: self.max_attempts,
            result: self.result.clone(),
            error: self.error.clone(),
            created_at_unix_ms: self.created_ms,
            updated_at_unix_ms: self.updated_ms,
        }
    }
}

/// One state of a task: what a status stream sends.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct TaskEvent {
    /// The task.
    pub id: String,
    /// Position in the task's history, from 1.
    pub seq: u64,
    /// State entered.
    pub state: TaskState,
    /// Progress, percent.
    #[serde(default)]
    pub progress: u32,
    /// Current attempt.
    #[serde(default)]
    pub attempt: u32,
    /// Attempts in all.
    #[serde(default)]
    pub max_attempts: u32,
    /// Handler output, once completed.
    #[serde(default)]
    pub result: String,
    /// Last error.
    #[serde(default)]
    pub error: String,
    /// When, ms since the epoch.
    #[serde(default)]
    pub ts: i64,
    /// The task just became runnable (it entered the queue): one idle worker should look.
    #[serde(default, rename = "run", deserialize_with = "flag")]
    pub runnable: bool,
    /// The task was put off for this many milliseconds (a delayed start or retry): the
    /// delayed set should be looked at again then.
    #[serde(default, rename = "due")]
    pub due_in_ms: Option<u64>,
    /// On a task's first event in Redis: the server that submitted it, which is registered
    /// as streaming it (`lua/submit.lua`).
    #[serde(default)]
    pub by: Option<String>,
}

/// A Lua flag: `1` (or `true`) when set.
fn flag<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Bool(value) => value,
        serde_json::Value::Number(n) => n.as_u64().is_some_and(|n| n != 0),
        _ => false,
    })
}

impl TaskEvent {
    /// The protobuf status message.
    pub fn to_proto(&self) -> pb::StatusResponse {
        pb::StatusResponse {
            status: self.state.as_str().to_owned(),
            state: self.state.to_proto().into(),
            task_id: self.id.clone(),
            sequence: self.seq,
            progress: self.progress,
            attempt: self.attempt,
            max_attempts: self.max_attempts,
            result: self.result.clone(),
            error: self.error.clone(),
            updated_at_unix_ms: self.ts,
        }
    }
}

/// What a store tells every server process.
#[derive(Clone, Debug, PartialEq)]
pub enum Notice {
    /// A task changed state.
    Event(TaskEvent),
    /// A running task should stop: its cancellation was requested. Routed by the lease
    /// token, so that only the attempt that holds the task is stopped.
    Cancel {
        /// The task.
        task_id: String,
        /// The token of the lease it runs under.
        token: String,
    },
    /// This many tasks became runnable without an event (delayed tasks came due).
    Wake(usize),
    /// Notices may have been missed (the subscription was re-established): re-read state.
    Resync,
}

/// A random (version 4) UUID as text, for task ids and lease tokens. It comes from the
/// thread's generator (a CSPRNG seeded from the OS), not from a system call per id as
/// `Uuid::new_v4` makes: a busy server draws two or three per task.
pub fn random_id() -> String {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn random_ids_are_version_4_uuids_and_differ() {
        let ids: std::collections::HashSet<String> =
            (0..1000).map(|_| super::random_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            let uuid = uuid::Uuid::parse_str(id).expect("a uuid");
            assert_eq!(uuid.get_version_num(), 4, "{id}");
            assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122, "{id}");
        }
    }
}
