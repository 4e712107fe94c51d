//! Load generation: N tasks at concurrency C, with throughput and latency percentiles.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use taskmanager_proto::pb;
use taskmanager_proto::pb::task_manager_client::TaskManagerClient;
use tonic::transport::Channel;

use crate::output::{Output, Style};
use crate::reconnect::Reconnect;
use tracing::Instrument;

/// A load run's settings.
#[derive(Clone, Debug)]
pub struct LoadPlan {
    /// Tasks to submit.
    pub tasks: u64,
    /// Tasks in flight at once.
    pub concurrency: u32,
    /// Wait for each task to finish (end-to-end latency), or only submit.
    pub wait: bool,
    /// Watch each task in the background and submit the next at once, instead of waiting
    /// for it before the next submission: producers never wait for the work, as with a
    /// queue whose producers and workers are separate processes.
    pub detach: bool,
    /// Submissions per second over all producers, or as fast as they go.
    pub rate: Option<f64>,
    /// Every task at this priority, or a random mix of the three.
    pub priority: Option<pb::TaskPriority>,
}

/// Latency percentiles, in milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

impl Percentiles {
    /// Percentiles of `samples` (nearest rank).
    pub fn of(samples: &mut [Duration]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let rank = (q * samples.len() as f64).ceil() as usize;
            samples[rank.clamp(1, samples.len()) - 1].as_secs_f64() * 1000.0
        };
        Some(Self {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: at(1.0),
        })
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({ "p50": self.p50, "p90": self.p90, "p99": self.p99, "max": self.max })
    }
}

/// What a load run measured.
#[derive(Clone, Debug)]
pub struct LoadReport {
    /// The plan.
    pub plan: LoadPlan,
    /// Tasks accepted.
    pub submitted: u64,
    /// Submissions rejected.
    pub rejected: u64,
    /// Tasks that completed.
    pub completed: u64,
    /// Tasks that failed or were cancelled.
    pub failed: u64,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// Submit call latency.
    pub submit_latency: Option<Percentiles>,
    /// Submission to terminal status latency (when waiting).
    pub end_to_end_latency: Option<Percentiles>,
}

impl LoadReport {
    /// Finished tasks per second (submitted tasks per second without waiting).
    pub fn throughput(&self) -> f64 {
        let done = if self.plan.wait {
            self.completed + self.failed
        } else {
            self.submitted
        };
        done as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// The report as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "tasks": self.plan.tasks,
            "concurrency": self.plan.concurrency,
            "wait": self.plan.wait,
            "detach": self.plan.detach,
            "rate": self.plan.rate,
            "submitted": self.submitted,
            "rejected": self.rejected,
            "completed": self.completed,
            "failed": self.failed,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "throughput_per_s": self.throughput(),
            "submit_latency_ms": self.submit_latency.as_ref().map(Percentiles::json),
            "end_to_end_latency_ms": self.end_to_end_latency.as_ref().map(Percentiles::json),
        })
    }

    /// The report for people.
    pub fn text(&self) -> String {
        let mut text = format!(
            "load: {} tasks, concurrency {}{}, {}\n",
            self.plan.tasks,
            self.plan.concurrency,
            self.plan
                .rate
                .map(|rate| format!(", {rate} tasks/s offered"))
                .unwrap_or_default(),
            match (self.plan.wait, self.plan.detach) {
                (false, _) => "submit only",
                (true, false) => "waiting for each task to finish",
                (true, true) => "every task watched to its end in the background",
            }
        );
        text.push_str(&format!(
            "accepted {} (rejected {}), completed {}, failed {}, in {:.2}s: {:.1} tasks/s\n",
            self.submitted,
            self.rejected,
            self.completed,
            self.failed,
            self.elapsed.as_secs_f64(),
            self.throughput()
        ));
        let line = |name: &str, p: &Option<Percentiles>| match p {
            Some(p) => format!(
                "{name} latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}\n",
                p.p50, p.p90, p.p99, p.max
            ),
            None => String::new(),
        };
        text.push_str(&line("submit", &self.submit_latency));
        text.push_str(&line("end-to-end", &self.end_to_end_latency));
        text
    }
}

/// Live counts of a load run, for a terminal: tasks accepted, and tasks finished.
#[derive(Clone)]
pub struct LoadProgress {
    /// Counts accepted submissions.
    pub submitted: indicatif::ProgressBar,
    /// Counts tasks that reached their end (when the run waits for them).
    pub finished: indicatif::ProgressBar,
}

impl LoadProgress {
    /// Two bars on stdout, for `tasks` tasks.
    pub fn new(tasks: u64, wait: bool) -> Self {
        let bars =
            indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::stdout());
        let style =
            indicatif::ProgressStyle::with_template("{prefix:>9} [{bar:30}] {pos}/{len} {per_sec}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("#>.");
        let bar = |name: &str| {
            let bar = bars.add(indicatif::ProgressBar::new(tasks).with_style(style.clone()));
            bar.set_prefix(name.to_owned());
            bar
        };
        let submitted = bar("submitted");
        let finished = if wait {
            bar("finished")
        } else {
            indicatif::ProgressBar::hidden()
        };
        Self {
            submitted,
            finished,
        }
    }

    /// Leaves both bars drawn as they ended.
    pub fn finish(&self) {
        self.submitted.abandon();
        self.finished.abandon();
    }
}

/// Runs `plan` against the server behind `client`; status streams that break are resumed as
/// `reconnect` says. `progress`, when given, counts submissions and endings as they happen.
pub async fn run(
    client: TaskManagerClient<Channel>,
    reconnect: &Reconnect,
    plan: LoadPlan,
    progress: Option<LoadProgress>,
) -> LoadReport {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..plan.concurrency.max(1) {
        let mut client = client.clone();
        let reconnect = reconnect.clone();
        let next = next.clone();
        let plan = plan.clone();
        let progress = progress.clone();
        workers.spawn(async move {
            let mut tally = Tally::default();
            let mut watches = tokio::task::JoinSet::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= plan.tasks {
                    break;
                }
                if let Some(rate) = plan.rate {
                    let due = started + Duration::from_secs_f64(n as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let mut request = crate::example_task(&mut rand::rng());
                if let Some(priority) = plan.priority {
                    request.set_priority(priority);
                }
                let begun = Instant::now();
                let (id, span) = match crate::submit(&mut client, request).await {
                    Ok((response, span)) => (response.task_id, span),
                    Err(_) => {
                        tally.rejected += 1;
                        continue;
                    }
                };
                tally.submit.push(begun.elapsed());
                if let Some(progress) = &progress {
                    progress.submitted.inc(1);
                }
                if !plan.wait {
                    continue;
                }
                let watched = watch_one(client.clone(), reconnect.clone(), id, span, begun);
                if plan.detach {
                    watches.spawn(watched);
                } else {
                    tally.add(watched.await, progress.as_ref());
                }
            }
            while let Some(watched) = watches.join_next().await {
                match watched {
                    Ok(watched) => tally.add(watched, progress.as_ref()),
                    Err(_) => tally.failed += 1,
                }
            }
            tally
        });
    }
    let mut total = Tally::default();
    while let Some(Ok(tally)) = workers.join_next().await {
        total.submit.extend(tally.submit);
        total.end_to_end.extend(tally.end_to_end);
        total.rejected += tally.rejected;
        total.completed += tally.completed;
        total.failed += tally.failed;
    }
    let elapsed = started.elapsed();
    LoadReport {
        submitted: total.submit.len() as u64,
        rejected: total.rejected,
        completed: total.completed,
        failed: total.failed,
        elapsed,
        submit_latency: Percentiles::of(&mut total.submit),
        end_to_end_latency: Percentiles::of(&mut total.end_to_end),
        plan,
    }
}

/// Streams `id` until it ends: whether it completed, and how long since `begun`.
async fn watch_one(
    client: TaskManagerClient<Channel>,
    reconnect: Reconnect,
    id: String,
    span: tracing::Span,
    begun: Instant,
) -> (bool, Duration) {
    let mut quiet = Output::new(Style::Quiet);
    let completed = matches!(
        crate::watch(&client, &reconnect, &id, &mut quiet).instrument(span).await,
        Ok(last) if last.state() == pb::TaskState::Completed
    );
    (completed, begun.elapsed())
}

impl Tally {
    fn add(&mut self, (completed, took): (bool, Duration), progress: Option<&LoadProgress>) {
        if completed {
            self.completed += 1;
        } else {
            self.failed += 1;
        }
        self.end_to_end.push(took);
        if let Some(progress) = progress {
            progress.finished.inc(1);
        }
    }
}

#[derive(Default)]
struct Tally {
    submit: Vec<Duration>,
    end_to_end: Vec<Duration>,
    rejected: u64,
    completed: u64,
    failed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let p = Percentiles::of(&mut samples).expect("samples");
        assert_eq!((p.p50, p.p90, p.p99, p.max), (50.0, 90.0, 99.0, 100.0));
        assert!(Percentiles::of(&mut []).is_none());
        let mut one = vec![Duration::from_millis(7)];
        assert_eq!(Percentiles::of(&mut one).map(|p| p.p50), Some(7.0));
    }
}
