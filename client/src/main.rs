//! `taskmanager-client`: submit tasks and watch them live, run the demo, generate load.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use stack_config::cli::StackArgs;
use stack_config::model::{LogFormat, LogLevel};
use taskmanager_client::load::{LoadPlan, run as run_load};
use taskmanager_client::reconnect::{DEFAULT_RECONNECT_FOR, parse_reconnect_for};
use taskmanager_client::{
    EXIT_OK, EXIT_RPC, EXIT_USAGE, Failure, Output, Reconnect, example_task, exit_code, submit,
    watch,
};
use taskmanager_proto::pb;
use taskmanager_telemetry::TraceSettings;
use tracing::Instrument;

/// The TaskManager client. Settings (server address, demo rate, load size) come from
/// stack.yaml like the server's.
#[derive(Debug, Parser)]
#[command(name = "taskmanager-client", version, about)]
struct Args {
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

#[derive(Debug, Subcommand)]
enum Command {
    /// Submit one task, then stream its status until it ends.
    Submit {
        /// What the task is.
        #[arg(long, short = 'd', default_value = "add two numbers")]
        description: String,
        /// Queue priority.
        #[arg(long, short = 'p', value_enum, default_value_t = Priority::Medium)]
        priority: Priority,
        /// First operand.
        #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
        number1: i32,
        /// Second operand.
        #[arg(long, default_value_t = 2, allow_negative_numbers = true)]
        number2: i32,
        /// Handler to run (empty: the default handler).
        #[arg(long, default_value = "")]
        kind: String,
        /// Submitting again with the same key returns the same task.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Attempts in all (0: the server's setting).
        #[arg(long, default_value_t = 0)]
        max_attempts: u32,
        /// Delay before the task may start, in milliseconds.
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
        /// Print the task id and exit instead of streaming.
        #[arg(long)]
        no_watch: bool,
    },
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
    Demo {
        /// Stop after this many tasks (default: run until interrupted).
        #[arg(long)]
        count: Option<u64>,
        /// Tasks per second (default: client.rate).
        #[arg(long)]
        rate: Option<f64>,
    },
    /// Submit N tasks at concurrency C and report throughput and latency percentiles.
    Load {
        /// Tasks to submit (default: client.load.tasks).
        #[arg(long, short = 'n')]
        tasks: Option<u64>,
        /// Tasks in flight at once (default: client.load.concurrency).
        #[arg(long, short = 'C')]
        concurrency: Option<u32>,
        /// Only submit; do not wait for the tasks to finish.
        #[arg(long)]
        no_wait: bool,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Priority {
    Low,
    Medium,
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

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match runtime.block_on(real_main(args)) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

async fn real_main(args: Args) -> Result<u8, Failure> {
    let stack = load(&args)?;
    // Spans go where the server's go (observability.tracing), as service taskmanager-client;
    // the client's own log lines are warnings on stderr.
    let telemetry = taskmanager_telemetry::init(
        taskmanager_telemetry::CLIENT_SERVICE,
        LogLevel::Warn,
        LogFormat::Text,
        TraceSettings::from_stack(&stack).as_ref(),
    )
    .map_err(|error| Failure {
        message: format!("cannot set up tracing: {error}"),
        code: EXIT_USAGE,
    })?;
    let result = run(args, stack).await;
    telemetry.shutdown();
    result
}

fn load(args: &Args) -> Result<stack_config::Stack, Failure> {
    Ok(args
        .stack
        .loader()
        .load()
        .map_err(|report| Failure {
            message: format!("invalid settings\n{report}"),
            code: EXIT_USAGE,
        })?
        .stack)
}

async fn run(args: Args, stack: stack_config::Stack) -> Result<u8, Failure> {
    let address = args
        .address
        .clone()
        .or_else(|| stack.client.address.clone())
        .unwrap_or_else(|| {
            format!(
                "http://{}.{}.svc:{}",
                stack.object_name("server"),
                stack.namespace,
                stack.server.port
            )
        });
    let reconnect = Reconnect::new(&address, args.reconnect_for)?;
    let mut client = reconnect.connect().await?;
    let mut output = Output::stdout(args.json);
    match args.command {
        Command::Submit {
            description,
            priority,
            number1,
            number2,
            kind,
            idempotency_key,
            max_attempts,
            delay_ms,
            no_watch,
        } => {
            let request = pb::TaskRequest {
                task_description: description,
                priority: pb::TaskPriority::from(priority).into(),
                number1,
                number2,
                idempotency_key: idempotency_key.unwrap_or_default(),
                kind,
                payload: Vec::new(),
                max_attempts,
                delay_ms,
            };
            let (response, span) = submit(&mut client, request)
                .await
                .map_err(|status| Failure::rpc("the task was not accepted", &status))?;
            if no_watch {
                if args.json {
                    println!(
                        "{}",
                        serde_json::json!({ "task_id": response.task_id, "deduplicated": response.deduplicated })
                    );
                } else {
                    println!("{}", response.task_id);
                }
                return Ok(EXIT_OK);
            }
            if !args.json {
                eprintln!("accepted {}", response.task_id);
            }
            let last = watch(&client, &reconnect, &response.task_id, &mut output)
                .instrument(span)
                .await?;
            Ok(exit_code(&last))
        }
        Command::Watch { id } => {
            let last = watch(&client, &reconnect, &id, &mut output).await?;
            Ok(exit_code(&last))
        }
        Command::Get { id } => {
            let task = client
                .get_task(pb::GetTaskRequest { task_id: id })
                .await
                .map_err(|status| Failure::rpc("cannot get the task", &status))?
                .into_inner();
            let json = serde_json::json!({
                "task_id": task.task_id,
                "task_description": task.task_description,
                "priority": task.priority().as_str_name(),
                "number1": task.number1,
                "number2": task.number2,
                "kind": task.kind,
                "status": task.status,
                "sequence": task.sequence,
                "progress": task.progress,
                "attempt": task.attempt,
                "max_attempts": task.max_attempts,
                "result": task.result,
                "error": task.error,
                "created_at_unix_ms": task.created_at_unix_ms,
                "updated_at_unix_ms": task.updated_at_unix_ms,
            });
            if args.json {
                println!("{json}");
            } else {
                print!("{}", stack_config::to_yaml(&json));
            }
            Ok(EXIT_OK)
        }
        Command::Cancel { id, reason } => {
            let response = client
                .cancel_task(pb::CancelTaskRequest {
                    task_id: id,
                    reason,
                })
                .await
                .map_err(|status| Failure::rpc("cannot cancel the task", &status))?
                .into_inner();
            let state = response
                .state()
                .as_str_name()
                .trim_start_matches("TASK_STATE_")
                .to_owned();
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({ "cancelled": response.cancelled, "state": state })
                );
            } else if response.cancelled {
                println!("cancelled (now {state})");
            } else {
                println!("not cancelled: the task already ended {state}");
            }
            Ok(EXIT_OK)
        }
        Command::Demo { count, rate } => {
            let rate = rate.unwrap_or(stack.client.rate);
            if !(rate > 0.0 && rate.is_finite()) {
                return Err(Failure {
                    message: format!("--rate must be positive, got {rate}"),
                    code: EXIT_USAGE,
                });
            }
            demo(client, &reconnect, output, count, rate).await
        }
        Command::Load {
            tasks,
            concurrency,
            no_wait,
        } => {
            let plan = LoadPlan {
                tasks: tasks.unwrap_or(stack.client.load.tasks),
                concurrency: concurrency.unwrap_or(stack.client.load.concurrency),
                wait: !no_wait,
            };
            let report = run_load(client, &reconnect, plan).await;
            if args.json {
                println!("{}", report.json());
            } else {
                print!("{}", report.text());
            }
            Ok(if report.rejected == 0 {
                EXIT_OK
            } else {
                EXIT_RPC
            })
        }
    }
}

/// The original demo: random tasks at a steady rate, each one's status streamed.
async fn demo(
    client: pb::task_manager_client::TaskManagerClient<tonic::transport::Channel>,
    reconnect: &Reconnect,
    output: Output,
    count: Option<u64>,
    rate: f64,
) -> Result<u8, Failure> {
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    let mut watchers = tokio::task::JoinSet::new();
    let mut submitted = 0u64;
    let mut rng = rand::rng();
    loop {
        if count.is_some_and(|count| submitted >= count) {
            break;
        }
        tokio::select! {
            _ = ticks.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        let request = example_task(&mut rng);
        let mut submitter = client.clone();
        let (accepted, span) = match submit(&mut submitter, request).await {
            Ok((response, span)) => (response.task_id, span),
            Err(status) => {
                eprintln!(
                    "error: {}",
                    Failure::rpc("a demo task was not accepted", &status).message
                );
                continue;
            }
        };
        submitted += 1;
        let mut task_output = output.for_task("");
        let reconnect = reconnect.clone();
        watchers.spawn(
            async move {
                let _ = watch(&submitter, &reconnect, &accepted, &mut task_output).await;
            }
            .instrument(span),
        );
    }
    while watchers.join_next().await.is_some() {}
    Ok(EXIT_OK)
}
