//! The gRPC service: request validation, the store calls, and status streams.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use taskmanager_proto::pb;
use taskmanager_proto::pb::task_manager_server::TaskManager;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::debug;

use crate::hub::{Hub, StreamSignal, Subscription};
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
    /// Most status streams open at once.
    pub max_streams: usize,
    /// Most unary requests handled at once.
    pub max_in_flight: usize,
}

/// Most attempts a request may ask for.
const MAX_ATTEMPTS: u32 = 100;
/// Longest delay a request may ask for: 30 days.
const MAX_DELAY_MS: u64 = 30 * 24 * 3600 * 1000;
/// Longest task id accepted.
const MAX_ID_BYTES: usize = 64;
/// First wait before a stream re-reads its task after the store failed to answer.
const CATCH_UP_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between those tries.
const CATCH_UP_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// The `TaskManager` service.
pub struct TaskManagerService {
    store: Arc<dyn Store>,
    hub: Hub,
    registry: Arc<Registry>,
    limits: ApiLimits,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    streams: Arc<Semaphore>,
    in_flight: Semaphore,
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
            streams: Arc::new(Semaphore::new(limits.max_streams)),
            in_flight: Semaphore::new(limits.max_in_flight),
            limits,
            metrics,
            shutdown,
        }
    }

    /// A slot for one unary request, or `RESOURCE_EXHAUSTED` when all are taken.
    fn admit(&self) -> Result<SemaphorePermit<'_>, Status> {
        self.in_flight.try_acquire().map_err(|_| {
            self.count(Status::resource_exhausted(format!(
                "the server is handling {} requests already (server.limits.max_in_flight); \
                 retry with backoff",
                self.limits.max_in_flight
            )))
        })
    }

    /// Counts a rejected or failed request and passes its status on.
    fn count(&self, status: Status) -> Status {
        match status.code() {
            tonic::Code::InvalidArgument => inc(&self.metrics.invalid_requests),
            tonic::Code::Unavailable => inc(&self.metrics.unavailable),
            tonic::Code::ResourceExhausted => inc(&self.metrics.exhausted),
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
        StoreError::Full(message) => Status::resource_exhausted(message),
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
        let _slot = self.admit()?;
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
        let request = request.into_inner();
        let id = request.task_id;
        check_id(&id)?;
        let permit = self.streams.clone().try_acquire_owned().map_err(|_| {
            self.count(Status::resource_exhausted(format!(
                "the server has {} status streams open already (server.limits.max_streams); \
                 retry with backoff, or on another replica",
                self.limits.max_streams
            )))
        })?;
        // Register first, then read: a transition between the two arrives as a notice with a
        // sequence number above what was read, so none is missed.
        let subscription = self.hub.subscribe(&id);
        let after = request.after_sequence.unwrap_or(0);
        let mut history = self.store.events_after(&id, after).await.map_err(status)?;
        let mut done = false;
        if history.is_empty() {
            // Nothing after `after`: the task is unknown, or `after` is its latest event.
            let task = self.store.get(&id).await.map_err(status)?;
            match task {
                None => return Err(not_found(&id)),
                Some(task) if after > task.seq => {
                    return Err(Status::out_of_range(format!(
                        "after_sequence: {after} is past the latest event of task {id} ({})",
                        task.seq
                    )));
                }
                // Nothing will follow the last event of a finished task.
                Some(task) => done = task.state.is_terminal(),
            }
        }
        let mut last = after;
        if request.after_sequence.is_none()
            && let Some(current) = history.pop()
        {
            // Old clients get the current state first, as the original API did.
            last = current.seq - 1;
            history = vec![current];
        }
        let watch = Watch {
            id,
            last,
            subscription,
            store: self.store.clone(),
            shutdown: self.shutdown.clone(),
            pending: history.into(),
            resync: false,
            done,
            _permit: permit,
        };
        let stream = futures_util::stream::unfold(watch, |mut watch| async move {
            let item = watch.next().await?;
            Some((item, watch))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    #[tracing::instrument(name = "SubmitTasks", skip_all)]
    async fn submit_tasks(
        &self,
        request: Request<pb::SubmitTasksRequest>,
    ) -> Result<Response<pb::SubmitTasksResponse>, Status> {
        let _slot = self.admit()?;
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
        let _slot = self.admit()?;
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
        let _slot = self.admit()?;
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

/// One status stream. It reads Redis only when it opens and when it may have missed events
/// (a gap in sequence numbers, a re-established subscription, a mailbox that overflowed);
/// an idle stream costs the store nothing. When the store does not answer, it waits and
/// tries again, so a Redis restart or stall never ends it; only shutdown does.
struct Watch {
    id: String,
    /// The sequence number of the last event sent.
    last: u64,
    subscription: Subscription,
    store: Arc<dyn Store>,
    shutdown: CancellationToken,
    /// Events read but not sent yet.
    pending: VecDeque<TaskEvent>,
    /// Events may have been missed: re-read the history after `last`.
    resync: bool,
    done: bool,
    _permit: OwnedSemaphorePermit,
}

impl Watch {
    /// The next message, or `None` when the stream is over.
    async fn next(&mut self) -> Option<Result<pb::StatusResponse, Status>> {
        loop {
            if self.done {
                return None;
            }
            if let Some(event) = self.pending.pop_front() {
                if event.seq <= self.last {
                    continue;
                }
                if event.seq != self.last + 1 {
                    self.pending.clear();
                    self.resync = true;
                    continue;
                }
                self.last = event.seq;
                self.done = event.state.is_terminal();
                return Some(Ok(event.to_proto()));
            }
            if self.resync {
                if let Err(status) = self.catch_up().await {
                    self.done = true;
                    return Some(Err(status));
                }
                continue;
            }
            tokio::select! {
                signal = self.subscription.recv() => match signal {
                    StreamSignal::Event(event) if event.seq <= self.last => {}
                    StreamSignal::Event(event) if event.seq == self.last + 1 => {
                        self.pending.push_back(event);
                    }
                    // A gap, or a resync: read what was missed from the history.
                    _ => self.resync = true,
                },
                () = self.shutdown.cancelled() => {
                    self.done = true;
                    return Some(Err(shutting_down()));
                }
            }
        }
    }

    /// Reads the events after `last` into `pending`, retrying with backoff while the store
    /// does not answer. Ends the stream (`done`) when the task has expired meanwhile.
    async fn catch_up(&mut self) -> Result<(), Status> {
        let mut backoff = CATCH_UP_BACKOFF;
        loop {
            let read = match self.store.events_after(&self.id, self.last).await {
                Ok(events) if events.is_empty() => match self.store.get(&self.id).await {
                    Ok(task) => {
                        self.done = task.is_none();
                        Ok(())
                    }
                    Err(error) => Err(error),
                },
                Ok(events) => {
                    self.pending.extend(events);
                    Ok(())
                }
                Err(error) => Err(error),
            };
            match read {
                Ok(()) => {
                    self.resync = false;
                    return Ok(());
                }
                Err(StoreError::Unavailable(error) | StoreError::Full(error)) => {
                    debug!(task_id = %self.id, %error, "Cannot re-read the task yet; retrying.");
                }
                Err(error) => return Err(status(error)),
            }
            let jitter = rand::rng().random_range(0.5..1.0);
            tokio::select! {
                () = tokio::time::sleep(backoff.mul_f64(jitter)) => {}
                // The subscription came back (or news arrived): try again now.
                _ = self.subscription.recv() => {}
                () = self.shutdown.cancelled() => return Err(shutting_down()),
            }
            backoff = (backoff * 2).min(CATCH_UP_BACKOFF_MAX);
        }
    }
}

fn shutting_down() -> Status {
    Status::unavailable(
        "the server is shutting down; reconnect and resume with after_sequence set to the \
         last sequence received",
    )
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
