//! `load`: N tasks at concurrency C, then throughput and latency percentiles.

use super::Session;
use crate::load::{LoadPlan, LoadProgress, run as run_load};
use crate::output::Style;
use crate::{EXIT_OK, EXIT_RPC, Failure};

/// The arguments of `load`.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Tasks to submit (default: client.load.tasks).
    #[arg(long, short = 'n')]
    tasks: Option<u64>,
    /// Tasks in flight at once (default: client.load.concurrency).
    #[arg(long, short = 'C')]
    concurrency: Option<u32>,
    /// Only submit; do not wait for the tasks to finish.
    #[arg(long)]
    no_wait: bool,
    /// Watch every task to its end in the background and submit the next at once, instead
    /// of waiting for each task before the next submission.
    #[arg(long, conflicts_with = "no_wait")]
    detach: bool,
    /// Submit at this many tasks per second in all (default: as fast as possible).
    #[arg(long, value_parser = positive_rate)]
    rate: Option<f64>,
    /// Give every task this priority (default: a random mix of low, medium and high).
    #[arg(long, value_enum)]
    priority: Option<Priority>,
}

/// A task priority on the command line.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Priority {
    Low,
    Medium,
    High,
}

impl From<Priority> for taskmanager_proto::pb::TaskPriority {
    fn from(priority: Priority) -> Self {
        match priority {
            Priority::Low => Self::Low,
            Priority::Medium => Self::Medium,
            Priority::High => Self::High,
        }
    }
}

fn positive_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate > 0.0 && rate.is_finite() => Ok(rate),
        _ => Err(format!(
            "expected a positive number of tasks per second, got {text:?}"
        )),
    }
}

/// Runs the load and prints the report; exit 3 when any submission was rejected.
pub(crate) async fn run(session: Session, args: LoadArgs) -> Result<u8, Failure> {
    let plan = LoadPlan {
        tasks: args.tasks.unwrap_or(session.stack.client.load.tasks.get()),
        concurrency: args
            .concurrency
            .unwrap_or(session.stack.client.load.concurrency.get()),
        wait: !args.no_wait,
        detach: args.detach,
        rate: args.rate,
        priority: args.priority.map(Into::into),
    };
    // Live counts on a terminal; the report alone otherwise.
    let progress =
        (session.output.style() == Style::Bar).then(|| LoadProgress::new(plan.tasks, plan.wait));
    let report = run_load(session.client, &session.reconnect, plan, progress.clone()).await;
    if let Some(progress) = progress {
        progress.finish();
    }
    if session.json {
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
