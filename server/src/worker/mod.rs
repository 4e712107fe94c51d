//! Workers: claim a task, hold its lease while the handler runs, report the outcome.
//!
//! An idle worker waits for a wake-up from the hub, not on a timer: a task that becomes
//! runnable anywhere in the cluster wakes one idle worker per server, and a re-established
//! store subscription (the only way a wake-up can be lost) wakes them all.
//!
//! A claim whose answer is lost (a timeout, a dropped connection) may still have leased a
//! task in Redis. The worker chose the lease token itself, so it hands that task back by
//! token ([`Store::unclaim`]) before it claims again; the task keeps its place and its
//! attempt, instead of waiting for its lease to expire.
//!
//! One concept: the worker loop (claim, lease, run, report) and its backoff; the handlers
//! are `handler`.

pub mod handler;

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, warn};

use crate::hub::Hub;
use crate::metrics::{
    Metrics, Outcome, OutcomeLabels, Priority, PriorityLabels, exemplar, inc, seconds,
};
use crate::store::{Claim, Finish, Renewal, RetryPlan, Store, StoreError};
use handler::{HandlerError, Registry, TaskContext};

/// How workers behave.
#[derive(Clone, Debug)]
pub struct WorkerSettings {
    /// Workers in this process.
    pub concurrency: u32,
    /// Lease length.
    pub lease: Duration,
    /// Lease renewal period.
    pub renew_interval: Duration,
    /// Delay before the second attempt.
    pub backoff_initial: Duration,
    /// Longest delay between attempts.
    pub backoff_max: Duration,
    /// Growth of the delay per attempt.
    pub backoff_multiplier: f64,
    /// Random spread of the delay, as a fraction.
    pub jitter: f64,
}

impl WorkerSettings {
    /// The delay before the attempt after `attempt` (1-based), with jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let base = self.backoff_initial.as_secs_f64() * self.backoff_multiplier.powi(exponent);
        let capped = base.min(self.backoff_max.as_secs_f64());
        let spread = if self.jitter > 0.0 {
            rand::rng().random_range(-self.jitter..=self.jitter)
        } else {
            0.0
        };
        Duration::from_secs_f64((capped * (1.0 + spread)).max(0.0))
    }
}

/// Signals that stop the workers.
#[derive(Clone, Default)]
pub struct Stop {
    /// Stop claiming new tasks.
    pub claiming: CancellationToken,
    /// Stop running handlers now and hand their tasks back to the queue.
    pub running: CancellationToken,
}

/// Starts `settings.concurrency` workers; the set completes when they have all stopped.
pub fn spawn(
    store: Arc<dyn Store>,
    hub: Hub,
    registry: Arc<Registry>,
    settings: WorkerSettings,
    stop: Stop,
    metrics: Arc<Metrics>,
) -> JoinSet<()> {
    let mut workers = JoinSet::new();
    for index in 0..settings.concurrency {
        let worker = Worker {
            index,
            store: store.clone(),
            hub: hub.clone(),
            registry: registry.clone(),
            settings: settings.clone(),
            stop: stop.clone(),
            metrics: metrics.clone(),
        };
        workers.spawn(worker.run());
    }
    workers
}

struct Worker {
    index: u32,
    store: Arc<dyn Store>,
    hub: Hub,
    registry: Arc<Registry>,
    settings: WorkerSettings,
    stop: Stop,
    metrics: Arc<Metrics>,
}

/// How long an attempt's handler ran, and how long its task had existed when it was
/// claimed (both without the time spent reporting the outcome; the second in the store's
/// clock, like the task's timestamps).
struct Timing {
    ran: Duration,
    before_claim_ms: i64,
}

/// How a run ended, as the worker saw it.
enum Ending {
    Finished(Result<String, HandlerError>),
    LeaseLost,
    Cancelled,
    ShuttingDown,
}

impl Worker {
    async fn run(self) {
        let mut backoff = Duration::from_millis(50);
        // A task claimed together with the last one's completion.
        let mut next: Option<Claim> = None;
        while !self.stop.claiming.is_cancelled() {
            if let Some(claim) = next.take() {
                next = self.start(claim).await;
                continue;
            }
            let wake = self.hub.work_available();
            tokio::pin!(wake);
            wake.as_mut().enable();
            let token = crate::task::random_id();
            match self.store.claim(&token, self.settings.lease).await {
                Ok(Some(claim)) => {
                    backoff = Duration::from_millis(50);
                    next = self.start(claim).await;
                }
                Ok(None) => {
                    tokio::select! {
                        () = &mut wake => {}
                        () = self.stop.claiming.cancelled() => {}
                    }
                }
                Err(error) => {
                    debug!(%error, worker = self.index, "Cannot claim a task; retrying.");
                    self.unclaim(&token).await;
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = self.stop.claiming.cancelled() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
        if let Some(claim) = next {
            // Claimed with the last completion as the shutdown began: hand it back.
            let task_id = claim.task.id.clone();
            self.report(&task_id, || self.store.release(&task_id, &claim.token))
                .await;
        }
    }

    /// Runs one claimed task in its span, counting it as running meanwhile; the next task,
    /// when the store claimed one with this one's completion.
    async fn start(&self, claim: Claim) -> Option<Claim> {
        inc(&self.metrics.attempts);
        self.metrics
            .running
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let span = tracing::info_span!(
            "task",
            task_id = %claim.task.id,
            attempt = claim.task.attempt,
            kind = %claim.task.kind,
            trace_id = tracing::field::Empty
        );
        if let Some(parent) = &claim.task.trace_parent {
            crate::telemetry::set_parent(&span, parent);
        }
        // Log lines of the attempt carry the trace id, for Grafana's log-to-trace link.
        if let Some(trace_id) = crate::telemetry::trace_id(&span) {
            span.record("trace_id", trace_id.as_str());
        }
        if let Some(waited) = claim.waited {
            self.metrics
                .queue_wait
                .get_or_create(&PriorityLabels {
                    priority: Priority::of(claim.task.priority),
                })
                .observe(waited.as_secs_f64(), exemplar(&span), None);
        }
        let next = self.execute(claim).instrument(span).await;
        self.metrics
            .running
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        next
    }

    /// Hands back whatever a failed claim under `token` may have leased, trying until the
    /// store answers or the lease is over (after which the claim record has expired and the
    /// reaper takes the task back).
    async fn unclaim(&self, token: &str) {
        let deadline = tokio::time::Instant::now() + self.settings.lease * 4;
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.store.unclaim(token).await {
                Ok(true) => {
                    info!(
                        worker = self.index,
                        "A claim's answer was lost; handed its task back to the queue."
                    );
                    inc(&self.metrics.unclaimed);
                    return;
                }
                Ok(false) => return,
                Err(error) if tokio::time::Instant::now() + backoff < deadline => {
                    debug!(%error, worker = self.index, "Cannot check a lost claim yet; retrying.");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(250));
                }
                Err(error) => {
                    warn!(%error, "Gave up checking a lost claim; its lease will expire.");
                    return;
                }
            }
        }
    }

    async fn execute(&self, claim: Claim) -> Option<Claim> {
        let Claim { task, token, .. } = claim;
        let task_id = task.id.clone();
        let attempt = task.attempt;
        // Both in the store's clock: the claim set updated_ms.
        let before_claim_ms = task.updated_ms.saturating_sub(task.created_ms);
        let Some(handler) = self.registry.get(&task.kind) else {
            let error = format!("no handler for task kind {:?}", task.kind);
            self.fail_permanently(&task_id, &token, &error, None).await;
            return None;
        };
        debug!(task_id, attempt, worker = self.index, "Running task.");
        let cancel = CancellationToken::new();
        let _running = self.hub.running(&token, cancel.clone());
        let started = std::time::Instant::now();
        let context = TaskContext::new(task, self.store.clone(), token.clone(), cancel.clone());
        let run = handler.run(&context);
        tokio::pin!(run);
        let mut renew = tokio::time::interval(self.settings.renew_interval);
        renew.tick().await;
        // Why the handler was asked to stop, if it was.
        let mut stopping: Option<Ending> = None;
        let result = loop {
            tokio::select! {
                result = &mut run => break result,
                _ = renew.tick() => {
                    match self.store.renew(&task_id, &token, self.settings.lease).await {
                        Ok(Renewal::Renewed) => {}
                        Ok(Renewal::CancelRequested) => {
                            stopping.get_or_insert(Ending::Cancelled);
                            cancel.cancel();
                        }
                        Ok(Renewal::Lost) => {
                            stopping = Some(Ending::LeaseLost);
                            cancel.cancel();
                        }
                        Err(error) => warn!(%error, task_id, "Cannot renew the lease; will retry."),
                    }
                }
                () = cancel.cancelled(), if stopping.is_none() => {
                    // A cancellation notice from the hub.
                    stopping = Some(Ending::Cancelled);
                }
                () = self.stop.running.cancelled(), if stopping.is_none() => {
                    stopping = Some(Ending::ShuttingDown);
                    cancel.cancel();
                }
            }
        };
        let timing = Timing {
            ran: started.elapsed(),
            before_claim_ms,
        };
        let ending = match (stopping, result) {
            (Some(Ending::LeaseLost), _) => Ending::LeaseLost,
            (Some(reason), Err(HandlerError::Cancelled)) => reason,
            (_, result) => Ending::Finished(result),
        };
        match ending {
            Ending::LeaseLost => {
                self.observe_run(Outcome::stale, &timing);
                warn!(
                    task_id,
                    attempt, "Lease lost while running; the task was taken back."
                );
            }
            Ending::ShuttingDown => {
                info!(
                    task_id,
                    "Shutting down: handing the task back to the queue."
                );
                let done = self
                    .report(&task_id, || self.store.release(&task_id, &token))
                    .await;
                self.count(done, &self.metrics.released, Outcome::released, &timing);
            }
            Ending::Cancelled | Ending::Finished(Err(HandlerError::Cancelled)) => {
                let reason = "cancelled while running";
                let done = self
                    .report(&task_id, || {
                        self.store.finish_cancelled(&task_id, &token, reason)
                    })
                    .await;
                self.count(done, &self.metrics.cancelled, Outcome::cancelled, &timing);
            }
            Ending::Finished(Ok(result)) => {
                return self.complete(&task_id, &token, &result, &timing).await;
            }
            Ending::Finished(Err(HandlerError::Failed(error))) => {
                let plan = RetryPlan {
                    delay: self.settings.backoff(attempt),
                    permanent: false,
                };
                let done = self
                    .report(&task_id, || self.store.fail(&task_id, &token, &error, plan))
                    .await;
                self.count(done, &self.metrics.failed, Outcome::failed, &timing);
            }
            Ending::Finished(Err(HandlerError::Permanent(error))) => {
                self.fail_permanently(&task_id, &token, &error, Some(&timing))
                    .await;
            }
        }
        None
    }

    /// Records a completion and, while workers still claim, claims the next task in the
    /// same step. When that answer is lost, the completion is reported again as usual and
    /// whatever the lost claim may have leased is handed back.
    async fn complete(
        &self,
        task_id: &str,
        token: &str,
        result: &str,
        timing: &Timing,
    ) -> Option<Claim> {
        if !self.stop.claiming.is_cancelled() {
            let next_token = crate::task::random_id();
            let fused = self
                .store
                .complete_and_claim(task_id, token, result, &next_token, self.settings.lease)
                .await;
            match fused {
                Ok((finish, next)) => {
                    if finish == Finish::Stale {
                        warn!(
                            task_id,
                            "Outcome rejected: this worker no longer holds the lease."
                        );
                    }
                    self.count(
                        Some(finish),
                        &self.metrics.completed,
                        Outcome::completed,
                        timing,
                    );
                    return next;
                }
                Err(error) => {
                    debug!(%error, task_id, "Cannot record the outcome yet; retrying.");
                    let done = self
                        .report(task_id, || self.store.complete(task_id, token, result))
                        .await;
                    self.count(done, &self.metrics.completed, Outcome::completed, timing);
                    self.unclaim(&next_token).await;
                    return None;
                }
            }
        }
        let done = self
            .report(task_id, || self.store.complete(task_id, token, result))
            .await;
        self.count(done, &self.metrics.completed, Outcome::completed, timing);
        None
    }

    /// Fails the attempt for good: no further attempt, whatever is left. `timing` is the
    /// attempt's, when a handler ran.
    async fn fail_permanently(
        &self,
        task_id: &str,
        token: &str,
        error: &str,
        timing: Option<&Timing>,
    ) {
        let plan = RetryPlan {
            delay: Duration::ZERO,
            permanent: true,
        };
        let done = self
            .report(task_id, || self.store.fail(task_id, token, error, plan))
            .await;
        match timing {
            Some(timing) => self.count(done, &self.metrics.failed, Outcome::failed, timing),
            None => {
                self.tally(done, &self.metrics.failed, Outcome::failed);
            }
        }
    }

    /// Counts a recorded outcome (`Done` in `counter` as `outcome`, a retry, or a stale
    /// report) and observes the attempt's run time, and for an ending its time end to end.
    fn count(
        &self,
        finish: Option<Finish>,
        counter: &prometheus_client::metrics::counter::Counter,
        outcome: Outcome,
        timing: &Timing,
    ) {
        let Some(outcome) = self.tally(finish, counter, outcome) else {
            return;
        };
        self.observe_run(outcome, timing);
        if matches!(
            outcome,
            Outcome::completed | Outcome::failed | Outcome::cancelled
        ) {
            self.metrics
                .end_to_end
                .get_or_create(&OutcomeLabels { outcome })
                .observe(
                    seconds(timing.before_claim_ms) + timing.ran.as_secs_f64(),
                    exemplar(&tracing::Span::current()),
                    None,
                );
        }
    }

    /// Counts a recorded outcome: `Done` in `counter`, a retry, a cancellation or a stale
    /// report. Returns how the attempt ended, when the store was told.
    fn tally(
        &self,
        finish: Option<Finish>,
        counter: &prometheus_client::metrics::counter::Counter,
        outcome: Outcome,
    ) -> Option<Outcome> {
        match finish {
            Some(Finish::Done) => {
                inc(counter);
                Some(outcome)
            }
            Some(Finish::Retrying) => {
                inc(&self.metrics.retried);
                Some(Outcome::retried)
            }
            Some(Finish::Cancelled) => {
                inc(&self.metrics.cancelled);
                Some(Outcome::cancelled)
            }
            Some(Finish::Stale) => {
                inc(&self.metrics.stale);
                Some(Outcome::stale)
            }
            None => None,
        }
    }

    /// Observes how long the attempt ran.
    fn observe_run(&self, outcome: Outcome, timing: &Timing) {
        self.metrics
            .run_time
            .get_or_create(&OutcomeLabels { outcome })
            .observe(
                timing.ran.as_secs_f64(),
                exemplar(&tracing::Span::current()),
                None,
            );
    }

    /// Reports an outcome, retrying while the store does not answer: the report is guarded
    /// by the lease token, so a late one is rejected (`Stale`) if the task was taken back
    /// meanwhile, and giving up early would make the task run again. Only a shutdown past
    /// its grace period gives up (the lease then expires and the task is retried). Returns
    /// what the store did, or `None` when it could not be told.
    async fn report<F, Fut>(&self, task_id: &str, mut call: F) -> Option<Finish>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Finish, StoreError>>,
    {
        let mut backoff = Duration::from_millis(50);
        loop {
            match call().await {
                Ok(Finish::Stale) => {
                    warn!(
                        task_id,
                        "Outcome rejected: this worker no longer holds the lease."
                    );
                    return Some(Finish::Stale);
                }
                Ok(finish) => return Some(finish),
                Err(error) => {
                    debug!(%error, task_id, "Cannot record the outcome yet; retrying.");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = self.stop.running.cancelled() => {
                            warn!(%error, task_id, "Shutting down without recording the \
                                  outcome; the lease will expire and the task will be retried.");
                            return None;
                        }
                    }
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(jitter: f64) -> WorkerSettings {
        WorkerSettings {
            concurrency: 1,
            lease: Duration::from_secs(30),
            renew_interval: Duration::from_secs(10),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(10),
            backoff_multiplier: 2.0,
            jitter,
        }
    }

    #[test]
    fn backoff_grows_exponentially_up_to_the_cap() {
        let settings = settings(0.0);
        let delays: Vec<u64> = (1..=6).map(|a| settings.backoff(a).as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let settings = settings(0.2);
        for _ in 0..1000 {
            let delay = settings.backoff(3).as_secs_f64();
            assert!((3.2..=4.8).contains(&delay), "{delay}");
        }
    }
}
