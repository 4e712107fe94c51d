//! The status stream of one task: it sends the task's events in order, re-reading the
//! history when it may have missed some.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use taskmanager_proto::pb;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tracing::debug;

use super::{shutting_down, status};
use crate::hub::{StreamSignal, Subscription};
use crate::store::{Store, StoreError};
use crate::task::TaskEvent;

/// First wait before a stream re-reads its task after the store failed to answer.
const CATCH_UP_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between those tries.
const CATCH_UP_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// One status stream. It reads Redis only when it opens and when it may have missed events
/// (a gap in sequence numbers, a re-established subscription, a mailbox that overflowed);
/// an idle stream costs the store nothing. When the store does not answer, it waits and
/// tries again, so a Redis restart or stall never ends it; only shutdown does.
pub(super) struct Watch {
    pub(super) id: String,
    /// The sequence number of the last event sent.
    pub(super) last: u64,
    pub(super) subscription: Subscription,
    pub(super) store: Arc<dyn Store>,
    pub(super) shutdown: CancellationToken,
    /// Events read but not sent yet.
    pub(super) pending: VecDeque<TaskEvent>,
    /// Events may have been missed: re-read the history after `last`.
    pub(super) resync: bool,
    pub(super) done: bool,
    pub(super) _permit: OwnedSemaphorePermit,
}

impl Watch {
    /// The next message, or `None` when the stream is over.
    pub(super) async fn next(&mut self) -> Option<Result<pb::StatusResponse, Status>> {
        loop {
            if self.done {
                return None;
            }
            if let Some(event) = self.pending.pop_front() {
                if event.seq <= self.last {
                    continue;
                }
                if event.seq != self.last + 1 {
                    self.pending.clear();
                    self.resync = true;
                    continue;
                }
                self.last = event.seq;
                self.done = event.state.is_terminal();
                return Some(Ok(event.to_proto()));
            }
            if self.resync {
                if let Err(status) = self.catch_up().await {
                    self.done = true;
                    return Some(Err(status));
                }
                continue;
            }
            tokio::select! {
                signal = self.subscription.recv() => match signal {
                    StreamSignal::Event(event) if event.seq <= self.last => {}
                    StreamSignal::Event(event) if event.seq == self.last + 1 => {
                        self.pending.push_back(event);
                    }
                    // A gap, or a resync: read what was missed from the history.
                    _ => self.resync = true,
                },
                () = self.shutdown.cancelled() => {
                    self.done = true;
                    return Some(Err(shutting_down()));
                }
            }
        }
    }

    /// Reads the events after `last` into `pending`, retrying with backoff while the store
    /// does not answer. Ends the stream (`done`) when the task has expired meanwhile.
    async fn catch_up(&mut self) -> Result<(), Status> {
        let mut backoff = CATCH_UP_BACKOFF;
        loop {
            let read = match self.store.watch_events(&self.id, self.last).await {
                Ok(events) if events.is_empty() => match self.store.get(&self.id).await {
                    Ok(task) => {
                        self.done = task.is_none();
                        Ok(())
                    }
                    Err(error) => Err(error),
                },
                Ok(events) => {
                    self.pending.extend(events);
                    Ok(())
                }
                Err(error) => Err(error),
            };
            match read {
                Ok(()) => {
                    self.resync = false;
                    return Ok(());
                }
                Err(StoreError::Unavailable(error) | StoreError::Full(error)) => {
                    debug!(task_id = %self.id, %error, "Cannot re-read the task yet; retrying.");
                }
                Err(error) => return Err(status(error)),
            }
            let jitter = rand::rng().random_range(0.5..1.0);
            tokio::select! {
                () = tokio::time::sleep(backoff.mul_f64(jitter)) => {}
                // The subscription came back (or news arrived): try again now.
                _ = self.subscription.recv() => {}
                () = self.shutdown.cancelled() => return Err(shutting_down()),
            }
            backoff = (backoff * 2).min(CATCH_UP_BACKOFF_MAX);
        }
    }
}
