//! Fans the store's notices out inside one server process: status events to the streams
//! watching each task, wake-ups to idle workers, cancellations to running handlers.
//!
//! There is one store subscription per process (the Redis store keeps one pub/sub
//! connection); every stream and worker registers here instead of subscribing itself.
//!
//! Everything here is bounded. A stream's mailbox holds at most [`MAILBOX`] events; when a
//! slow reader lets it fill up, further events are dropped and the stream is told to resync,
//! re-reading what it missed from the task's history once it reads again. A runnable task
//! wakes one idle worker, not all of them.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::task::{Notice, TaskEvent};

/// Most events waiting in one stream's mailbox.
pub const MAILBOX: usize = 32;

/// What a status stream is told.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamSignal {
    /// An event of its task.
    Event(TaskEvent),
    /// Events may have been missed: re-read the task's history.
    Resync,
}

/// The fan-out. Cheap to clone.
#[derive(Clone, Default)]
pub struct Hub {
    inner: Arc<Inner>,
}

/// The mailboxes of the streams watching one task, by registration id.
type Watchers = Vec<(u64, Arc<Mailbox>)>;

#[derive(Default)]
struct Inner {
    streams: Mutex<HashMap<String, Watchers>>,
    /// Running attempts by lease token.
    running: Mutex<HashMap<String, CancellationToken>>,
    work: Notify,
    /// When the delayed-task promoter plans to look next; an earlier due task wakes it.
    promote_at: Mutex<Option<Instant>>,
    promote: Notify,
    next_id: AtomicU64,
}

/// One stream's pending signals: a bounded queue of events and a resync flag.
#[derive(Default)]
struct Mailbox {
    events: Mutex<VecDeque<TaskEvent>>,
    resync: AtomicBool,
    ready: Notify,
}

impl Mailbox {
    fn post(&self, signal: StreamSignal) {
        match signal {
            StreamSignal::Event(event) => {
                let mut events = lock(&self.events);
                if events.len() < MAILBOX {
                    events.push_back(event);
                } else {
                    self.resync.store(true, Ordering::Relaxed);
                }
            }
            StreamSignal::Resync => self.resync.store(true, Ordering::Relaxed),
        }
        // A permit is kept when the reader is not waiting yet, so nothing is missed.
        self.ready.notify_one();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A stream's registration; unregisters on drop.
pub struct Subscription {
    hub: Hub,
    task_id: String,
    id: u64,
    mailbox: Arc<Mailbox>,
}

impl Subscription {
    /// The next signal. A pending resync comes first: it covers every event it replaced.
    pub async fn recv(&mut self) -> StreamSignal {
        loop {
            if self.mailbox.resync.swap(false, Ordering::Relaxed) {
                lock(&self.mailbox.events).clear();
                return StreamSignal::Resync;
            }
            if let Some(event) = lock(&self.mailbox.events).pop_front() {
                return StreamSignal::Event(event);
            }
            self.mailbox.ready.notified().await;
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut streams = lock(&self.hub.inner.streams);
        if let Some(list) = streams.get_mut(&self.task_id) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                streams.remove(&self.task_id);
            }
        }
    }
}

/// A running attempt's registration; unregisters on drop.
pub struct Running {
    hub: Hub,
    token: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        lock(&self.hub.inner.running).remove(&self.token);
    }
}

impl Hub {
    /// A hub fed by `notices` until the sender side closes.
    pub fn spawn(mut notices: broadcast::Receiver<Notice>) -> Self {
        let hub = Self::default();
        let feeder = hub.clone();
        tokio::spawn(async move {
            loop {
                match notices.recv().await {
                    Ok(notice) => feeder.dispatch(notice),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        debug!(missed, "Notice fan-out lagged; resyncing every stream.");
                        feeder.dispatch(Notice::Resync);
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        hub
    }

    /// Delivers one notice.
    pub fn dispatch(&self, notice: Notice) {
        match notice {
            Notice::Event(event) => {
                if event.runnable {
                    self.inner.work.notify_one();
                }
                if let Some(due_in) = event.due_in_ms {
                    self.delayed_due(Instant::now() + Duration::from_millis(due_in));
                }
                let streams = lock(&self.inner.streams);
                if let Some(list) = streams.get(&event.id) {
                    for (_, mailbox) in list {
                        mailbox.post(StreamSignal::Event(event.clone()));
                    }
                }
            }
            Notice::Cancel { token, .. } => {
                if let Some(cancel) = lock(&self.inner.running).get(&token) {
                    cancel.cancel();
                }
            }
            Notice::Wake(count) => {
                // Each call wakes one waiting worker, or leaves one permit when none waits.
                for _ in 0..count.min(1024) {
                    self.inner.work.notify_one();
                }
            }
            Notice::Resync => {
                self.inner.work.notify_waiters();
                self.inner.work.notify_one();
                self.inner.promote.notify_one();
                for list in lock(&self.inner.streams).values() {
                    for (_, mailbox) in list {
                        mailbox.post(StreamSignal::Resync);
                    }
                }
            }
        }
    }

    /// Registers a stream for the events of `task_id`.
    pub fn subscribe(&self, task_id: &str) -> Subscription {
        let mailbox = Arc::new(Mailbox::default());
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&self.inner.streams)
            .entry(task_id.to_owned())
            .or_default()
            .push((id, mailbox.clone()));
        Subscription {
            hub: self.clone(),
            task_id: task_id.to_owned(),
            id,
            mailbox,
        }
    }

    /// Registers a running attempt by its lease token, so that a cancellation notice for
    /// that attempt (and no other) reaches `cancel`.
    pub fn running(&self, token: &str, cancel: CancellationToken) -> Running {
        lock(&self.inner.running).insert(token.to_owned(), cancel);
        Running {
            hub: self.clone(),
            token: token.to_owned(),
        }
    }

    /// Resolves when work may have become available. Call `enable` on the pinned future
    /// before checking the queue, so that a wake-up between the check and the wait is kept.
    /// A wake-up goes to one waiting worker; one that is dropped unused passes to the next.
    pub fn work_available(&self) -> tokio::sync::futures::Notified<'_> {
        self.inner.work.notified()
    }

    /// A delayed task comes due at `due`: wakes the promoter if it planned to look later.
    fn delayed_due(&self, due: Instant) {
        let planned = *lock(&self.inner.promote_at);
        if planned.is_none_or(|at| due < at) {
            self.inner.promote.notify_one();
        }
    }

    /// Waits until `at`, or until a delayed task comes due before it (or notices may have
    /// been missed).
    pub async fn promote_after(&self, at: Instant) {
        *lock(&self.inner.promote_at) = Some(at);
        tokio::select! {
            () = tokio::time::sleep_until(at) => {}
            () = self.inner.promote.notified() => {}
        }
        *lock(&self.inner.promote_at) = None;
    }

    /// Wakes every idle worker (used on shutdown and in tests).
    pub fn wake_workers(&self) {
        self.inner.work.notify_waiters();
    }

    /// Number of open status streams.
    pub fn open_streams(&self) -> usize {
        lock(&self.inner.streams).values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::TaskState;

    fn event(id: &str, seq: u64, runnable: bool) -> TaskEvent {
        TaskEvent {
            id: id.to_owned(),
            seq,
            state: TaskState::Queued,
            progress: 0,
            attempt: 0,
            max_attempts: 1,
            result: String::new(),
            error: String::new(),
            ts: 0,
            runnable,
            due_in_ms: None,
            by: None,
        }
    }

    #[tokio::test]
    async fn a_full_mailbox_turns_into_one_resync() {
        let hub = Hub::default();
        let mut subscription = hub.subscribe("t");
        for seq in 1..=u64::try_from(MAILBOX).expect("small") + 10 {
            hub.dispatch(Notice::Event(event("t", seq, false)));
        }
        assert_eq!(subscription.recv().await, StreamSignal::Resync);
        // The queued events were covered by the resync and dropped.
        hub.dispatch(Notice::Event(event("t", 99, false)));
        assert_eq!(
            subscription.recv().await,
            StreamSignal::Event(event("t", 99, false))
        );
        assert_eq!(hub.open_streams(), 1);
        drop(subscription);
        assert_eq!(hub.open_streams(), 0);
    }

    #[tokio::test]
    async fn a_runnable_event_wakes_one_worker_and_others_wake_none() {
        let hub = Hub::default();
        let first = hub.work_available();
        let second = hub.work_available();
        tokio::pin!(first, second);
        first.as_mut().enable();
        second.as_mut().enable();
        hub.dispatch(Notice::Event(event("t", 1, false)));
        hub.dispatch(Notice::Event(event("t", 2, true)));
        let woken = [first.as_mut().enable(), second.as_mut().enable()];
        assert_eq!(woken, [true, false], "exactly the first waiter is woken");
    }

    #[tokio::test]
    async fn a_cancellation_reaches_only_the_attempt_holding_the_lease() {
        let hub = Hub::default();
        let old = CancellationToken::new();
        let current = CancellationToken::new();
        let _old = hub.running("token-1", old.clone());
        let _current = hub.running("token-2", current.clone());
        hub.dispatch(Notice::Cancel {
            task_id: "t".to_owned(),
            token: "token-2".to_owned(),
        });
        assert!(current.is_cancelled());
        assert!(!old.is_cancelled());
    }
}
