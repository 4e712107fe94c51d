//! The gRPC service: request validation, the store calls, and status streams.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use taskmanager_proto::pb;
use taskmanager_proto::pb::task_manager_server::TaskManager;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::debug;

use crate::hub::{Hub, StreamSignal};
use crate::metrics::{Metrics, inc};
use crate::store::{CancelOutcome, Store, StoreError};
use crate::task::{NewTask, TaskEvent};
use crate::worker::handler::Registry;

/// Limits applied to requests.
#[derive(Clone, Debug)]
pub struct ApiLimits {
    /// Longest `task_description`, bytes.
    pub max_description_bytes: usize,
    /// Largest `payload`, bytes.
    pub max_payload_bytes: usize,
    /// Longest `idempotency_key` and `kind`, bytes.
    pub max_key_bytes: usize,
    /// Most tasks in one `SubmitTasks`.
    pub max_batch: usize,
    /// Attempts of a task that does not say.
    pub default_max_attempts: u32,
}

/// Most attempts a request may ask for.
const MAX_ATTEMPTS: u32 = 100;
/// Longest delay a request may ask for: 30 days.
const MAX_DELAY_MS: u64 = 30 * 24 * 3600 * 1000;
/// Longest task id accepted.
const MAX_ID_BYTES: usize = 64;
/// How often an idle stream re-reads its task's history, in case a notice was lost.
const STREAM_RESYNC: Duration = Duration::from_secs(5);

/// The `TaskManager` service.
pub struct TaskManagerService {
    store: Arc<dyn Store>,
    hub: Hub,
    registry: Arc<Registry>,
    limits: ApiLimits,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
}

impl TaskManagerService {
    /// The service over `store`. Streams end with `UNAVAILABLE` when `shutdown` fires.
    pub fn new(
        store: Arc<dyn Store>,
        hub: Hub,
        registry: Arc<Registry>,
        limits: ApiLimits,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            store,
            hub,
            registry,
            limits,
            metrics,
            shutdown,
        }
    }

    /// Counts a rejected or failed request and passes its status on.
    fn count(&self, status: Status) -> Status {
        match status.code() {
            tonic::Code::InvalidArgument => inc(&self.metrics.invalid_requests),
            tonic::Code::Unavailable => inc(&self.metrics.unavailable),
            _ => {}
        }
        status
    }

    /// Counts accepted submissions.
    fn count_accepted(&self, submitted: &[crate::task::Submitted]) {
        for task in submitted {
            inc(if task.deduplicated {
                &self.metrics.deduplicated
            } else {
                &self.metrics.submitted
            });
        }
    }

    /// Checks one task request; `field` prefixes field names in errors (`tasks[2].`).
    fn validate(&self, request: pb::TaskRequest, field: &str) -> Result<NewTask, Status> {
        let invalid = |name: &str, problem: String| {
            Status::invalid_argument(format!("{field}{name}: {problem}"))
        };
        let limits = &self.limits;
        if request.task_description.len() > limits.max_description_bytes {
            return Err(invalid(
                "task_description",
                format!(
                    "{} bytes is longer than the limit of {}",
                    request.task_description.len(),
                    limits.max_description_bytes
                ),
            ));
        }
        let priority = u8::try_from(request.priority)
            .ok()
            .filter(|p| pb::TaskPriority::try_from(i32::from(*p)).is_ok())
            .ok_or_else(|| {
                invalid(
                    "priority",
                    format!(
                        "{} is not LOW (0), MEDIUM (1) or HIGH (2)",
                        request.priority
                    ),
                )
            })?;
        if request.kind.len() > limits.max_key_bytes {
            return Err(invalid(
                "kind",
                format!("longer than {} bytes", limits.max_key_bytes),
            ));
        }
        if !self.registry.contains(&request.kind) {
            return Err(invalid(
                "kind",
                format!(
                    "no handler for {:?}; known kinds: {}",
                    request.kind,
                    self.registry.kinds().join(", ")
                ),
            ));
        }
        if request.idempotency_key.len() > limits.max_key_bytes {
            return Err(invalid(
                "idempotency_key",
                format!("longer than {} bytes", limits.max_key_bytes),
            ));
        }
        if request.payload.len() > limits.max_payload_bytes {
            return Err(invalid(
                "payload",
                format!(
                    "{} bytes is larger than the limit of {}",
                    request.payload.len(),
                    limits.max_payload_bytes
                ),
            ));
        }
        if request.max_attempts > MAX_ATTEMPTS {
            return Err(invalid("max_attempts", format!("at most {MAX_ATTEMPTS}")));
        }
        if request.delay_ms > MAX_DELAY_MS {
            return Err(invalid(
                "delay_ms",
                format!("at most {MAX_DELAY_MS} (30 days)"),
            ));
        }
        Ok(NewTask {
            id: uuid::Uuid::new_v4().to_string(),
            description: request.task_description,
            priority,
            number1: request.number1,
            number2: request.number2,
            kind: if request.kind.is_empty() {
                "default".to_owned()
            } else {
                request.kind
            },
            payload: request.payload,
            idempotency_key: (!request.idempotency_key.is_empty())
                .then_some(request.idempotency_key),
            max_attempts: if request.max_attempts == 0 {
                limits.default_max_attempts
            } else {
                request.max_attempts
            },
            delay: Duration::from_millis(request.delay_ms),
            trace_parent: crate::telemetry::current_traceparent(),
        })
    }
}

/// Checks a task id from a request.
fn check_id(id: &str) -> Result<(), Status> {
    if id.is_empty() {
        return Err(Status::invalid_argument("task_id: must not be empty"));
    }
    if id.len() > MAX_ID_BYTES
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Status::invalid_argument(format!(
            "task_id: {:?} is not a task id (at most {MAX_ID_BYTES} letters, digits, '-', '_')",
            id.chars().take(80).collect::<String>()
        )));
    }
    Ok(())
}

/// The status for a store failure.
fn status(error: StoreError) -> Status {
    match error {
        StoreError::Unavailable(message) => Status::unavailable(message),
        StoreError::Corrupt(message) => Status::internal(format!(
            "internal error (a bug; please report it with the server logs): {message}"
        )),
    }
}

fn not_found(id: &str) -> Status {
    Status::not_found(format!("task {id} does not exist (or has expired)"))
}

type StatusStream = Pin<Box<dyn Stream<Item = Result<pb::StatusResponse, Status>> + Send>>;

#[tonic::async_trait]
impl TaskManager for TaskManagerService {
    #[tracing::instrument(name = "SubmitTask", skip_all, fields(task_id, trace_id))]
    async fn submit_task(
        &self,
        request: Request<pb::TaskRequest>,
    ) -> Result<Response<pb::TaskResponse>, Status> {
        let task = self
            .validate(request.into_inner(), "")
            .map_err(|s| self.count(s))?;
        let submitted = self
            .store
            .submit(vec![task])
            .await
            .map_err(|e| self.count(status(e)))?;
        self.count_accepted(&submitted);
        let first = submitted
            .into_iter()
            .next()
            .ok_or_else(|| Status::internal("internal error: the store accepted nothing"))?;
        let span = tracing::Span::current();
        span.record("task_id", first.id.as_str());
        if let Some(trace_id) = crate::telemetry::trace_id(&span) {
            span.record("trace_id", trace_id.as_str());
        }
        debug!(task_id = %first.id, deduplicated = first.deduplicated, "Task accepted.");
        Ok(Response::new(pb::TaskResponse {
            task_id: first.id,
            deduplicated: first.deduplicated,
        }))
    }

    type StreamTaskStatusStream = StatusStream;

    #[tracing::instrument(name = "StreamTaskStatus", skip_all)]
    async fn stream_task_status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<Self::StreamTaskStatusStream>, Status> {
        let id = request.into_inner().task_id;
        check_id(&id)?;
        // Register first, then read: a transition between the two arrives as a notice with a
        // sequence number above what was read, so none is missed.
        let mut subscription = self.hub.subscribe(&id);
        let history = self.store.events_after(&id, 0).await.map_err(status)?;
        let Some(current) = history.last().cloned() else {
            return Err(not_found(&id));
        };
        let (sender, receiver) = mpsc::channel(16);
        let store = self.store.clone();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let mut last = current.seq;
            let terminal = current.state.is_terminal();
            if sender.send(Ok(current.to_proto())).await.is_err() || terminal {
                return;
            }
            loop {
                let missed = tokio::select! {
                    signal = subscription.recv() => match signal {
                        Some(StreamSignal::Event(event)) if event.seq == last + 1 => {
                            last = event.seq;
                            let terminal = event.state.is_terminal();
                            if sender.send(Ok(event.to_proto())).await.is_err() || terminal {
                                return;
                            }
                            continue;
                        }
                        Some(StreamSignal::Event(event)) if event.seq <= last => continue,
                        // A gap, or a resync: read what was missed from the history.
                        Some(_) => true,
                        None => return,
                    },
                    () = tokio::time::sleep(STREAM_RESYNC) => true,
                    () = sender.closed() => return,
                    () = shutdown.cancelled() => {
                        let _ = sender
                            .send(Err(Status::unavailable("the server is shutting down; retry")))
                            .await;
                        return;
                    }
                };
                if missed {
                    match catch_up(store.as_ref(), &id, &mut last, &sender).await {
                        Ok(true) => return,
                        Ok(false) => {}
                        Err(error) => {
                            let _ = sender.send(Err(status(error))).await;
                            return;
                        }
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    #[tracing::instrument(name = "SubmitTasks", skip_all)]
    async fn submit_tasks(
        &self,
        request: Request<pb::SubmitTasksRequest>,
    ) -> Result<Response<pb::SubmitTasksResponse>, Status> {
        let tasks = request.into_inner().tasks;
        if tasks.is_empty() {
            return Err(Status::invalid_argument(
                "tasks: must hold at least one task",
            ));
        }
        if tasks.len() > self.limits.max_batch {
            return Err(Status::invalid_argument(format!(
                "tasks: {} tasks is more than the limit of {} per call",
                tasks.len(),
                self.limits.max_batch
            )));
        }
        let tasks = tasks
            .into_iter()
            .enumerate()
            .map(|(index, task)| self.validate(task, &format!("tasks[{index}].")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|s| self.count(s))?;
        let submitted = self
            .store
            .submit(tasks)
            .await
            .map_err(|e| self.count(status(e)))?;
        self.count_accepted(&submitted);
        Ok(Response::new(pb::SubmitTasksResponse {
            tasks: submitted
                .into_iter()
                .map(|s| pb::TaskResponse {
                    task_id: s.id,
                    deduplicated: s.deduplicated,
                })
                .collect(),
        }))
    }

    #[tracing::instrument(name = "GetTask", skip_all)]
    async fn get_task(
        &self,
        request: Request<pb::GetTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let id = request.into_inner().task_id;
        check_id(&id)?;
        match self.store.get(&id).await.map_err(status)? {
            Some(task) => Ok(Response::new(task.to_proto())),
            None => Err(not_found(&id)),
        }
    }

    #[tracing::instrument(name = "CancelTask", skip_all)]
    async fn cancel_task(
        &self,
        request: Request<pb::CancelTaskRequest>,
    ) -> Result<Response<pb::CancelTaskResponse>, Status> {
        let request = request.into_inner();
        check_id(&request.task_id)?;
        if request.reason.len() > self.limits.max_description_bytes {
            return Err(Status::invalid_argument(format!(
                "reason: longer than {} bytes",
                self.limits.max_description_bytes
            )));
        }
        let reason = if request.reason.is_empty() {
            "cancelled by request".to_owned()
        } else {
            request.reason
        };
        let outcome = self
            .store
            .cancel(&request.task_id, &reason)
            .await
            .map_err(status)?;
        let (state, cancelled) = match outcome {
            CancelOutcome::Cancelled => (pb::TaskState::Cancelled, true),
            CancelOutcome::Requested => (pb::TaskState::InProgress, true),
            CancelOutcome::AlreadyFinished(state) => (state.to_proto(), false),
            CancelOutcome::NotFound => return Err(not_found(&request.task_id)),
        };
        Ok(Response::new(pb::CancelTaskResponse {
            state: state.into(),
            cancelled,
        }))
    }
}

/// Sends the task's events after `last`; true when the stream is done (terminal state or
/// the client went away).
async fn catch_up(
    store: &dyn Store,
    id: &str,
    last: &mut u64,
    sender: &mpsc::Sender<Result<pb::StatusResponse, Status>>,
) -> Result<bool, StoreError> {
    let events: Vec<TaskEvent> = store.events_after(id, *last).await?;
    if events.is_empty() && store.get(id).await?.is_none() {
        // The task expired while we watched; nothing more will come.
        return Ok(true);
    }
    for event in events {
        *last = event.seq;
        let terminal = event.state.is_terminal();
        if sender.send(Ok(event.to_proto())).await.is_err() || terminal {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::check_id;

    #[test]
    fn task_ids() {
        assert!(check_id("7c1f0d3a-9b1e-4f55-a0ad-0c5d2a0b9e11").is_ok());
        assert!(check_id("").is_err());
        assert!(check_id("a b").is_err());
        assert!(check_id(&"a".repeat(65)).is_err());
    }
}
