//! `submit` and `watch`: one task, streamed live until it ends.

use taskmanager_proto::pb;
use tracing::Instrument;

use super::{Priority, Session};
use crate::{EXIT_OK, Failure, exit_code, submit, watch};

/// The arguments of `submit`.
#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
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
}

/// Submits the task and streams it, in the task's trace.
pub(crate) async fn run(mut session: Session, args: SubmitArgs) -> Result<u8, Failure> {
    let request = pb::TaskRequest {
        task_description: args.description,
        priority: pb::TaskPriority::from(args.priority).into(),
        number1: args.number1,
        number2: args.number2,
        idempotency_key: args.idempotency_key.unwrap_or_default(),
        kind: args.kind,
        payload: Vec::new(),
        max_attempts: args.max_attempts,
        delay_ms: args.delay_ms,
    };
    let (response, span) = submit(&mut session.client, request)
        .await
        .map_err(|status| Failure::rpc("the task was not accepted", &status))?;
    if args.no_watch {
        if session.json {
            println!(
                "{}",
                serde_json::json!({ "task_id": response.task_id, "deduplicated": response.deduplicated })
            );
        } else {
            println!("{}", response.task_id);
        }
        return Ok(EXIT_OK);
    }
    if !session.json {
        eprintln!("accepted {}", response.task_id);
    }
    let last = watch(
        &session.client,
        &session.reconnect,
        &response.task_id,
        &mut session.output,
    )
    .instrument(span)
    .await?;
    Ok(exit_code(&last))
}

/// Streams an existing task until it ends.
pub(crate) async fn watch_task(mut session: Session, id: &str) -> Result<u8, Failure> {
    let last = watch(&session.client, &session.reconnect, id, &mut session.output).await?;
    Ok(exit_code(&last))
}
