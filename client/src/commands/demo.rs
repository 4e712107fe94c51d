//! `demo`: the original demo, random tasks at a steady rate, each one's status streamed.

use std::time::Duration;

use tracing::Instrument;

use super::Session;
use crate::{EXIT_OK, EXIT_USAGE, Failure, example_task, submit, watch};

/// The arguments of `demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Stop after this many tasks (default: run until interrupted).
    #[arg(long)]
    count: Option<u64>,
    /// Tasks per second (default: client.rate).
    #[arg(long)]
    rate: Option<f64>,
}

/// Submits a random task every `1 / rate` seconds until `count` or Ctrl-C, and streams
/// each one; returns when every stream has ended.
pub(crate) async fn run(session: Session, args: DemoArgs) -> Result<u8, Failure> {
    let rate = args.rate.unwrap_or(session.stack.client.rate);
    if !(rate > 0.0 && rate.is_finite()) {
        return Err(Failure {
            message: format!("--rate must be positive, got {rate}"),
            code: EXIT_USAGE,
        });
    }
    let Session {
        client,
        reconnect,
        output,
        ..
    } = session;
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    let mut watchers = tokio::task::JoinSet::new();
    let mut submitted = 0u64;
    let mut rng = rand::rng();
    loop {
        if args.count.is_some_and(|count| submitted >= count) {
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
