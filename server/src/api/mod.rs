//! The gRPC service: request validation (in `request`, with the limits), the store calls,
//! and status streams (in `watch`).

use std::pin::Pin;
use std::sync::Arc;

use taskmanager_proto::pb;
use taskmanager_proto::pb::task_manager_server::TaskManager;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::debug;

use crate::hub::Hub;
use crate::metrics::{Metrics, inc};
use crate::store::{CancelOutcome, Store, StoreError};
use crate::worker::handler::Registry;

mod request;
mod watch;

pub use request::ApiLimits;
use request::check_id;
use watch::Watch;

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
        let mut history = self.store.watch_events(&id, after).await.map_err(status)?;
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

fn shutting_down() -> Status {
    Status::unavailable(
        "the server is shutting down; reconnect and resume with after_sequence set to the \
         last sequence received",
    )
}
