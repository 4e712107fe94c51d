//! Fans the store's notices out inside one server process: status events to the streams
//! watching each task, wake-ups to idle workers, cancellations to running handlers.
//!
//! There is one store subscription per process (the Redis store keeps one pub/sub
//! connection); every stream and worker registers here instead of subscribing itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::task::{Notice, TaskEvent, TaskState};

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

/// The streams watching one task, by registration id.
type Watchers = Vec<(u64, mpsc::UnboundedSender<StreamSignal>)>;

#[derive(Default)]
struct Inner {
    streams: Mutex<HashMap<String, Watchers>>,
    running: Mutex<HashMap<String, CancellationToken>>,
    work: Notify,
    next_id: std::sync::atomic::AtomicU64,
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
    receiver: mpsc::UnboundedReceiver<StreamSignal>,
}

impl Subscription {
    /// The next signal; `None` once the hub is gone.
    pub async fn recv(&mut self) -> Option<StreamSignal> {
        self.receiver.recv().await
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

/// A running task's registration; unregisters on drop.
pub struct Running {
    hub: Hub,
    task_id: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        lock(&self.hub.inner.running).remove(&self.task_id);
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
                if event.state == TaskState::Queued {
                    self.inner.work.notify_waiters();
                }
                let streams = lock(&self.inner.streams);
                if let Some(list) = streams.get(&event.id) {
                    for (_, sender) in list {
                        let _ = sender.send(StreamSignal::Event(event.clone()));
                    }
                }
            }
            Notice::Cancel(task_id) => {
                if let Some(token) = lock(&self.inner.running).get(&task_id) {
                    token.cancel();
                }
            }
            Notice::Wake => self.inner.work.notify_waiters(),
            Notice::Resync => {
                self.inner.work.notify_waiters();
                for list in lock(&self.inner.streams).values() {
                    for (_, sender) in list {
                        let _ = sender.send(StreamSignal::Resync);
                    }
                }
            }
        }
    }

    /// Registers a stream for the events of `task_id`.
    pub fn subscribe(&self, task_id: &str) -> Subscription {
        let (sender, receiver) = mpsc::unbounded_channel();
        let id = self
            .inner
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        lock(&self.inner.streams)
            .entry(task_id.to_owned())
            .or_default()
            .push((id, sender));
        Subscription {
            hub: self.clone(),
            task_id: task_id.to_owned(),
            id,
            receiver,
        }
    }

    /// Registers a running task, so that a cancellation notice reaches `token`.
    pub fn running(&self, task_id: &str, token: CancellationToken) -> Running {
        lock(&self.inner.running).insert(task_id.to_owned(), token);
        Running {
            hub: self.clone(),
            task_id: task_id.to_owned(),
        }
    }

    /// Resolves when work may have become available. Call `enable` on the pinned future
    /// before checking the queue, so that a wake-up between the check and the wait is kept.
    pub fn work_available(&self) -> tokio::sync::futures::Notified<'_> {
        self.inner.work.notified()
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
