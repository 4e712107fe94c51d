//! The TaskManager client: submit a task and watch it live, watch an existing task, run the
//! original demo (random tasks at a steady rate, each streamed), or generate load and report
//! throughput and latency percentiles. Status streams survive server restarts: see
//! [`watch`] and [`reconnect`].

pub mod commands;
pub mod load;
pub mod output;
pub mod reconnect;
pub mod watch;

use std::time::Duration;

use taskmanager_proto::pb;
use taskmanager_proto::pb::task_manager_client::TaskManagerClient;
use tonic::transport::Channel;
use tracing::Instrument;

pub use output::Output;
pub use reconnect::Reconnect;
pub use watch::watch;

/// Exit code: the task completed (or the command succeeded).
pub const EXIT_OK: u8 = 0;
/// Exit code: the task failed or was cancelled.
pub const EXIT_TASK_FAILED: u8 = 1;
/// Exit code: bad usage or configuration.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the server could not be reached or rejected the request.
pub const EXIT_RPC: u8 = 3;

/// A client error, with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    /// What went wrong.
    pub message: String,
    /// The process exit code.
    pub code: u8,
}

impl Failure {
    /// A failed RPC.
    pub fn rpc(what: &str, status: &tonic::Status) -> Self {
        Self {
            message: format!("{what}: {} ({:?})", status.message(), status.code()),
            code: EXIT_RPC,
        }
    }
}

/// Connects to `address` (`http://host:port`).
pub async fn connect(address: &str) -> Result<TaskManagerClient<Channel>, Failure> {
    Reconnect::new(address, Duration::ZERO)?.connect().await
}

/// Submits `request` in a new `submit` span, the root of the task's trace: the call carries
/// its trace context, so the server's spans and every attempt of the task join the trace.
/// Returns the answer and the span, to watch the task in.
pub async fn submit(
    client: &mut TaskManagerClient<Channel>,
    request: pb::TaskRequest,
) -> Result<(pb::TaskResponse, tracing::Span), tonic::Status> {
    let span = tracing::info_span!(
        parent: None,
        "submit",
        otel.kind = "client",
        task_id = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    let response = async {
        client
            .submit_task(taskmanager_telemetry::traced(request))
            .await
    }
    .instrument(span.clone())
    .await?
    .into_inner();
    span.record("task_id", response.task_id.as_str());
    if let Some(trace_id) = taskmanager_telemetry::trace_id(&span) {
        span.record("trace_id", trace_id.as_str());
    }
    Ok((response, span))
}

/// The exit code for a task's final status.
pub fn exit_code(last: &pb::StatusResponse) -> u8 {
    if last.state() == pb::TaskState::Completed {
        EXIT_OK
    } else {
        EXIT_TASK_FAILED
    }
}

/// Example tasks, as the original demo generated them.
pub fn example_task(rng: &mut impl rand::Rng) -> pb::TaskRequest {
    const WORDS: [&str; 8] = [
        "resize image",
        "send newsletter",
        "compute invoice",
        "index document",
        "transcode video",
        "sync inventory",
        "score model",
        "archive logs",
    ];
    pb::TaskRequest {
        task_description: WORDS[rng.random_range(0..WORDS.len())].to_owned(),
        priority: rng.random_range(0..3),
        number1: rng.random_range(1..=100),
        number2: rng.random_range(1..=100),
        ..Default::default()
    }
}
