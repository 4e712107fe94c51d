//! Group commit: calls of one kind that arrive while earlier ones are on their way to Redis
//! go together, as one script call, and each caller gets its own answer.
//!
//! Nothing waits for a batch to fill: a call goes at once while fewer than `in_flight`
//! batches are out, so an idle server answers one call as fast as before. Under load the
//! calls that queue meanwhile make the next batch, so one script's fixed cost (the round
//! trip, the call, the clock read, the set writes, the replica wait) is shared by many
//! tasks; each task's own step inside it is what it would have been alone, and the script
//! is still one atomic step.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::store::{Result, StoreError};

/// One call waiting for its batch.
struct Pending<Q, A> {
    request: Q,
    /// Its share of a batch's limit (a submission's task count, 1 for the others).
    weight: usize,
    answer: oneshot::Sender<Result<A>>,
}

/// What to do with an answer whose caller has gone (its future was dropped while the batch
/// ran): a claim's task is handed back rather than left leased to no one.
pub(super) type Orphan<A> = Arc<dyn Fn(A) + Send + Sync>;

/// Sends calls of one kind in batches; see the module documentation.
pub(super) struct Batcher<Q, A> {
    sender: mpsc::UnboundedSender<Pending<Q, A>>,
}

impl<Q: Send + 'static, A: Send + 'static> Batcher<Q, A> {
    /// A batcher that runs `run` on batches of at most `limit` (by weight; a heavier call
    /// goes alone), with at most `in_flight` batches out at once. `run` answers one result
    /// per request, in order. Its task ends when the batcher is dropped. Needs a Tokio
    /// runtime.
    pub(super) fn spawn<F, Fut>(
        limit: usize,
        in_flight: usize,
        run: F,
        orphan: Option<Orphan<A>>,
    ) -> Self
    where
        F: Fn(Vec<Q>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<A>>> + Send + 'static,
    {
        let (sender, mut receiver) = mpsc::unbounded_channel::<Pending<Q, A>>();
        let permits = Arc::new(Semaphore::new(in_flight.max(1)));
        let run = Arc::new(run);
        tokio::spawn(async move {
            // A call that did not fit the last batch: it starts the next.
            let mut held: Option<Pending<Q, A>> = None;
            loop {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let first = match held.take() {
                    Some(pending) => pending,
                    None => match receiver.recv().await {
                        Some(pending) => pending,
                        None => return,
                    },
                };
                let mut weight = first.weight;
                let mut batch = vec![first];
                while weight < limit {
                    match receiver.try_recv() {
                        Ok(pending) if weight + pending.weight > limit => {
                            held = Some(pending);
                            break;
                        }
                        Ok(pending) => {
                            weight += pending.weight;
                            batch.push(pending);
                        }
                        Err(_) => break,
                    }
                }
                let run = run.clone();
                let orphan = orphan.clone();
                tokio::spawn(async move {
                    let (requests, answers): (Vec<Q>, Vec<_>) = batch
                        .into_iter()
                        .map(|pending| (pending.request, pending.answer))
                        .unzip();
                    let count = requests.len();
                    match run(requests).await {
                        Ok(results) if results.len() == count => {
                            for (answer, result) in answers.into_iter().zip(results) {
                                if let Err(Ok(result)) = answer.send(Ok(result))
                                    && let Some(orphan) = &orphan
                                {
                                    orphan(result);
                                }
                            }
                        }
                        Ok(results) => {
                            let error = StoreError::Corrupt(format!(
                                "a batch of {count} calls was answered {} times",
                                results.len()
                            ));
                            for answer in answers {
                                let _ = answer.send(Err(error.clone()));
                            }
                        }
                        Err(error) => {
                            for answer in answers {
                                let _ = answer.send(Err(error.clone()));
                            }
                        }
                    }
                    drop(permit);
                });
            }
        });
        Self { sender }
    }

    /// Sends `request` with the next batch and waits for its answer.
    pub(super) async fn call(&self, request: Q, weight: usize) -> Result<A> {
        let (answer, answered) = oneshot::channel();
        self.sender
            .send(Pending {
                request,
                weight,
                answer,
            })
            .map_err(|_| StoreError::Unavailable("the store is shutting down".into()))?;
        answered
            .await
            .map_err(|_| StoreError::Unavailable("the batch was dropped unanswered".into()))?
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// The batches a batcher ran.
    type Seen = Arc<Mutex<Vec<Vec<u32>>>>;

    /// A batcher that records its batches and answers each request doubled.
    fn doubling(limit: usize, in_flight: usize) -> (Batcher<u32, u32>, Seen) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let batcher = Batcher::spawn(
            limit,
            in_flight,
            move |batch: Vec<u32>| {
                record.lock().expect("lock").push(batch.clone());
                async move {
                    tokio::task::yield_now().await;
                    Ok(batch.into_iter().map(|n| n * 2).collect())
                }
            },
            None,
        );
        (batcher, seen)
    }

    #[tokio::test]
    async fn every_caller_gets_its_own_answer() {
        let (batcher, seen) = doubling(8, 1);
        let batcher = Arc::new(batcher);
        let calls: Vec<_> = (0..40u32)
            .map(|n| {
                let batcher = batcher.clone();
                tokio::spawn(async move { (n, batcher.call(n, 1).await.expect("answer")) })
            })
            .collect();
        for call in calls {
            let (n, answer) = call.await.expect("caller");
            assert_eq!(answer, n * 2);
        }
        let batches = seen.lock().expect("lock").clone();
        let mut all: Vec<u32> = batches.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..40).collect::<Vec<_>>());
        assert!(batches.iter().all(|batch| batch.len() <= 8), "{batches:?}");
        assert!(
            batches.len() < 40,
            "calls queued behind a batch go together: {batches:?}"
        );
    }

    #[tokio::test]
    async fn a_call_heavier_than_the_limit_goes_alone() {
        let (batcher, seen) = doubling(4, 1);
        assert_eq!(batcher.call(5, 10).await.expect("answer"), 10);
        assert_eq!(batcher.call(6, 1).await.expect("answer"), 12);
        assert_eq!(*seen.lock().expect("lock"), vec![vec![5], vec![6]]);
    }

    #[tokio::test]
    async fn a_failed_batch_fails_each_of_its_calls() {
        let batcher: Batcher<u32, u32> = Batcher::spawn(
            8,
            1,
            |_| async { Err(StoreError::Unavailable("down".into())) },
            None,
        );
        let error = batcher.call(1, 1).await.expect_err("an error");
        assert!(matches!(error, StoreError::Unavailable(message) if message == "down"));
    }

    #[tokio::test]
    async fn an_answer_whose_caller_left_goes_to_the_orphan_handler() {
        let orphans = Arc::new(Mutex::new(Vec::new()));
        let record = orphans.clone();
        let (release, released) = tokio::sync::watch::channel(false);
        let (started, mut running) = mpsc::unbounded_channel();
        let batcher: Batcher<u32, u32> = Batcher::spawn(
            8,
            1,
            move |batch: Vec<u32>| {
                let mut released = released.clone();
                let _ = started.send(());
                async move {
                    released.wait_for(|go| *go).await.expect("released");
                    Ok(batch)
                }
            },
            Some(Arc::new(move |answer| {
                record.lock().expect("lock").push(answer)
            })),
        );
        let batcher = Arc::new(batcher);
        let caller = {
            let batcher = batcher.clone();
            tokio::spawn(async move { batcher.call(7, 1).await })
        };
        running.recv().await.expect("started");
        caller.abort();
        let _ = caller.await;
        release.send(true).expect("release");
        // The next call's batch runs after the orphaned one has been handled.
        assert_eq!(batcher.call(8, 1).await.expect("answer"), 8);
        assert_eq!(*orphans.lock().expect("lock"), vec![7]);
    }
}
