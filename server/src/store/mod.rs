//! Where tasks live. [`RedisStore`] is the system of record; [`MemoryStore`] implements the
//! same interface in-process for zero-setup local runs. One conformance suite
//! (`tests/conformance.rs`) runs against both.
//!
//! Every method that changes a task is one atomic step, so a task is always in exactly one
//! place: pending, delayed, leased, or terminal.

mod memory;
mod redis;

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;

pub use self::memory::MemoryStore;
pub use self::redis::{ClusterOptions, RedisOptions, RedisStore, WaitOptions};
use crate::task::{NewTask, Notice, Submitted, TaskEvent, TaskRecord, TaskState};

/// Why a store operation failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The backing store cannot be reached (or did not answer in time). Retry later.
    #[error("the task store is unavailable: {0}")]
    Unavailable(String),
    /// The store is full: Redis is out of memory, or the cap on waiting tasks is reached.
    /// Nothing was written; retry once tasks have drained.
    #[error("the task store is full: {0}")]
    Full(String),
    /// The store answered something this version does not understand: a bug.
    #[error("the task store answered unexpectedly: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// The answer to a submission that would take the tasks waiting to run past the cap.
    fn queue_full(waiting: impl std::fmt::Display, cap: u64) -> Self {
        Self::Full(format!(
            "{waiting} tasks are waiting to run; the cap is {cap} \
             (server.limits.max_queued_tasks)"
        ))
    }
}

/// Store results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A task leased to a worker.
#[derive(Clone, Debug, PartialEq)]
pub struct Claim {
    /// The task, as it is now (state `IN_PROGRESS`, attempt counted).
    pub task: TaskRecord,
    /// Proof of the lease: only this token can renew it or finish the attempt.
    pub token: String,
    /// How long the task waited runnable (queued, or handed back) before this claim, in the
    /// store's clock; unknown for a task queued by a version that did not record it.
    pub waited: Option<Duration>,
}

/// What renewing a lease found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// Renewed.
    Renewed,
    /// Renewed, and the task's cancellation was requested: stop the handler.
    CancelRequested,
    /// The lease is gone (it expired and the task was taken back): stop, and report nothing.
    Lost,
}

/// What finishing an attempt did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// Recorded; the task is terminal (or, after `release`, back in the queue).
    Done,
    /// The attempt failed and the task will be retried.
    Retrying,
    /// The attempt failed after a cancellation was requested: the task ended CANCELLED.
    Cancelled,
    /// The token no longer holds the lease: the report was rejected.
    Stale,
}

/// What a cancellation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The task was waiting and is now cancelled.
    Cancelled,
    /// The task is running; its worker was told to stop.
    Requested,
    /// The task had already ended in this state.
    AlreadyFinished(TaskState),
    /// No such task.
    NotFound,
}

/// When a failed attempt is tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPlan {
    /// Delay before the next attempt, when there is one.
    pub delay: Duration,
    /// The failure is permanent: no further attempt, whatever is left.
    pub permanent: bool,
}

/// What promoting delayed tasks did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Promotion {
    /// Tasks moved to the queue.
    pub moved: usize,
    /// Time until the next delayed task is due, if any is waiting.
    pub next_due: Option<Duration>,
}

/// How many tasks are where, in the whole store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Depths {
    /// Waiting to run, by priority: LOW, MEDIUM, HIGH.
    pub pending: [u64; 3],
    /// Waiting for a retry or their start time.
    pub delayed: u64,
    /// Running under a lease.
    pub leased: u64,
    /// Failed for good, kept for the retention.
    pub dead: u64,
}

/// A task store. See the module documentation.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Accepts tasks, all together: each is stored and queued (or delayed), or, when its
    /// idempotency key was seen before, answered with the earlier task's id.
    async fn submit(&self, tasks: Vec<NewTask>) -> Result<Vec<Submitted>>;

    /// The task, if it exists (and has not expired).
    async fn get(&self, id: &str) -> Result<Option<TaskRecord>>;

    /// The task's events with a sequence number above `after`, in order.
    async fn events_after(&self, id: &str, after: u64) -> Result<Vec<TaskEvent>>;

    /// The task's events after `after`, as [`Store::events_after`], for a stream: from then
    /// on the task's events reach this process's notices. A store may otherwise publish a
    /// task's events only to the processes that stream it (the Redis store does), so that a
    /// process receives the events of its own streams, whatever the number of processes.
    async fn watch_events(&self, id: &str, after: u64) -> Result<Vec<TaskEvent>> {
        self.events_after(id, after).await
    }

    /// Leases the first runnable task (highest priority, then oldest) to `token`, a token
    /// never used before. When the call fails, whether the task was leased is unknown: call
    /// [`Store::unclaim`] with the same token.
    async fn claim(&self, token: &str, lease: Duration) -> Result<Option<Claim>>;

    /// Hands back, without spending an attempt, the task leased to `token` by a claim whose
    /// answer was lost. True when a task was handed back; false when the claim never
    /// happened (or its lease is over).
    async fn unclaim(&self, token: &str) -> Result<bool>;

    /// Extends a lease.
    async fn renew(&self, id: &str, token: &str, lease: Duration) -> Result<Renewal>;

    /// Records progress of a running attempt; false when the lease is lost.
    async fn progress(&self, id: &str, token: &str, percent: u32) -> Result<bool>;

    /// Completes a running attempt.
    async fn complete(&self, id: &str, token: &str, result: &str) -> Result<Finish>;

    /// Completes the attempt as [`Store::complete`] and, in the same step where the store
    /// can, claims the next runnable task under `next_token` as [`Store::claim`] would
    /// (only when the completion was accepted). `None` for the claim means nothing was
    /// claimed, not that nothing is runnable: claim as usual then. Where the answer is lost,
    /// the task under `next_token` may be claimed ([`Store::unclaim`] hands it back).
    async fn complete_and_claim(
        &self,
        id: &str,
        token: &str,
        result: &str,
        next_token: &str,
        lease: Duration,
    ) -> Result<(Finish, Option<Claim>)> {
        let _ = (next_token, lease);
        Ok((self.complete(id, token, result).await?, None))
    }

    /// Fails a running attempt: retried after `plan.delay`, or failed for good on its last
    /// attempt (or when `plan.permanent`).
    async fn fail(&self, id: &str, token: &str, error: &str, plan: RetryPlan) -> Result<Finish>;

    /// Ends a running task whose handler stopped for a cancellation.
    async fn finish_cancelled(&self, id: &str, token: &str, reason: &str) -> Result<Finish>;

    /// Hands a running task back to its place in the queue without spending an attempt.
    async fn release(&self, id: &str, token: &str) -> Result<Finish>;

    /// Cancels a task.
    async fn cancel(&self, id: &str, reason: &str) -> Result<CancelOutcome>;

    /// Takes back up to `limit` tasks whose lease expired; returns how many. Nothing is taken
    /// back while the store has just come back from an outage (see `lua/reap.lua`).
    async fn reap_expired(&self, limit: usize) -> Result<usize>;

    /// Moves up to `limit` due delayed tasks to the queue.
    async fn promote_due(&self, limit: usize) -> Result<Promotion>;

    /// Forgets dead tasks older than the retention; returns how many.
    async fn trim_dead(&self) -> Result<usize>;

    /// Checks that the store answers, and tells it that a server is alive (the store uses
    /// the silences between these to tell its own outages).
    async fn ping(&self) -> Result<()>;

    /// How many tasks are where (one consistent reading).
    async fn depths(&self) -> Result<Depths>;

    /// True while notices from other processes arrive (the store's subscription is up).
    fn subscribed(&self) -> bool {
        true
    }

    /// The store's eviction policy, when it has one that can be read (Redis's
    /// `maxmemory-policy`).
    async fn eviction_policy(&self) -> Result<Option<String>> {
        Ok(None)
    }

    /// Why this process must not use the store as configured, if it must not: the queue in
    /// it is laid out differently (a Redis Cluster's queue in another number of shards,
    /// whose tasks this process would look for in the wrong places). Records the layout
    /// when the store holds none yet.
    async fn layout_conflict(&self) -> Result<Option<String>> {
        Ok(None)
    }

    /// Notices from every server process sharing the store.
    fn notices(&self) -> broadcast::Receiver<Notice>;
}
