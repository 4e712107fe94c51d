//! One suite, two stores: every test runs against the in-memory store and against a real
//! `redis-server` started for it, and again against a one-node Redis Cluster with a
//! hash-tagged prefix (Redis refuses there any script that leaves its slot).
//!
//! One concept: the store conformance suite, the same tests for both stores.

mod support;

use std::sync::Arc;
use std::time::Duration;

use taskmanager_server::store::{
    CancelOutcome, ClusterOptions, Finish, MemoryStore, RedisOptions, RedisStore, Renewal,
    RetryPlan, Store, StoreError,
};
use taskmanager_server::task::{NewTask, Notice, TaskState};

/// A store under test, with whatever keeps it alive.
struct Subject {
    store: Arc<dyn Store>,
    /// A store over the same data refusing submissions beyond three waiting tasks.
    capped: Option<Arc<dyn Store>>,
    /// What must live as long as the store: the Redis (or cluster) it runs on.
    _redis: Option<Box<dyn std::any::Any + Send + Sync>>,
}

/// The cap of `Subject::capped`.
const CAP: u64 = 3;

async fn memory(retention: Duration) -> Subject {
    Subject {
        store: Arc::new(MemoryStore::new(retention)),
        capped: Some(Arc::new(
            MemoryStore::new(retention).with_max_queued(Some(CAP)),
        )),
        _redis: None,
    }
}

async fn redis(retention: Duration) -> Subject {
    subscribed(redis_with(
        support::Redis::start(),
        "test:",
        "capped:",
        retention,
    ))
    .await
}

/// `subject` once its store's event subscription is up (the tests count the events they
/// see, and a subscription made in the background could miss the first ones).
async fn subscribed(subject: Subject) -> Subject {
    support::wait_until_async(Duration::from_secs(10), "the event subscription", || {
        let up = subject.store.subscribed();
        async move { up }
    })
    .await;
    subject
}

/// A one-node Redis Cluster with a prefix ending in a hash tag: Redis refuses any script
/// that touches a key outside the slot of its declared keys, so every test passing here
/// shows that each transition stays in one slot.
async fn redis_cluster_slot(retention: Duration) -> Subject {
    let redis = support::Redis::start_cluster_node();
    subscribed(redis_with(redis, "test:{q}", "capped:{c}", retention)).await
}

/// A store on a Redis Cluster of three masters, its queue in `shards` shards under
/// `prefix` (each test its own), and a capped one beside it.
fn redis_cluster(
    cluster: &Arc<support::RedisCluster>,
    prefix: &str,
    shards: usize,
    retention: Duration,
) -> Subject {
    let cluster_options = ClusterOptions {
        nodes: cluster.urls(),
        shards,
    };
    subject(
        String::new(),
        Some(cluster_options),
        (&format!("{prefix}:"), &format!("{prefix}-capped:")),
        retention,
        Box::new(Arc::clone(cluster)),
    )
}

fn redis_with(
    redis: support::Redis,
    prefix: &str,
    capped_prefix: &str,
    retention: Duration,
) -> Subject {
    subject(
        redis.url(),
        None,
        (prefix, capped_prefix),
        retention,
        Box::new(redis),
    )
}

/// A Redis store and a capped one beside it, under the two `prefixes`, on the Redis at
/// `url` or on `cluster`; `redis` is what must live as long as they do.
fn subject(
    url: String,
    cluster: Option<ClusterOptions>,
    (prefix, capped_prefix): (&str, &str),
    retention: Duration,
    redis: Box<dyn std::any::Any + Send + Sync>,
) -> Subject {
    let options = RedisOptions {
        url,
        prefix: prefix.into(),
        retention,
        connect_timeout: Duration::from_secs(2),
        command_timeout: Duration::from_secs(2),
        max_queued: None,
        outage_gap: Duration::from_secs(3600),
        reap_settle: Duration::ZERO,
        cluster,
        wait: None,
    };
    let capped = RedisOptions {
        prefix: capped_prefix.into(),
        max_queued: Some(CAP),
        ..options.clone()
    };
    let store = RedisStore::connect(options).expect("connect to the test redis");
    let capped = RedisStore::connect(capped).expect("connect to the test redis");
    Subject {
        store: Arc::new(store),
        capped: Some(Arc::new(capped)),
        _redis: Some(redis),
    }
}

fn task(name: &str, priority: u8) -> NewTask {
    NewTask {
        id: format!("{name}-{}", uuid::Uuid::new_v4()),
        description: name.to_owned(),
        priority,
        number1: 6,
        number2: 7,
        kind: "default".into(),
        payload: vec![0, 159, 255],
        idempotency_key: None,
        max_attempts: 3,
        delay: Duration::ZERO,
        trace_parent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned()),
    }
}

const LEASE: Duration = Duration::from_secs(30);

/// A fresh lease token.
fn token() -> String {
    uuid::Uuid::new_v4().to_string()
}
const NOW: RetryPlan = RetryPlan {
    delay: Duration::ZERO,
    permanent: false,
};

async fn submit(store: &dyn Store, task: NewTask) -> String {
    store.submit(vec![task]).await.expect("submit").remove(0).id
}

async fn priority_then_fifo(subject: Subject) {
    let store = subject.store.as_ref();
    let mut expected = Vec::new();
    let low1 = submit(store, task("low-1", 0)).await;
    let high1 = submit(store, task("high-1", 2)).await;
    let medium1 = submit(store, task("medium-1", 1)).await;
    let high2 = submit(store, task("high-2", 2)).await;
    let low2 = submit(store, task("low-2", 0)).await;
    expected.extend([high1, high2, medium1, low1, low2]);
    let mut order = Vec::new();
    while let Some(claim) = store.claim(&token(), LEASE).await.expect("claim") {
        assert_eq!(claim.task.state, TaskState::InProgress);
        assert_eq!(claim.task.attempt, 1);
        assert_eq!(claim.task.payload, vec![0, 159, 255]);
        assert_eq!(
            claim.task.trace_parent.as_deref(),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
        order.push(claim.task.id);
    }
    assert_eq!(order, expected);
}

async fn retries_then_dead_set(subject: Subject) {
    let store = subject.store.as_ref();
    let id = submit(
        store,
        NewTask {
            max_attempts: 2,
            ..task("flaky", 1)
        },
    )
    .await;
    let first = store
        .claim(&token(), LEASE)
        .await
        .expect("claim")
        .expect("a task");
    assert_eq!(
        store
            .fail(&id, &first.token, "boom 1", NOW)
            .await
            .expect("fail"),
        Finish::Retrying
    );
    let queued = store.get(&id).await.expect("get").expect("exists");
    assert_eq!(
        (queued.state, queued.attempt, queued.error.as_str()),
        (TaskState::Queued, 1, "boom 1")
    );

    let second = store
        .claim(&token(), LEASE)
        .await
        .expect("claim")
        .expect("retried");
    assert_eq!(second.task.attempt, 2);
    assert_eq!(
        store
            .fail(&id, &second.token, "boom 2", NOW)
            .await
            .expect("fail"),
        Finish::Done
    );
    let dead = store.get(&id).await.expect("get").expect("exists");
    assert_eq!(
        (dead.state, dead.attempt, dead.error.as_str()),
        (TaskState::Failed, 2, "boom 2")
    );
    assert!(store.claim(&token(), LEASE).await.expect("claim").is_none());

    let states: Vec<(u64, TaskState)> = store
        .events_after(&id, 0)
        .await
        .expect("events")
        .iter()
        .map(|e| (e.seq, e.state))
        .collect();
    assert_eq!(
        states,
        vec![
            (1, TaskState::Queued),
            (2, TaskState::InProgress),
            (3, TaskState::Queued),
            (4, TaskState::InProgress),
            (5, TaskState::Failed),
        ]
    );
}

async fn a_permanent_failure_skips_remaining_attempts(subject: Subject) {
    let store = subject.store.as_ref();
    let id = submit(store, task("doomed", 1)).await;
    let claim = store
        .claim(&token(), LEASE)
        .await
        .expect("claim")
        .expect("a task");
    let plan = RetryPlan {
        delay: Duration::ZERO,
        permanent: true,
    };
    assert_eq!(
        store
            .fail(&id, &claim.token, "bad input", plan)
            .await
            .expect("fail"),
        Finish::Done
    );
    let task = store.get(&id).await.expect("get").expect("exists");
    assert_eq!((task.state, task.attempt), (TaskState::Failed, 1));
}

async fn a_retry_waits_for_its_backoff(subject: Subject) {
    let store = subject.store.as_ref();
    let id = submit(store, task("later", 1)).await;
    let claim = store
        .claim(&token(), LEASE)
        .await
        .expect("claim")
        .expect("a task");
    let plan = RetryPlan {
        delay: Duration::from_millis(300),
        permanent: false,
    };
    assert_eq!(
        store
            .fail(&id, &claim.token, "busy", plan)
            .await
            .expect("fail"),
        Finish::Retrying
    );
    assert!(
        store.claim(&token(), LEASE).await.expect("claim").is_none(),
        "not runnable before its delay"
    );
    let promotion = store.promote_due(100).await.expect("promote");
    assert_eq!(promotion.moved, 0);
    assert!(
        promotion
            .next_due
            .is_some_and(|due| due <= Duration::from_millis(300))
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(store.promote_due(100).await.expect("promote").moved, 1);
    let retried = store
        .claim(&token(), LEASE)
        .await
        .expect("claim")
        .expect("runnable after its delay");
    assert_eq!((retried.task.id, retried.task.attempt), (id, 2));
}

async fn a_delayed_submission_starts_later(subject: Subject) {
    let store = subject.store.as_ref();
    let id = submit(
        store,
        NewTask {
            delay: Duration::from_millis(200),
            ..task("scheduled", 2)
        },
    )
    .await;
    assert_eq!(
        store.get(&id).await.expect("get").expect("exists").state,
        TaskState::Queued
    );
    assert!(store.claim(&token(), LEASE).await.expect("claim").is_none());
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(store.promote_due(100).await.expect("promote").moved, 1);
    assert!(store.claim(&token(), LEASE).await.expect("claim").is_some());
}

async fn idempotency_keys_deduplicate(subject: Subject) {
    let store = subject.store.as_ref();
    let keyed = |name: &str| NewTask {
        idempotency_key: Some("order-42".into()),
        ..task(name, 1)
    };
    let first = store
        .submit(vec![keyed("a")])
        .await
        .expect("submit")
        .remove(0);
    assert!(!first.deduplicated);
    let again = store
        .submit(vec![keyed("b"), keyed("c"), task("d", 1)])
        .await
        .expect("submit");
    assert_eq!(again[0].id, first.id);
    assert_eq!(again[1].id, first.id);
    assert!(again[0].deduplicated && again[1].deduplicated && !again[2].deduplicated);
    // Only two tasks exist: the first keyed one and "d".
    let mut claimed = 0;
    while store.claim(&token(), LEASE).await.expect("claim").is_some() {
        claimed += 1;
    }
    assert_eq!(claimed, 2);
}

async fn cancelling_a_queued_task(subject: Subject) {
    let store = subject.store.as_ref();
    let id = submit(store, task("unwanted", 1)).await;
    assert_eq!(
        store.cancel(&id, "not needed").await.expect("cancel"),
        CancelOutcome::Cancelled
    );
    assert!(store.claim(&token(), LEASE).await.expect("claim").is_none());
    let task = store.get(&id).await.expect("get").expect("exists");
    assert_eq!(
        (task.state, task.error.as_str()),
        (TaskState::Cancelled, "not needed")
    );
    assert_eq!(
        store.cancel(&id, "again").await.expect("cancel"),
        CancelOutcome::AlreadyFinished(TaskState::Cancelled)
    );
    assert_eq!(
        store.cancel("no-such-task", "x").await.expect("cancel"),
        CancelOutcome::NotFound
    );
}

async fn cancelling_a_running_task(subject: Subject) {
    let store = subject.store.as_ref();
    let mut notices = store.notices();
    let id = submit(store, task("long", 1)).await;
    let claim = store
        .claim(&token(), LEASE)
        .await
        .expect("claim")
        .expect("a task");
    assert_eq!(
        store.cancel(&id, "stop it").await.expect("cancel"),
        CancelOutcome::Requested
    );
    let notice = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match notices.recv().await {
                Ok(Notice::Cancel { task_id, token }) => return (task_id, token),
                Ok(_) => continue,
                Err(error) => panic!("notices closed: {error}"),
            }
        }
    })
    .await
    .expect("a cancel notice");
    assert_eq!(notice, (id.clone(), claim.token.clone()));
    assert_eq!(
        store.renew(&id, &claim.token, LEASE).await.expect("renew"),
        Renewal::CancelRequested
    );
    assert_eq!(
        store
            .finish_cancelled(&id, &claim.token, "stop it")
            .await
            .expect("finish"),
        Finish::Done
    );
    assert_eq!(
        store.get(&id).await.expect("get").expect("exists").state,
        TaskState::Cancelled
    );
}

async fn terminal_tasks_expire_after_the_retention(subject: Subject) {
    let store = subject.store.as_ref();
    let keyed = NewTask {
        idempotency_key: Some("once".into()),
        ..task("short-lived", 1)
    };
    let id = submit(store, keyed.clone()).await;
    let pending = submit(store, task("still-pending", 0)).await;
    let claim = store
        .claim(&token(), LEASE)
        .await
        .expect("claim")
        .expect("a task");
    assert_eq!(claim.task.id, id);
    store
        .complete(&id, &claim.token, "42")
        .await
        .expect("complete");
    assert_eq!(
        store.get(&id).await.expect("get").expect("kept").result,
        "42"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    store.trim_dead().await.expect("trim");
    assert!(
        store.get(&id).await.expect("get").is_none(),
        "expired after the retention"
    );
    assert!(store.events_after(&id, 0).await.expect("events").is_empty());
    assert!(
        store.get(&pending).await.expect("get").is_some(),
        "pending tasks never expire"
    );
    // The idempotency key expired with its task.
    let again = store
        .submit(vec![NewTask {
            id: "fresh".into(),
            ..keyed
        }])
        .await
        .expect("submit");
    assert_eq!(
        (again[0].id.as_str(), again[0].deduplicated),
        ("fresh", false)
    );
}

async fn expired_leases_are_reaped(subject: Subject) {
    let store = subject.store.as_ref();
    let short = Duration::from_millis(150);
    let retried = submit(
        store,
        NewTask {
            max_attempts: 2,
            ..task("orphan", 2)
        },
    )
    .await;
    let last_try = submit(
        store,
        NewTask {
            max_attempts: 1,
            ..task("last-try", 1)
        },
    )
    .await;
    let first = store
        .claim(&token(), short)
        .await
        .expect("claim")
        .expect("a task");
    let second = store
        .claim(&token(), short)
        .await
        .expect("claim")
        .expect("a task");
    assert_eq!(
        (first.task.id.as_str(), second.task.id.as_str()),
        (retried.as_str(), last_try.as_str())
    );
    assert_eq!(
        store.reap_expired(100).await.expect("reap"),
        0,
        "leases still valid"
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(store.reap_expired(100).await.expect("reap"), 2);

    let back = store.get(&retried).await.expect("get").expect("exists");
    assert_eq!(back.state, TaskState::Queued);
    assert!(back.error.contains("lease expired"), "{}", back.error);
    let dead = store.get(&last_try).await.expect("get").expect("exists");
    assert_eq!(dead.state, TaskState::Failed);
    assert!(dead.error.contains("last attempt"), "{}", dead.error);

    // A renewal by the worker that lost its lease fails; the task runs again elsewhere.
    assert_eq!(
        store
            .renew(&retried, &first.token, LEASE)
            .await
            .expect("renew"),
        Renewal::Lost
    );
    let again = store
        .claim(&token(), LEASE)
        .await
        .expect("claim")
        .expect("requeued");
    assert_eq!(
        (again.task.id.as_str(), again.task.attempt),
        (retried.as_str(), 2)
    );
}

async fn a_stale_completion_is_rejected(subject: Subject) {
    let store = subject.store.as_ref();
    let id = submit(store, task("contested", 1)).await;
    let stale = store
        .claim(&token(), Duration::from_millis(100))
        .await
        .expect("claim")
        .expect("a task");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(store.reap_expired(100).await.expect("reap"), 1);
    let fresh = store
        .claim(&token(), LEASE)
        .await
        .expect("claim")
        .expect("requeued");
    assert_eq!(
        store
            .complete(&id, &stale.token, "stale")
            .await
            .expect("complete"),
        Finish::Stale
    );
    assert!(
        !store
            .progress(&id, &stale.token, 50)
            .await
            .expect("progress")
    );
    assert_eq!(
        store.fail(&id, &stale.token, "x", NOW).await.expect("fail"),
        Finish::Stale
    );
    assert_eq!(
        store
            .complete(&id, &fresh.token, "fresh")
            .await
            .expect("complete"),
        Finish::Done
    );
    let task = store.get(&id).await.expect("get").expect("exists");
    assert_eq!(
        (task.state, task.result.as_str()),
        (TaskState::Completed, "fresh")
    );
    assert_eq!(
        store
            .complete(&id, &fresh.token, "twice")
            .await
            .expect("complete"),
        Finish::Stale
    );
}

async fn release_hands_a_task_back_without_spending_an_attempt(subject: Subject) {
    let store = subject.store.as_ref();
    let older = submit(store, task("older", 1)).await;
    let running = store
        .claim(&token(), LEASE)
        .await
        .expect("claim")
        .expect("a task");
    assert_eq!(running.task.id, older);
    let _newer = submit(store, task("newer", 1)).await;
    assert_eq!(
        store
            .release(&older, &running.token)
            .await
            .expect("release"),
        Finish::Done
    );
    let again = store
        .claim(&token(), LEASE)
        .await
        .expect("claim")
        .expect("a task");
    assert_eq!(
        (again.task.id.as_str(), again.task.attempt),
        (older.as_str(), 1)
    );
}

async fn tasks_handed_back_keep_their_place_in_the_queue(subject: Subject) {
    let store = subject.store.as_ref();
    let first = submit(store, task("first", 1)).await;
    let second = submit(store, task("second", 1)).await;
    let third = submit(store, task("third", 1)).await;
    let a = store
        .claim(&token(), LEASE)
        .await
        .expect("claim")
        .expect("a task");
    let b = store
        .claim(&token(), LEASE)
        .await
        .expect("claim")
        .expect("a task");
    assert_eq!(
        (a.task.id.as_str(), b.task.id.as_str()),
        (first.as_str(), second.as_str())
    );
    // Handed back in the reverse order, as a shutdown may do.
    for claim in [&b, &a] {
        assert_eq!(
            store
                .release(&claim.task.id, &claim.token)
                .await
                .expect("release"),
            Finish::Done
        );
    }
    let mut order = Vec::new();
    while let Some(claim) = store.claim(&token(), LEASE).await.expect("claim") {
        order.push(claim.task.id);
    }
    assert_eq!(order, vec![first, second, third], "first in, first out");
}

async fn a_claim_whose_answer_was_lost_is_handed_back(subject: Subject) {
    let store = subject.store.as_ref();
    let older = submit(store, task("older", 1)).await;
    let _newer = submit(store, task("newer", 1)).await;
    // The claim happened, but its answer never reached the worker: it only knows the token.
    let lost = token();
    let claimed = store
        .claim(&lost, LEASE)
        .await
        .expect("claim")
        .expect("a task");
    assert_eq!(claimed.task.id, older);
    assert!(store.unclaim(&lost).await.expect("unclaim"));
    let task = store.get(&older).await.expect("get").expect("exists");
    assert_eq!((task.state, task.attempt), (TaskState::Queued, 0));
    // Only once, and never for a token that claimed nothing.
    assert!(!store.unclaim(&lost).await.expect("unclaim"));
    assert!(!store.unclaim(&token()).await.expect("unclaim"));
    // The task kept its place and its attempts.
    let again = store
        .claim(&token(), LEASE)
        .await
        .expect("claim")
        .expect("a task");
    assert_eq!(
        (again.task.id.as_str(), again.task.attempt),
        (older.as_str(), 1)
    );
    // A token whose task completed hands nothing back.
    assert_eq!(
        store
            .complete(&older, &again.token, "done")
            .await
            .expect("complete"),
        Finish::Done
    );
    assert!(!store.unclaim(&again.token).await.expect("unclaim"));
}

/// Completing may claim the next task in the same step; where the store does not, the next
/// claim takes it. Either way the order holds, and a rejected completion claims nothing.
async fn completing_can_claim_the_next_task(subject: Subject) {
    let store = subject.store.as_ref();
    let first = submit(store, task("first", 2)).await;
    let second = submit(store, task("second", 1)).await;
    let third = submit(store, task("third", 0)).await;
    let claimed = store
        .claim(&token(), LEASE)
        .await
        .expect("claim")
        .expect("a task");
    assert_eq!(claimed.task.id, first);
    let next_token = token();
    let (finish, next) = store
        .complete_and_claim(&first, &claimed.token, "done", &next_token, LEASE)
        .await
        .expect("complete and claim");
    assert_eq!(finish, Finish::Done);
    let done = store.get(&first).await.expect("get").expect("exists");
    assert_eq!(
        (done.state, done.result.as_str()),
        (TaskState::Completed, "done")
    );
    let next = match next {
        Some(next) => {
            assert_eq!(next.token, next_token);
            next
        }
        None => store
            .claim(&token(), LEASE)
            .await
            .expect("claim")
            .expect("a task"),
    };
    assert_eq!(
        (next.task.id.as_str(), next.task.attempt),
        (second.as_str(), 1)
    );
    let running = store.get(&second).await.expect("get").expect("exists");
    assert_eq!(running.state, TaskState::InProgress);

    // A completion that no longer holds the lease is rejected and claims nothing.
    let (finish, none) = store
        .complete_and_claim(&first, &claimed.token, "again", &token(), LEASE)
        .await
        .expect("complete and claim");
    assert_eq!(finish, Finish::Stale);
    assert!(none.is_none());
    let waiting = store.get(&third).await.expect("get").expect("exists");
    assert_eq!(waiting.state, TaskState::Queued);
    let events = store.events_after(&first, 0).await.expect("events");
    let states: Vec<TaskState> = events.iter().map(|event| event.state).collect();
    assert_eq!(
        states,
        [
            TaskState::Queued,
            TaskState::InProgress,
            TaskState::Completed
        ]
    );
}

async fn a_cap_on_waiting_tasks_refuses_whole_submissions(subject: Subject) {
    let store = subject.capped.as_deref().expect("a capped store");
    submit(store, task("one", 1)).await;
    let delayed = NewTask {
        delay: Duration::from_secs(60),
        ..task("two", 1)
    };
    store.submit(vec![delayed]).await.expect("under the cap");
    let refused = store
        .submit(vec![task("three", 1), task("four", 1)])
        .await
        .expect_err("over the cap");
    assert!(
        matches!(&refused, StoreError::Full(message) if message.contains("max_queued_tasks")),
        "{refused:?}"
    );
    store
        .submit(vec![task("three", 1)])
        .await
        .expect("up to the cap");
    let running = store
        .claim(&token(), LEASE)
        .await
        .expect("claim")
        .expect("a task");
    // A running task does not wait: its place is free.
    store
        .submit(vec![task("four", 1)])
        .await
        .expect("room again");
    assert_eq!(running.task.description, "one");
}

async fn progress_and_events_are_sequenced(subject: Subject) {
    let store = subject.store.as_ref();
    let mut notices = store.notices();
    let id = submit(store, task("steps", 1)).await;
    // Streamed from here on: the task's events reach this process's notices.
    let history = store.watch_events(&id, 0).await.expect("watch");
    assert_eq!(history.len(), 1, "the first event is in the history");
    let claim = store
        .claim(&token(), LEASE)
        .await
        .expect("claim")
        .expect("a task");
    for percent in [30, 60, 90] {
        assert!(
            store
                .progress(&id, &claim.token, percent)
                .await
                .expect("progress")
        );
    }
    store
        .complete(&id, &claim.token, "done")
        .await
        .expect("complete");
    let events = store.events_after(&id, 0).await.expect("events");
    let summary: Vec<(u64, TaskState, u32)> = events
        .iter()
        .map(|e| (e.seq, e.state, e.progress))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, TaskState::Queued, 0),
            (2, TaskState::InProgress, 0),
            (3, TaskState::InProgress, 30),
            (4, TaskState::InProgress, 60),
            (5, TaskState::InProgress, 90),
            (6, TaskState::Completed, 100),
        ]
    );
    assert_eq!(events[5].result, "done");
    assert_eq!(store.events_after(&id, 4).await.expect("events").len(), 2);
    // The same events reach every subscriber, in order. The first is only recorded: no
    // stream can watch a task before its submission is answered; its wake-up is published.
    let mut seen = Vec::new();
    let mut woken = 0;
    tokio::time::timeout(Duration::from_secs(5), async {
        while seen.len() < 5 {
            match notices.recv().await {
                Ok(Notice::Event(event)) if event.id == id => seen.push(event.seq),
                Ok(Notice::Wake(count)) => woken += count,
                _ => {}
            }
        }
    })
    .await
    .expect("every later event is published");
    assert_eq!(seen, vec![2, 3, 4, 5, 6]);
    assert_eq!(woken, 1, "the submission woke one worker per server");
}

/// A result or an error reaches the history and the streams exactly as the handler wrote
/// it, whatever characters it holds: quotes, backslashes, control characters, line and
/// paragraph separators, other scripts.
async fn results_and_errors_keep_every_character(subject: Subject) {
    let store = subject.store.as_ref();
    let mut notices = store.notices();
    let awkward = "\"quoted\" \\ back\\slash\n\r\t\u{0}\u{1f}\u{7f} \u{2028}\u{2029}\u{85} /\
        é 数 🦀 {\"json\":[1]} ]}";
    let id = submit(store, task("awkward", 1)).await;
    store.watch_events(&id, 0).await.expect("watch");
    let claim = store
        .claim(&token(), LEASE)
        .await
        .expect("claim")
        .expect("a task");
    store
        .fail(&id, &claim.token, awkward, NOW)
        .await
        .expect("fail");
    let claim = store
        .claim(&token(), LEASE)
        .await
        .expect("claim")
        .expect("the retry");
    assert_eq!(
        claim.task.error, awkward,
        "the claim reads the last error back"
    );
    store
        .complete(&id, &claim.token, awkward)
        .await
        .expect("complete");
    let events = store.events_after(&id, 0).await.expect("events");
    let last = events.last().expect("events");
    assert_eq!(last.state, TaskState::Completed);
    assert_eq!(last.result, awkward);
    assert_eq!(events[2].error, awkward, "the failure's event");
    let record = store.get(&id).await.expect("get").expect("the task");
    assert_eq!(record.result, awkward);
    let mut streamed = None;
    tokio::time::timeout(Duration::from_secs(5), async {
        while streamed.is_none() {
            if let Ok(Notice::Event(event)) = notices.recv().await
                && event.id == id
                && event.state == TaskState::Completed
            {
                streamed = Some(event);
            }
        }
    })
    .await
    .expect("the completion is published");
    assert_eq!(streamed.expect("the completion").result, awkward);
}

/// Calls that arrive together (the Redis store sends them to Redis in batches) each get
/// their own answer, as if each had run alone: every submission its ids (a key seen twice
/// deduplicated), every claim a different task in priority-then-FIFO order, every
/// completion its verdict and its own next task, a stale one rejected among good ones.
async fn calls_that_arrive_together_each_get_their_own_answer(subject: Subject) {
    let store = subject.store.clone();
    // Connected first: a cluster connection being made fails the calls that come meanwhile.
    store.ping().await.expect("ping");
    let submissions = (0..60u8).map(|n| {
        let store = store.clone();
        async move {
            let mut first = task(&format!("t{n}"), n % 3);
            if n % 30 == 0 {
                first.idempotency_key = Some("together".into());
            }
            let second = task(&format!("t{n}b"), n % 3);
            let answer = store.submit(vec![first, second]).await.expect("submit");
            (n, answer)
        }
    });
    let answers = futures_util::future::join_all(submissions).await;
    let mut keyed = Vec::new();
    for (n, answer) in &answers {
        assert_eq!(answer.len(), 2, "submission {n}");
        assert!(!answer[1].deduplicated);
        if n % 30 == 0 {
            keyed.push((answer[0].id.clone(), answer[0].deduplicated));
        } else {
            assert!(!answer[0].deduplicated);
        }
    }
    assert_eq!(keyed.iter().filter(|(_, dup)| !dup).count(), 1, "{keyed:?}");
    assert!(keyed.iter().all(|(id, _)| *id == keyed[0].0), "{keyed:?}");
    let queued = 60 * 2 - 1;

    // Claims together: distinct tasks, and the first ones of the queue.
    let claims = futures_util::future::join_all((0..40).map(|_| {
        let store = store.clone();
        async move { store.claim(&token(), LEASE).await.expect("claim") }
    }))
    .await;
    let claims: Vec<_> = claims.into_iter().map(|c| c.expect("a task")).collect();
    let mut ids: Vec<&str> = claims.iter().map(|c| c.task.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 40, "no task is claimed twice");
    // 40 HIGH tasks were queued (n % 3 == 2 gives 20 submissions of two), so 40 claims
    // take exactly those.
    assert!(
        claims.iter().all(|c| c.task.priority == 2),
        "highest priority first"
    );

    // Completions together, each claiming the next; one of them stale.
    let completions = futures_util::future::join_all(claims.iter().enumerate().map(|(i, c)| {
        let store = store.clone();
        let token = if i == 7 {
            "not-the-token".to_owned()
        } else {
            c.token.clone()
        };
        let id = c.task.id.clone();
        async move {
            let next = uuid::Uuid::new_v4().to_string();
            let outcome = store
                .complete_and_claim(&id, &token, &format!("r{i}"), &next, LEASE)
                .await
                .expect("complete");
            (i, id, next, outcome)
        }
    }))
    .await;
    let mut next_ids = Vec::new();
    for (i, id, next, (finish, claim)) in &completions {
        let record = store.get(id).await.expect("get").expect("exists");
        if *i == 7 {
            assert_eq!(*finish, Finish::Stale);
            assert!(claim.is_none(), "a rejected completion claims nothing");
            assert_eq!(record.state, TaskState::InProgress);
        } else {
            assert_eq!(*finish, Finish::Done);
            assert_eq!(
                (record.state, record.result.as_str()),
                (TaskState::Completed, &*format!("r{i}"))
            );
            if let Some(claim) = claim {
                assert_eq!(
                    &claim.token, next,
                    "each next task is leased to its own token"
                );
                next_ids.push(claim.task.id.clone());
            }
        }
    }
    let claimed_next = next_ids.len();
    next_ids.sort_unstable();
    next_ids.dedup();
    assert_eq!(
        next_ids.len(),
        claimed_next,
        "no next task is claimed twice"
    );
    let depths = store.depths().await.expect("depths");
    let waiting: u64 = depths.pending.iter().sum();
    assert_eq!(
        waiting + depths.leased,
        queued as u64 - 39,
        "every task not completed is waiting or running: {depths:?}"
    );
}

async fn unknown_tasks_are_absent(subject: Subject) {
    let store = subject.store.as_ref();
    assert!(store.get("missing").await.expect("get").is_none());
    assert!(
        store
            .events_after("missing", 0)
            .await
            .expect("events")
            .is_empty()
    );
    assert_eq!(
        store.renew("missing", "token", LEASE).await.expect("renew"),
        Renewal::Lost
    );
    store.ping().await.expect("ping");
}

async fn depths_count_each_place_and_claims_say_how_long_they_waited(subject: Subject) {
    let store = subject.store.as_ref();
    for (name, priority) in [
        ("l1", 0),
        ("l2", 0),
        ("m1", 1),
        ("h1", 2),
        ("h2", 2),
        ("h3", 2),
    ] {
        submit(store, task(name, priority)).await;
    }
    submit(
        store,
        NewTask {
            delay: Duration::from_secs(3600),
            ..task("later", 1)
        },
    )
    .await;
    let depths = store.depths().await.expect("depths");
    assert_eq!(
        (depths.pending, depths.delayed, depths.leased, depths.dead),
        ([2, 1, 3], 1, 0, 0)
    );

    // A lower bound only: the claim comes at least this long after the submission.
    let queued_for = Duration::from_millis(100);
    tokio::time::sleep(queued_for).await;
    let claim = store
        .claim(&token(), LEASE)
        .await
        .expect("claim")
        .expect("a task");
    assert_eq!(claim.task.priority, 2);
    let waited = claim.waited.expect("a claim says how long its task waited");
    assert!(
        waited >= queued_for - Duration::from_millis(5),
        "waited {waited:?}"
    );
    let depths = store.depths().await.expect("depths");
    assert_eq!((depths.pending, depths.leased), ([2, 1, 2], 1));

    let plan = RetryPlan {
        delay: Duration::ZERO,
        permanent: true,
    };
    store
        .fail(&claim.task.id, &claim.token, "for good", plan)
        .await
        .expect("fail");
    let depths = store.depths().await.expect("depths");
    assert_eq!((depths.leased, depths.dead), (0, 1));
}

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod memory_store {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(memory(Duration::from_millis(500)).await).await;
                }
            )*
        }
        mod redis_store {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(redis(Duration::from_millis(500)).await).await;
                }
            )*
        }
        /// The whole suite on one Redis Cluster of three masters, the queue in one shard
        /// (ordering across shards is the subject of its own tests), each test under its
        /// own prefix: the cluster client, sharded pub/sub and the slot discipline.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn on_a_redis_cluster() {
            let cluster = Arc::new(support::RedisCluster::start(3, 0));
            $(
                $test(subscribed(redis_cluster(
                    &cluster,
                    stringify!($test),
                    1,
                    Duration::from_millis(500),
                )).await)
                .await;
            )*
        }
        mod redis_cluster_slot {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(redis_cluster_slot(Duration::from_millis(500)).await).await;
                }
            )*
        }
    };
}

conformance!(
    priority_then_fifo,
    retries_then_dead_set,
    a_permanent_failure_skips_remaining_attempts,
    a_retry_waits_for_its_backoff,
    a_delayed_submission_starts_later,
    idempotency_keys_deduplicate,
    cancelling_a_queued_task,
    cancelling_a_running_task,
    terminal_tasks_expire_after_the_retention,
    expired_leases_are_reaped,
    a_stale_completion_is_rejected,
    release_hands_a_task_back_without_spending_an_attempt,
    tasks_handed_back_keep_their_place_in_the_queue,
    a_claim_whose_answer_was_lost_is_handed_back,
    completing_can_claim_the_next_task,
    a_cap_on_waiting_tasks_refuses_whole_submissions,
    progress_and_events_are_sequenced,
    results_and_errors_keep_every_character,
    calls_that_arrive_together_each_get_their_own_answer,
    unknown_tasks_are_absent,
    depths_count_each_place_and_claims_say_how_long_they_waited,
);

/// The one-node cluster above would prove nothing if Redis let a script leave its slot. It
/// does not: a script that writes a key outside the slot of its declared ones is refused,
/// and so is a call whose declared keys are in several slots (a prefix without a hash tag).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_node_refuses_keys_of_another_slot() {
    let redis = support::Redis::start_cluster_node();
    let script = "#!lua\nredis.call('SET', KEYS[1], 1)\nredis.call('SET', 'elsewhere', 1)\n";
    let answer = redis.query(&["EVAL", script, "1", "{q}declared"]);
    assert!(
        answer.contains("do not hash to the same slot"),
        "an undeclared key of another slot: {answer}"
    );
    let subject = redis_with(redis, "test:", "capped:", Duration::from_millis(500));
    let error = subject
        .store
        .submit(vec![task("untagged", 1)])
        .await
        .expect_err("cross-slot keys are refused");
    let message = error.to_string();
    assert!(
        message.contains("hash to the same slot"),
        "declared keys in several slots: {message}"
    );
}

/// The queue in six shards on three masters: the tasks spread over every master, each is
/// found by its id, an idempotency key finds its task whichever call and position submitted
/// it, a claim whose answer was lost is handed back whichever shard it was on, and every
/// task is claimed exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_spread_over_a_cluster() {
    let cluster = Arc::new(support::RedisCluster::start(3, 0));
    let subject = redis_cluster(&cluster, "spread", 6, Duration::from_secs(60));
    let store = subject.store.as_ref();
    let mut ids = Vec::new();
    for batch in 0..12 {
        let tasks = (0..5)
            .map(|i| task(&format!("t{batch}-{i}"), i % 3))
            .collect();
        let submitted = store.submit(tasks).await.expect("submit");
        assert!(submitted.iter().all(|s| !s.deduplicated));
        ids.extend(submitted.into_iter().map(|s| s.id));
    }
    for node in &cluster.nodes {
        let keys: u64 = node
            .query(&["DBSIZE"])
            .trim_start_matches(':')
            .trim()
            .parse()
            .expect("DBSIZE");
        assert!(keys > 0, "every master holds some of the queue");
    }
    let depths = store.depths().await.expect("depths");
    assert_eq!(depths.pending.iter().sum::<u64>(), 60);
    for id in &ids {
        assert!(store.get(id).await.expect("get").is_some(), "{id} is found");
    }

    let keyed = |name: &str, key: &str| NewTask {
        idempotency_key: Some(key.to_owned()),
        ..task(name, 1)
    };
    let first = store
        .submit(vec![keyed("a", "key-1")])
        .await
        .expect("submit");
    let again = store
        .submit(vec![task("b", 1), keyed("c", "key-2"), keyed("d", "key-1")])
        .await
        .expect("submit");
    assert_eq!(
        (again[2].id.as_str(), again[2].deduplicated),
        (first[0].id.as_str(), true)
    );
    assert!(!again[0].deduplicated && !again[1].deduplicated);

    let lost = token();
    let claimed = store
        .claim(&lost, LEASE)
        .await
        .expect("claim")
        .expect("a task");
    assert!(store.unclaim(&lost).await.expect("unclaim"), "handed back");
    let back = store
        .get(&claimed.task.id)
        .await
        .expect("get")
        .expect("task");
    assert_eq!((back.state, back.attempt), (TaskState::Queued, 0));

    let mut seen = std::collections::BTreeSet::new();
    while let Some(claim) = store.claim(&token(), LEASE).await.expect("claim") {
        assert!(
            seen.insert(claim.task.id.clone()),
            "claimed once: {}",
            claim.task.id
        );
    }
    assert_eq!(seen.len(), 63, "every task is claimed");
    let depths = store.depths().await.expect("depths");
    assert_eq!((depths.pending.iter().sum::<u64>(), depths.leased), (0, 63));
}

/// On one Redis the next claim happens in the completion's own script, and a claim whose
/// answer was lost there is handed back by its token like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_completion_claims_the_next_task_in_the_same_step() {
    let subject = redis(Duration::from_millis(500)).await;
    let store = subject.store.as_ref();
    let first = submit(store, task("first", 1)).await;
    let second = submit(store, task("second", 1)).await;
    let claimed = store
        .claim(&token(), LEASE)
        .await
        .expect("claim")
        .expect("a task");
    let next_token = token();
    let (finish, next) = store
        .complete_and_claim(&first, &claimed.token, "done", &next_token, LEASE)
        .await
        .expect("complete and claim");
    assert_eq!(finish, Finish::Done);
    let next = next.expect("claimed in the same step");
    assert_eq!(next.task.id, second);
    assert!(
        next.waited.is_some(),
        "the claim says how long the task waited"
    );
    // As if that answer had been lost: the worker hands back what its token holds.
    assert!(store.unclaim(&next_token).await.expect("unclaim"));
    let task = store.get(&second).await.expect("get").expect("exists");
    assert_eq!((task.state, task.attempt), (TaskState::Queued, 0));
    // With nothing left to run, the completion claims nothing.
    let again = store
        .claim(&token(), LEASE)
        .await
        .expect("claim")
        .expect("a task");
    let (finish, none) = store
        .complete_and_claim(&second, &again.token, "done", &token(), LEASE)
        .await
        .expect("complete and claim");
    assert_eq!((finish, none.is_none()), (Finish::Done, true));
}

/// Events go to the servers that stream their task: each server receives the events of its
/// own streams and not those of the others', so what a server decodes does not grow with the
/// number of servers. (Events that wake workers, and notices, still reach every server.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_receives_the_events_of_the_tasks_it_streams() {
    let redis = support::Redis::start();
    let options = RedisOptions {
        url: redis.url(),
        prefix: "routed:".into(),
        retention: Duration::from_secs(60),
        connect_timeout: Duration::from_secs(2),
        command_timeout: Duration::from_secs(2),
        max_queued: None,
        outage_gap: Duration::from_secs(3600),
        reap_settle: Duration::ZERO,
        cluster: None,
        wait: None,
    };
    let a = RedisStore::connect(options.clone()).expect("connect");
    let b = RedisStore::connect(options).expect("connect");
    support::wait_until_async(Duration::from_secs(10), "both subscriptions", || {
        let up = a.subscribed() && b.subscribed();
        async move { up }
    })
    .await;
    let (mut heard_by_a, mut heard_by_b) = (a.notices(), b.notices());
    // The submitting server is the first to stream a task; another registers by watching.
    let one = submit(&a, task("one", 1)).await;
    let two = submit(&b, task("two", 1)).await;
    let both = submit(&a, task("both", 1)).await;
    a.watch_events(&one, 0).await.expect("watch");
    b.watch_events(&two, 0).await.expect("watch");
    let history = b.watch_events(&both, 0).await.expect("watch");
    assert_eq!(history.len(), 1, "the history so far");
    // Run in order; the last task's completion, heard by both, comes after every other event.
    for _ in 0..3 {
        let claim = b
            .claim(&token(), LEASE)
            .await
            .expect("claim")
            .expect("a task");
        let finish = b
            .complete(&claim.task.id, &claim.token, "ok")
            .await
            .expect("complete");
        assert_eq!(finish, Finish::Done);
    }
    async fn events_until_done(
        notices: &mut tokio::sync::broadcast::Receiver<Notice>,
        last: &str,
    ) -> Vec<(String, TaskState)> {
        let mut heard = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Ok(Notice::Event(event)) = notices.recv().await {
                    heard.push((event.id.clone(), event.state));
                    if event.id == last && event.state == TaskState::Completed {
                        return;
                    }
                }
            }
        })
        .await
        .expect("the last completion is heard");
        heard
    }
    let expect = |id: &str| {
        vec![
            (id.to_owned(), TaskState::InProgress),
            (id.to_owned(), TaskState::Completed),
        ]
    };
    let heard = events_until_done(&mut heard_by_a, &both).await;
    assert_eq!(heard, [expect(&one), expect(&both)].concat());
    let heard = events_until_done(&mut heard_by_b, &both).await;
    assert_eq!(heard, [expect(&two), expect(&both)].concat());
}

/// A task whose hash cannot be read fails its own claim and no other: claims batched with it
/// get their tasks, and its claimer hands it back by its token like any lost claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_cannot_be_read_fails_only_its_own_claim() {
    let redis = support::Redis::start();
    let subject = subscribed(redis_with(redis, "test:", "capped:", LEASE)).await;
    let store = subject.store.clone();
    let mut ids = Vec::new();
    for n in 0..20 {
        ids.push(submit(store.as_ref(), task(&format!("t{n}"), 1)).await);
    }
    let url = subject
        ._redis
        .as_ref()
        .and_then(|redis| redis.downcast_ref::<support::Redis>())
        .expect("the test redis")
        .url();
    let mut conn = redis::Client::open(url)
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let broken = &ids[9];
    let _: () = redis::cmd("HSET")
        .arg(format!("test:task:{broken}"))
        .arg("priority")
        .arg("not a number")
        .query_async(&mut conn)
        .await
        .expect("break a task");
    let claims = futures_util::future::join_all((0..20).map(|_| {
        let store = store.clone();
        async move {
            let token = token();
            (store.claim(&token, LEASE).await, token)
        }
    }))
    .await;
    let mut claimed = Vec::new();
    let mut failed = Vec::new();
    for (claim, token) in claims {
        match claim {
            Ok(Some(claim)) => claimed.push(claim.task.id),
            Ok(None) => panic!("twenty tasks for twenty claims"),
            Err(StoreError::Corrupt(_)) => failed.push(token),
            Err(error) => panic!("unexpected: {error}"),
        }
    }
    assert_eq!((claimed.len(), failed.len()), (19, 1), "{claimed:?}");
    assert!(!claimed.contains(broken));
    // Its claimer hands it back; nothing is left in no place.
    assert!(store.unclaim(&failed[0]).await.expect("unclaim"));
    let depths = store.depths().await.expect("depths");
    assert_eq!((depths.pending.iter().sum::<u64>(), depths.leased), (1, 19));
}
