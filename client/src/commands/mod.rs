//! The client's commands: each one a file, run by [`run`] once the settings are loaded,
//! telemetry is set up and the server is connected.

mod demo;
mod load;
mod submit;
mod task;

use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use stack_config::cli::StackArgs;
use stack_config::model::{LogFormat, LogLevel};
use stack_config::{Component, Loaded, Stack, Topology};
use taskmanager_proto::pb;
use taskmanager_proto::pb::task_manager_client::TaskManagerClient;
use taskmanager_telemetry::TraceSettings;
use tonic::transport::Channel;

use crate::reconnect::{DEFAULT_RECONNECT_FOR, parse_reconnect_for};
use crate::{EXIT_USAGE, Failure, Output, Reconnect};

/// The TaskManager client. Settings (server address, demo rate, load size) come from
/// stack.yaml like the server's.
#[derive(Debug, Parser)]
#[command(name = "taskmanager-client", version, about)]
pub struct Args {
    #[command(flatten)]
    stack: StackArgs,
    /// Server address (`http://host:port`); overrides `client.address`.
    #[arg(long, global = true)]
    address: Option<String>,
    /// Print JSON (one object per status, or one report) instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// When a status stream breaks (the server restarts, the connection drops), reconnect
    /// and resume it for up to this long without a new status (`30s`, `2m`; `0`: never).
    #[arg(
        long,
        global = true,
        value_name = "DURATION",
        default_value = DEFAULT_RECONNECT_FOR,
        value_parser = parse_reconnect_for
    )]
    reconnect_for: Duration,
    #[command(subcommand)]
    command: Command,
}

/// A command and its arguments.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Submit one task, then stream its status until it ends.
    Submit(submit::SubmitArgs),
    /// Stream the status of an existing task until it ends.
    Watch {
        /// The task id.
        id: String,
    },
    /// Print a snapshot of a task.
    Get {
        /// The task id.
        id: String,
    },
    /// Cancel a task.
    Cancel {
        /// The task id.
        id: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Submit random example tasks at `client.rate` per second, streaming each one.
    Demo(demo::DemoArgs),
    /// Submit N tasks at concurrency C and report throughput and latency percentiles.
    Load(load::LoadArgs),
}

/// A task priority on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Priority {
    /// LOW.
    Low,
    /// MEDIUM.
    Medium,
    /// HIGH.
    High,
}

impl From<Priority> for pb::TaskPriority {
    fn from(priority: Priority) -> Self {
        match priority {
            Priority::Low => Self::Low,
            Priority::Medium => Self::Medium,
            Priority::High => Self::High,
        }
    }
}

/// What every command works with.
pub(crate) struct Session {
    stack: Stack,
    client: TaskManagerClient<Channel>,
    reconnect: Reconnect,
    output: Output,
    json: bool,
}

/// Loads the settings, sets up telemetry (spans go where the server's go, as service
/// taskmanager-client; the client's own log lines are warnings on stderr), connects, runs
/// the command and flushes the spans. Returns the exit code.
pub async fn run(args: Args) -> Result<u8, Failure> {
    let Loaded {
        stack, topology, ..
    } = args.stack.loader().load().map_err(|report| Failure {
        message: format!("invalid settings\n{report}"),
        code: EXIT_USAGE,
    })?;
    let telemetry = taskmanager_telemetry::init(
        taskmanager_telemetry::CLIENT_SERVICE,
        LogLevel::Warn,
        LogFormat::Text,
        TraceSettings::new(&stack, &topology, Component::Client).as_ref(),
    )
    .map_err(|error| Failure {
        message: format!("cannot set up tracing: {error}"),
        code: EXIT_USAGE,
    })?;
    let result = dispatch(args, stack, &topology).await;
    telemetry.shutdown();
    result
}

async fn dispatch(args: Args, stack: Stack, topology: &Topology) -> Result<u8, Failure> {
    // `client.address`, or the server's Service: the topology's endpoint holds either.
    let address = args.address.clone().unwrap_or_else(|| {
        topology
            .endpoint(Component::Client, Component::Server)
            .map(|endpoint| endpoint.url.clone())
            .expect("the client always has an endpoint to the server (a bug)")
    });
    let reconnect = Reconnect::new(&address, args.reconnect_for)?;
    let client = reconnect.connect().await?;
    let session = Session {
        stack,
        client,
        reconnect,
        output: Output::stdout(args.json),
        json: args.json,
    };
    match args.command {
        Command::Submit(submit) => submit::run(session, submit).await,
        Command::Watch { id } => submit::watch_task(session, &id).await,
        Command::Get { id } => task::get(session, id).await,
        Command::Cancel { id, reason } => task::cancel(session, id, reason).await,
        Command::Demo(demo) => demo::run(session, demo).await,
        Command::Load(load) => load::run(session, load).await,
    }
}
