//! Following one task's status stream to its end, across server restarts: a stream that
//! breaks is reopened on a new connection with `after_sequence` set to the last event
//! shown, so every transition is shown once, in order, and none is missed.

use taskmanager_proto::pb;
use taskmanager_proto::pb::task_manager_client::TaskManagerClient;
use tonic::transport::Channel;

use crate::reconnect::{Outage, Reconnect, chain, is_transient};
use crate::{EXIT_RPC, Failure, Output};

/// Streams the status of `task_id` to `output` until it ends; returns the last status.
///
/// The first stream starts with the task's current state. When a stream, opening one or
/// connecting fails with UNAVAILABLE or a transport error, the client connects afresh to
/// the same address with exponential backoff and resumes after the last event it showed,
/// until `reconnect`'s budget passes without a new event. Other errors end the watch.
pub async fn watch(
    client: &TaskManagerClient<Channel>,
    reconnect: &Reconnect,
    task_id: &str,
    output: &mut Output,
) -> Result<pb::StatusResponse, Failure> {
    let result = follow(client.clone(), reconnect, task_id, output).await;
    output.finish();
    result
}

async fn follow(
    client: TaskManagerClient<Channel>,
    reconnect: &Reconnect,
    task_id: &str,
    output: &mut Output,
) -> Result<pb::StatusResponse, Failure> {
    let mut client = Some(client);
    let mut history = History::default();
    let mut outage: Option<Outage> = None;
    loop {
        let interruption = match &mut client {
            None => match reconnect.connect_once().await {
                Ok(fresh) => {
                    client = Some(fresh);
                    continue;
                }
                Err(error) => Interruption::Connect(chain(&error)),
            },
            Some(current) => {
                let resuming = outage.is_some();
                match stream(current, task_id, &mut history, resuming, output).await {
                    Ok(()) => return history.into_last(task_id),
                    Err(Stop::Failed(failure)) => return Err(failure),
                    Err(Stop::Interrupted(interruption)) => {
                        if history.made_progress() {
                            outage = None;
                        }
                        interruption
                    }
                }
            }
        };
        if history.is_finished() {
            // The terminal status arrived; only the end of the stream was lost.
            return history.into_last(task_id);
        }
        let failure = || interruption.failure(reconnect, task_id, history.after_sequence());
        if !interruption.is_transient() {
            return Err(failure());
        }
        let outage = outage.get_or_insert_with(Outage::start);
        let Some(delay) = outage.next_delay(reconnect.budget()) else {
            let mut failure = failure();
            if !reconnect.budget().is_zero() {
                failure.message.push_str(&format!(
                    "; gave up reconnecting to {} after {:.1}s without a new status \
                     (--reconnect-for {})",
                    reconnect.address(),
                    outage.elapsed().as_secs_f64(),
                    stack_config::types::Duration::from_millis(
                        u64::try_from(reconnect.budget().as_millis()).unwrap_or(u64::MAX)
                    ),
                ));
            }
            return Err(failure);
        };
        output.notice(
            &format!(
                "reconnecting in {}ms ({})",
                delay.as_millis(),
                interruption.kind()
            ),
            &format!(
                "reconnecting to {} in {}ms ({})",
                reconnect.address(),
                delay.as_millis(),
                interruption.brief()
            ),
        );
        tokio::time::sleep(delay).await;
        // A new connection: the old one may lead to a process that is gone.
        client = None;
    }
}

/// Opens one stream (resuming after the last event in `history`) and shows its new events
/// until it ends or fails.
async fn stream(
    client: &mut TaskManagerClient<Channel>,
    task_id: &str,
    history: &mut History,
    resuming: bool,
    output: &mut Output,
) -> Result<(), Stop> {
    history.progressed = false;
    let request = pb::StatusRequest {
        task_id: task_id.to_owned(),
        after_sequence: history.after_sequence(),
    };
    let mut stream = client
        .stream_task_status(taskmanager_telemetry::traced(request))
        .await
        .map_err(|status| Stop::Interrupted(Interruption::Open(status)))?
        .into_inner();
    if resuming {
        let full = match history.after_sequence() {
            Some(sequence) => format!("reconnected; resuming after #{sequence}"),
            None => "reconnected".to_owned(),
        };
        output.notice("reconnected", &full);
    }
    loop {
        match stream.message().await {
            Ok(Some(status)) => match history.check(&status) {
                Next::New => {
                    output.status(&status);
                    history.record(status);
                }
                Next::Repeat => {}
                Next::Gap { after } => {
                    return Err(Stop::Failed(Failure {
                        message: format!(
                            "the status stream of {task_id} jumped from #{after} to #{}: the \
                             server skipped events it must send (a server bug, or a server too \
                             old to resume a stream with after_sequence)",
                            status.sequence
                        ),
                        code: EXIT_RPC,
                    }));
                }
            },
            Ok(None) => return Ok(()),
            Err(status) => return Err(Stop::Interrupted(Interruption::Stream(status))),
        }
    }
}

/// Why [`stream`] stopped early.
enum Stop {
    /// For good.
    Failed(Failure),
    /// Perhaps for a while: the stream may be reopened.
    Interrupted(Interruption),
}

/// What broke.
enum Interruption {
    /// Opening the stream failed.
    Open(tonic::Status),
    /// The open stream failed.
    Stream(tonic::Status),
    /// Connecting failed (the error with its sources).
    Connect(String),
}

impl Interruption {
    fn is_transient(&self) -> bool {
        match self {
            // A server at its stream limit says so; another try (or replica) may have room.
            Self::Open(status) => {
                is_transient(status) || status.code() == tonic::Code::ResourceExhausted
            }
            Self::Stream(status) => is_transient(status),
            Self::Connect(_) => true,
        }
    }

    /// What broke, in a word or two.
    fn kind(&self) -> String {
        match self {
            Self::Open(status) | Self::Stream(status) => format!("{:?}", status.code()),
            Self::Connect(_) => "cannot connect".to_owned(),
        }
    }

    /// What broke and why, for the reconnecting notice.
    fn brief(&self) -> String {
        match self {
            Self::Open(status) | Self::Stream(status) => {
                format!("{:?}: {}", status.code(), status.message())
            }
            Self::Connect(error) => format!("cannot connect: {error}"),
        }
    }

    fn failure(&self, reconnect: &Reconnect, task_id: &str, after: Option<u64>) -> Failure {
        match self {
            Self::Open(status) => match after {
                None => Failure::rpc("cannot stream the task's status", status),
                Some(after) => Failure::rpc(
                    &format!("cannot resume the status stream of {task_id} after #{after}"),
                    status,
                ),
            },
            Self::Stream(status) => Failure::rpc("the status stream failed", status),
            Self::Connect(error) => Failure {
                message: format!("cannot connect to {}: {error}", reconnect.address()),
                code: EXIT_RPC,
            },
        }
    }
}

/// The events of one task shown so far.
#[derive(Debug, Default)]
pub struct History {
    last: Option<pb::StatusResponse>,
    /// A new event arrived on the current stream.
    progressed: bool,
}

/// What to do with an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Show it: the first event, or the one after the last shown.
    New,
    /// Drop it: its sequence number was shown already.
    Repeat,
    /// A server error: events between `after` and this one are missing.
    Gap {
        /// The last sequence number shown.
        after: u64,
    },
}

impl History {
    /// The sequence number to resume after: the last one shown, if any.
    pub fn after_sequence(&self) -> Option<u64> {
        self.last.as_ref().map(|status| status.sequence)
    }

    /// What to do with `status`.
    pub fn check(&self, status: &pb::StatusResponse) -> Next {
        match self.after_sequence() {
            None => Next::New,
            Some(after) if status.sequence <= after => Next::Repeat,
            Some(after) if status.sequence == after + 1 => Next::New,
            Some(after) => Next::Gap { after },
        }
    }

    /// Records `status` as shown.
    pub fn record(&mut self, status: pb::StatusResponse) {
        self.last = Some(status);
        self.progressed = true;
    }

    /// True once a terminal status was shown.
    pub fn is_finished(&self) -> bool {
        self.last.as_ref().is_some_and(|status| {
            matches!(
                status.state(),
                pb::TaskState::Completed | pb::TaskState::Failed | pb::TaskState::Cancelled
            )
        })
    }

    fn made_progress(&self) -> bool {
        self.progressed
    }

    fn into_last(self, task_id: &str) -> Result<pb::StatusResponse, Failure> {
        self.last.ok_or_else(|| Failure {
            message: format!("the stream of {task_id} ended without a status"),
            code: EXIT_RPC,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(sequence: u64, state: pb::TaskState) -> pb::StatusResponse {
        pb::StatusResponse {
            sequence,
            state: state.into(),
            ..Default::default()
        }
    }

    #[test]
    fn repeats_are_dropped_and_gaps_reported() {
        let mut history = History::default();
        assert_eq!(history.after_sequence(), None);
        // The first event is the current state, whatever its number.
        assert_eq!(history.check(&event(4, pb::TaskState::Queued)), Next::New);
        history.record(event(4, pb::TaskState::Queued));
        assert_eq!(history.after_sequence(), Some(4));
        assert_eq!(
            history.check(&event(3, pb::TaskState::Queued)),
            Next::Repeat
        );
        assert_eq!(
            history.check(&event(4, pb::TaskState::Queued)),
            Next::Repeat
        );
        assert_eq!(
            history.check(&event(5, pb::TaskState::InProgress)),
            Next::New
        );
        assert_eq!(
            history.check(&event(7, pb::TaskState::InProgress)),
            Next::Gap { after: 4 }
        );
        assert!(!history.is_finished());
        history.record(event(5, pb::TaskState::Completed));
        assert!(history.is_finished());
    }
}
