//! The in-memory store: the same transitions as the Redis scripts, under one mutex, for
//! zero-setup local runs. Nothing survives the process.
//!
//! The in-memory store, whole: each transition mirrors its Lua script, so they are kept in
//! one file to be read against `lua/`.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::{
    CancelOutcome, Claim, Depths, Finish, Promotion, Renewal, Result, RetryPlan, Store, StoreError,
};
use crate::task::{NewTask, Notice, Submitted, TaskEvent, TaskRecord, TaskState};

/// A band per priority, as in the Redis store: higher priority first, then FIFO.
const BAND: u64 = 1 << 40;

/// The in-memory store. Cheap to clone; clones share the tasks.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    retention: Duration,
    max_queued: Option<u64>,
    notices: broadcast::Sender<Notice>,
}

#[derive(Default)]
struct Inner {
    tasks: HashMap<String, Entry>,
    pending: BTreeSet<(u64, String)>,
    leases: HashMap<String, u64>,
    delayed: HashMap<String, u64>,
    dead: HashMap<String, u64>,
    idem: HashMap<String, String>,
    counter: u64,
}

struct Entry {
    record: TaskRecord,
    token: String,
    history: Vec<TaskEvent>,
    pending_score: Option<u64>,
    /// The score it was last queued with: a task handed back returns to that place.
    queue_score: u64,
    /// When it last became runnable (ms): claims measure the queue wait from it.
    runnable_at: u64,
    expires_at: Option<u64>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn signed(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

impl MemoryStore {
    /// An empty store keeping terminal tasks for `retention`.
    pub fn new(retention: Duration) -> Self {
        let (notices, _) = broadcast::channel(4096);
        Self {
            inner: Arc::default(),
            retention,
            max_queued: None,
            notices,
        }
    }

    /// Refuses submissions beyond `max_queued` tasks waiting to run.
    #[must_use]
    pub fn with_max_queued(mut self, max_queued: Option<u64>) -> Self {
        self.max_queued = max_queued;
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data: every mutation below
        // completes before it can panic.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn send(&self, notice: Notice) {
        let _ = self.notices.send(notice);
    }

    /// Publishes the event of a transition, if there was one.
    fn publish(&self, event: Option<TaskEvent>) {
        if let Some(event) = event {
            self.send(Notice::Event(event));
        }
    }
}

impl Inner {
    /// The live (not expired) entry of `id`.
    fn entry(&mut self, id: &str, now: u64) -> Option<&mut Entry> {
        let expired = self
            .tasks
            .get(id)
            .is_some_and(|entry| entry.expires_at.is_some_and(|at| at <= now));
        if expired {
            self.forget(id);
        }
        self.tasks.get_mut(id)
    }

    fn forget(&mut self, id: &str) {
        if let Some(entry) = self.tasks.remove(id)
            && let Some(key) = entry.record.idempotency_key
            && self.idem.get(&key).is_some_and(|owner| owner == id)
        {
            self.idem.remove(&key);
        }
    }

    /// Queues a task behind everything of its priority, or (`back_to_place`) at the place it
    /// was last taken from.
    fn enqueue(&mut self, id: &str, back_to_place: bool) {
        self.counter += 1;
        let counter = self.counter;
        if let Some(entry) = self.tasks.get_mut(id) {
            let score = if back_to_place {
                entry.queue_score
            } else {
                (2 - u64::from(entry.record.priority.min(2))) * BAND + counter
            };
            entry.pending_score = Some(score);
            entry.queue_score = score;
            entry.runnable_at = now_ms();
            self.pending.insert((score, id.to_owned()));
        }
    }

    /// Tasks waiting to run.
    fn waiting(&self) -> u64 {
        u64::try_from(self.pending.len() + self.delayed.len()).unwrap_or(u64::MAX)
    }

    /// Hands a running task back to its place in the queue, or ends it CANCELLED when a
    /// cancellation is pending.
    fn hand_back(&mut self, id: &str, now: u64, retention: Duration) -> Option<TaskEvent> {
        let cancel = self
            .tasks
            .get(id)
            .is_some_and(|e| e.record.cancel_requested);
        if cancel {
            return self.finish(id, TaskState::Cancelled, now, retention);
        }
        self.leases.remove(id);
        if let Some(entry) = self.tasks.get_mut(id) {
            entry.record.attempt = entry.record.attempt.saturating_sub(1);
            entry.record.state = TaskState::Queued;
            entry.record.progress = 0;
            entry.record.updated_ms = signed(now);
            entry.token.clear();
        }
        self.enqueue(id, true);
        self.emit(id, true)
    }

    fn unqueue(&mut self, id: &str) {
        if let Some(score) = self.tasks.get_mut(id).and_then(|e| e.pending_score.take()) {
            self.pending.remove(&(score, id.to_owned()));
        }
        self.delayed.remove(id);
        self.leases.remove(id);
    }

    /// Records the task's current state as its next event.
    fn emit(&mut self, id: &str, runnable: bool) -> Option<TaskEvent> {
        self.emit_due(id, runnable, None)
    }

    /// Like `emit`, for a task put off by `due_in`.
    fn emit_due(
        &mut self,
        id: &str,
        runnable: bool,
        due_in: Option<Duration>,
    ) -> Option<TaskEvent> {
        let entry = self.tasks.get_mut(id)?;
        let record = &mut entry.record;
        record.seq += 1;
        let event = TaskEvent {
            id: record.id.clone(),
            seq: record.seq,
            state: record.state,
            progress: record.progress,
            attempt: record.attempt,
            max_attempts: record.max_attempts,
            result: record.result.clone(),
            error: record.error.clone(),
            ts: record.updated_ms,
            runnable,
            due_in_ms: due_in.map(ms),
            by: None,
        };
        entry.history.push(event.clone());
        Some(event)
    }

    /// Moves a task to a terminal state.
    fn finish(
        &mut self,
        id: &str,
        state: TaskState,
        now: u64,
        retention: Duration,
    ) -> Option<TaskEvent> {
        self.unqueue(id);
        let entry = self.tasks.get_mut(id)?;
        entry.record.state = state;
        entry.record.updated_ms = signed(now);
        entry.token.clear();
        entry.expires_at = Some(now.saturating_add(ms(retention)));
        if state == TaskState::Failed {
            self.dead.insert(id.to_owned(), now);
        }
        self.emit(id, false)
    }

    /// True when `token` holds the lease of the running task `id`.
    fn holds(&mut self, id: &str, token: &str, now: u64) -> bool {
        self.entry(id, now).is_some_and(|entry| {
            entry.record.state == TaskState::InProgress && !token.is_empty() && entry.token == token
        })
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn submit(&self, tasks: Vec<NewTask>) -> Result<Vec<Submitted>> {
        let now = now_ms();
        let mut events = Vec::new();
        let mut out = Vec::with_capacity(tasks.len());
        {
            let mut inner = self.lock();
            if let Some(cap) = self.max_queued {
                let new = tasks
                    .iter()
                    .filter(|task| {
                        task.idempotency_key
                            .as_ref()
                            .is_none_or(|key| !inner.idem.contains_key(key))
                    })
                    .count();
                let waiting = inner.waiting();
                let new = u64::try_from(new).unwrap_or(u64::MAX);
                if new > 0 && waiting.saturating_add(new) > cap {
                    return Err(StoreError::queue_full(waiting, cap));
                }
            }
            for task in tasks {
                if let Some(key) = &task.idempotency_key
                    && let Some(existing) = inner.idem.get(key).cloned()
                    && inner.entry(&existing, now).is_some()
                {
                    out.push(Submitted {
                        id: existing,
                        deduplicated: true,
                    });
                    continue;
                }
                let id = task.id.clone();
                let record = TaskRecord {
                    id: id.clone(),
                    description: task.description,
                    priority: task.priority.min(2),
                    number1: task.number1,
                    number2: task.number2,
                    kind: task.kind,
                    payload: task.payload,
                    idempotency_key: task.idempotency_key.clone(),
                    state: TaskState::Queued,
                    attempt: 0,
                    max_attempts: task.max_attempts,
                    progress: 0,
                    result: String::new(),
                    error: String::new(),
                    created_ms: signed(now),
                    updated_ms: signed(now),
                    seq: 0,
                    cancel_requested: false,
                    trace_parent: task.trace_parent,
                };
                inner.tasks.insert(
                    id.clone(),
                    Entry {
                        record,
                        token: String::new(),
                        history: Vec::new(),
                        pending_score: None,
                        queue_score: 0,
                        runnable_at: 0,
                        expires_at: None,
                    },
                );
                if let Some(key) = task.idempotency_key {
                    inner.idem.insert(key, id.clone());
                }
                if task.delay.is_zero() {
                    inner.enqueue(&id, false);
                } else {
                    inner
                        .delayed
                        .insert(id.clone(), now.saturating_add(ms(task.delay)));
                }
                let due_in = (!task.delay.is_zero()).then_some(task.delay);
                events.extend(inner.emit_due(&id, due_in.is_none(), due_in));
                out.push(Submitted {
                    id,
                    deduplicated: false,
                });
            }
        }
        // As in Redis: no stream can watch a task before its submission is answered, so a
        // runnable task's first event is only recorded, and one notice wakes the workers.
        let (runnable, delayed): (Vec<_>, Vec<_>) =
            events.into_iter().partition(|event| event.runnable);
        for event in delayed {
            self.send(Notice::Event(event));
        }
        if !runnable.is_empty() {
            self.send(Notice::Wake(runnable.len()));
        }
        Ok(out)
    }

    async fn get(&self, id: &str) -> Result<Option<TaskRecord>> {
        Ok(self
            .lock()
            .entry(id, now_ms())
            .map(|entry| entry.record.clone()))
    }

    async fn events_after(&self, id: &str, after: u64) -> Result<Vec<TaskEvent>> {
        let mut inner = self.lock();
        Ok(inner
            .entry(id, now_ms())
            .map(|entry| {
                entry
                    .history
                    .iter()
                    .filter(|e| e.seq > after)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn claim(&self, token: &str, lease: Duration) -> Result<Option<Claim>> {
        let now = now_ms();
        let (claim, event) = {
            let mut inner = self.lock();
            let Some((score, id)) = inner.pending.pop_first() else {
                return Ok(None);
            };
            let _ = score;
            let Some(entry) = inner.tasks.get_mut(&id) else {
                return Ok(None);
            };
            entry.pending_score = None;
            entry.record.attempt += 1;
            entry.record.state = TaskState::InProgress;
            entry.record.progress = 0;
            entry.record.updated_ms = signed(now);
            let waited = Some(Duration::from_millis(now.saturating_sub(entry.runnable_at)));
            token.clone_into(&mut entry.token);
            inner
                .leases
                .insert(id.clone(), now.saturating_add(ms(lease)));
            let event = inner.emit(&id, false);
            let task = inner.tasks.get(&id).map(|entry| entry.record.clone());
            let token = token.to_owned();
            (
                task.map(|task| Claim {
                    task,
                    token,
                    waited,
                }),
                event,
            )
        };
        self.publish(event);
        Ok(claim)
    }

    async fn renew(&self, id: &str, token: &str, lease: Duration) -> Result<Renewal> {
        let now = now_ms();
        let mut inner = self.lock();
        if !inner.holds(id, token, now) || !inner.leases.contains_key(id) {
            return Ok(Renewal::Lost);
        }
        inner
            .leases
            .insert(id.to_owned(), now.saturating_add(ms(lease)));
        let cancel = inner
            .tasks
            .get(id)
            .is_some_and(|e| e.record.cancel_requested);
        Ok(if cancel {
            Renewal::CancelRequested
        } else {
            Renewal::Renewed
        })
    }

    async fn progress(&self, id: &str, token: &str, percent: u32) -> Result<bool> {
        let now = now_ms();
        let event = {
            let mut inner = self.lock();
            if !inner.holds(id, token, now) {
                return Ok(false);
            }
            if let Some(entry) = inner.tasks.get_mut(id) {
                entry.record.progress = percent.min(100);
                entry.record.updated_ms = signed(now);
            }
            inner.emit(id, false)
        };
        self.publish(event);
        Ok(true)
    }

    async fn complete(&self, id: &str, token: &str, result: &str) -> Result<Finish> {
        let now = now_ms();
        let event = {
            let mut inner = self.lock();
            if !inner.holds(id, token, now) {
                return Ok(Finish::Stale);
            }
            if let Some(entry) = inner.tasks.get_mut(id) {
                entry.record.result = result.to_owned();
                entry.record.progress = 100;
                entry.record.error.clear();
            }
            inner.finish(id, TaskState::Completed, now, self.retention)
        };
        self.publish(event);
        Ok(Finish::Done)
    }

    async fn fail(&self, id: &str, token: &str, error: &str, plan: RetryPlan) -> Result<Finish> {
        let now = now_ms();
        let (finish, event) = {
            let mut inner = self.lock();
            if !inner.holds(id, token, now) {
                return Ok(Finish::Stale);
            }
            let Some(entry) = inner.tasks.get_mut(id) else {
                return Ok(Finish::Stale);
            };
            let record = &mut entry.record;
            if record.cancel_requested {
                record.error = format!("cancelled: {error}");
                (
                    Finish::Cancelled,
                    inner.finish(id, TaskState::Cancelled, now, self.retention),
                )
            } else if plan.permanent || record.attempt >= record.max_attempts {
                record.error = error.to_owned();
                (
                    Finish::Done,
                    inner.finish(id, TaskState::Failed, now, self.retention),
                )
            } else {
                record.state = TaskState::Queued;
                record.error = error.to_owned();
                record.progress = 0;
                record.updated_ms = signed(now);
                entry.token.clear();
                inner.leases.remove(id);
                if plan.delay.is_zero() {
                    inner.enqueue(id, false);
                } else {
                    inner
                        .delayed
                        .insert(id.to_owned(), now.saturating_add(ms(plan.delay)));
                }
                let due_in = (!plan.delay.is_zero()).then_some(plan.delay);
                (
                    Finish::Retrying,
                    inner.emit_due(id, due_in.is_none(), due_in),
                )
            }
        };
        self.publish(event);
        Ok(finish)
    }

    async fn finish_cancelled(&self, id: &str, token: &str, reason: &str) -> Result<Finish> {
        let now = now_ms();
        let event = {
            let mut inner = self.lock();
            if !inner.holds(id, token, now) {
                return Ok(Finish::Stale);
            }
            if let Some(entry) = inner.tasks.get_mut(id) {
                entry.record.error = reason.to_owned();
            }
            inner.finish(id, TaskState::Cancelled, now, self.retention)
        };
        self.publish(event);
        Ok(Finish::Done)
    }

    async fn release(&self, id: &str, token: &str) -> Result<Finish> {
        let now = now_ms();
        let event = {
            let mut inner = self.lock();
            if !inner.holds(id, token, now) {
                return Ok(Finish::Stale);
            }
            inner.hand_back(id, now, self.retention)
        };
        self.publish(event);
        Ok(Finish::Done)
    }

    async fn unclaim(&self, token: &str) -> Result<bool> {
        let now = now_ms();
        let event = {
            let mut inner = self.lock();
            let held = inner
                .tasks
                .iter()
                .find(|(_, entry)| {
                    !token.is_empty()
                        && entry.token == token
                        && entry.record.state == TaskState::InProgress
                })
                .map(|(id, _)| id.clone());
            let Some(id) = held else {
                return Ok(false);
            };
            inner.hand_back(&id, now, self.retention)
        };
        self.publish(event);
        Ok(true)
    }

    async fn cancel(&self, id: &str, reason: &str) -> Result<CancelOutcome> {
        let now = now_ms();
        let (outcome, notice) = {
            let mut inner = self.lock();
            let Some(entry) = inner.entry(id, now) else {
                return Ok(CancelOutcome::NotFound);
            };
            match entry.record.state {
                TaskState::Queued => {
                    entry.record.error = reason.to_owned();
                    let event = inner.finish(id, TaskState::Cancelled, now, self.retention);
                    (CancelOutcome::Cancelled, event.map(Notice::Event))
                }
                TaskState::InProgress => {
                    entry.record.cancel_requested = true;
                    entry.record.error = reason.to_owned();
                    let notice = Notice::Cancel {
                        task_id: id.to_owned(),
                        token: entry.token.clone(),
                    };
                    (CancelOutcome::Requested, Some(notice))
                }
                state => (CancelOutcome::AlreadyFinished(state), None),
            }
        };
        if let Some(notice) = notice {
            self.send(notice);
        }
        Ok(outcome)
    }

    async fn reap_expired(&self, limit: usize) -> Result<usize> {
        let now = now_ms();
        let mut events = Vec::new();
        let count = {
            let mut inner = self.lock();
            let mut expired: Vec<(u64, String)> = inner
                .leases
                .iter()
                .filter(|(_, at)| **at <= now)
                .map(|(id, at)| (*at, id.clone()))
                .collect();
            expired.sort();
            expired.truncate(limit);
            for (_, id) in &expired {
                inner.leases.remove(id);
                let Some(entry) = inner.tasks.get_mut(id) else {
                    continue;
                };
                let record = &mut entry.record;
                let event = if record.cancel_requested {
                    inner.finish(id, TaskState::Cancelled, now, self.retention)
                } else if record.attempt >= record.max_attempts {
                    record.error = "lease expired on the last attempt (worker lost)".to_owned();
                    inner.finish(id, TaskState::Failed, now, self.retention)
                } else {
                    record.state = TaskState::Queued;
                    record.progress = 0;
                    record.error = "lease expired (worker lost)".to_owned();
                    record.updated_ms = signed(now);
                    entry.token.clear();
                    inner.enqueue(id, false);
                    inner.emit(id, true)
                };
                events.extend(event);
            }
            expired.len()
        };
        for event in events {
            self.send(Notice::Event(event));
        }
        Ok(count)
    }

    async fn promote_due(&self, limit: usize) -> Result<Promotion> {
        let now = now_ms();
        let (moved, next_due) = {
            let mut inner = self.lock();
            let mut due: Vec<(u64, String)> = inner
                .delayed
                .iter()
                .filter(|(_, at)| **at <= now)
                .map(|(id, at)| (*at, id.clone()))
                .collect();
            due.sort();
            due.truncate(limit);
            for (_, id) in &due {
                inner.delayed.remove(id);
                inner.enqueue(id, false);
            }
            let next = inner
                .delayed
                .values()
                .min()
                .map(|at| Duration::from_millis(at.saturating_sub(now)));
            (due.len(), next)
        };
        if moved > 0 {
            self.send(Notice::Wake(moved));
        }
        Ok(Promotion { moved, next_due })
    }

    async fn trim_dead(&self) -> Result<usize> {
        let now = now_ms();
        let mut inner = self.lock();
        let expired: Vec<String> = inner
            .tasks
            .iter()
            .filter(|(_, entry)| entry.expires_at.is_some_and(|at| at <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            inner.forget(id);
        }
        let horizon = now.saturating_sub(ms(self.retention));
        let before = inner.dead.len();
        inner.dead.retain(|_, at| *at > horizon);
        Ok(before - inner.dead.len())
    }

    async fn depths(&self) -> Result<Depths> {
        let inner = self.lock();
        let mut pending = [0u64; 3];
        for (score, _) in &inner.pending {
            // Bands: HIGH first (band 0), then MEDIUM, then LOW.
            let band = usize::try_from((score.saturating_sub(1)) / BAND)
                .unwrap_or(2)
                .min(2);
            pending[2 - band] += 1;
        }
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        Ok(Depths {
            pending,
            delayed: count(inner.delayed.len()),
            leased: count(inner.leases.len()),
            dead: count(inner.dead.len()),
        })
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    fn notices(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }
}
