//! The TaskManager client: submit a task and watch it live, watch an existing task, run the
//! original demo (random tasks at a steady rate, each streamed), or generate load and report
//! throughput and latency percentiles.

pub mod load;
pub mod output;

use std::time::Duration;

use taskmanager_proto::pb;
use taskmanager_proto::pb::task_manager_client::TaskManagerClient;
use tonic::transport::Channel;

pub use output::Output;

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
    let endpoint = Channel::from_shared(address.to_owned()).map_err(|error| Failure {
        message: format!("invalid server address {address:?}: {error}"),
        code: EXIT_USAGE,
    })?;
    let channel = endpoint
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|error| Failure {
            message: format!("cannot connect to {address}: {error}"),
            code: EXIT_RPC,
        })?;
    Ok(TaskManagerClient::new(channel))
}

/// Streams the status of `task_id` to `output` until it ends; returns the last status.
pub async fn watch(
    client: &mut TaskManagerClient<Channel>,
    task_id: &str,
    output: &mut Output,
) -> Result<pb::StatusResponse, Failure> {
    let mut stream = client
        .stream_task_status(pb::StatusRequest {
            task_id: task_id.to_owned(),
        })
        .await
        .map_err(|status| Failure::rpc("cannot stream the task's status", &status))?
        .into_inner();
    let mut last = None;
    loop {
        match stream.message().await {
            Ok(Some(status)) => {
                output.status(&status);
                last = Some(status);
            }
            Ok(None) => break,
            Err(status) => {
                output.finish();
                return Err(Failure::rpc("the status stream failed", &status));
            }
        }
    }
    output.finish();
    last.ok_or_else(|| Failure {
        message: format!("the stream of {task_id} ended without a status"),
        code: EXIT_RPC,
    })
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
