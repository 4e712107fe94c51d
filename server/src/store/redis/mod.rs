//! The Redis store: every transition is one Lua script (see `lua/common.lua` for the keys).
//! Every script declares the queue's keys ([`QUEUE_KEYS`]) and builds the keys of the tasks
//! it works on from the same prefix, so that on a Redis Cluster a prefix ending in a hash
//! tag keeps every key a script touches in one slot.
//!
//! Connections are made lazily and remade when they stop answering: the store can be created
//! while Redis is unreachable, and a half-open connection (a peer that vanished without a
//! reset) is replaced once a PING through it times out. The event subscription is checked
//! the same way, and every (re)subscription announces `Resync` so that streams and workers
//! re-read what they may have missed.
//!
//! The Redis store, whole: connections, the scripts' calls and the decoding of their
//! replies, kept together because each transition's call and reply are read side by side.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Client, FromRedisValue, RedisError, Script, ScriptInvocation, Value};
use tokio::sync::broadcast;
use tracing::warn;

use super::{
    CancelOutcome, Claim, Depths, Finish, Promotion, Renewal, Result, RetryPlan, Store, StoreError,
};
use crate::task::{NewTask, Notice, Submitted, TaskEvent, TaskRecord, TaskState};

mod batch;
mod conn;
mod shards;
mod subscribe;

use self::batch::{Batcher, Orphan};
use self::conn::{Conn, Link};
use self::shards::{Shard, Shards};

/// A script that creates work: refused at its start when Redis is out of memory, so that a
/// full Redis answers submissions with an error and never half-runs a script.
const DENY_OOM: &str = "#!lua\n";
/// A script that finishes, moves or drains work: allowed when Redis is out of memory, so that
/// a full Redis still lets running tasks finish and frees memory as they expire.
const ALLOW_OOM: &str = "#!lua flags=allow-oom\n";
/// A script that only reads: runs whatever the memory, and on a replica.
const READ_ONLY: &str = "#!lua flags=no-writes,allow-oom\n";

/// A script: its flags, the command that publishes events, the shared helpers, its body.
macro_rules! script {
    ($publish:expr, $flags:expr, $file:literal) => {
        Script::new(&format!(
            "{}local PUBLISH = '{}'\n{}{}",
            $flags,
            $publish,
            include_str!("lua/common.lua"),
            include_str!($file)
        ))
    };
}

/// The Lua scripts, loaded once.
struct Scripts {
    submit: Script,
    claim: Script,
    renew: Script,
    progress: Script,
    complete_claim: Script,
    fail: Script,
    cancelled: Script,
    release: Script,
    unclaim: Script,
    watch: Script,
    cancel: Script,
    reap: Script,
    promote: Script,
    trim: Script,
    heartbeat: Script,
    depths: Script,
}

impl Scripts {
    /// The scripts, publishing events with `publish` (`PUBLISH` or `SPUBLISH`).
    fn new(publish: &str) -> Self {
        Self {
            submit: script!(publish, DENY_OOM, "lua/submit.lua"),
            claim: script!(publish, ALLOW_OOM, "lua/claim.lua"),
            renew: script!(publish, ALLOW_OOM, "lua/renew.lua"),
            progress: script!(publish, ALLOW_OOM, "lua/progress.lua"),
            complete_claim: script!(publish, ALLOW_OOM, "lua/complete_claim.lua"),
            fail: script!(publish, ALLOW_OOM, "lua/fail.lua"),
            cancelled: script!(publish, ALLOW_OOM, "lua/cancelled.lua"),
            release: script!(publish, ALLOW_OOM, "lua/release.lua"),
            unclaim: script!(publish, ALLOW_OOM, "lua/unclaim.lua"),
            // A stream must open even on a full Redis; it writes one short field.
            watch: script!(publish, ALLOW_OOM, "lua/watch.lua"),
            cancel: script!(publish, ALLOW_OOM, "lua/cancel.lua"),
            reap: script!(publish, ALLOW_OOM, "lua/reap.lua"),
            promote: script!(publish, ALLOW_OOM, "lua/promote.lua"),
            trim: script!(publish, ALLOW_OOM, "lua/trim.lua"),
            heartbeat: script!(publish, ALLOW_OOM, "lua/heartbeat.lua"),
            depths: script!(publish, READ_ONLY, "lua/depths.lua"),
        }
    }
}

/// How to reach Redis and lay out the keys.
#[derive(Clone)]
pub struct RedisOptions {
    /// `redis://[:password@]host:port/db`. Holds the password: never log it.
    pub url: String,
    /// Prefix of every key.
    pub prefix: String,
    /// How long terminal tasks are kept.
    pub retention: Duration,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// Timeout of one command.
    pub command_timeout: Duration,
    /// Most tasks waiting to run (pending and delayed) before submissions are refused.
    pub max_queued: Option<u64>,
    /// A silence of Redis longer than this (no server reached it) counts as an outage.
    pub outage_gap: Duration,
    /// After an outage, how long Redis must answer before expired leases are reaped.
    pub reap_settle: Duration,
    /// Run on a Redis Cluster instead of the Redis at `url`.
    pub cluster: Option<ClusterOptions>,
    /// Wait for replicas after every change.
    pub wait: Option<WaitOptions>,
}

/// Waiting for replicas (Redis `WAIT`) after every change, so that a failover to one of
/// them loses no answered change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitOptions {
    /// How many replicas must hold a change before it is answered.
    pub replicas: u32,
    /// How long to wait for them.
    pub timeout: Duration,
}

/// A Redis Cluster and how the queue is laid out on it.
#[derive(Clone)]
pub struct ClusterOptions {
    /// Seed nodes, `redis://[:password@]host:port` each: any reachable one finds the rest.
    /// Holds the password: never log it.
    pub nodes: Vec<String>,
    /// How many shards the queue is split into (see `shards`).
    pub shards: usize,
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOptions")
            .field("prefix", &self.prefix)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

/// The Redis store. Cheap to clone; clones share the connection and the subscription.
#[derive(Clone)]
pub struct RedisStore {
    caller: Caller,
    shards: Arc<Shards>,
    /// On a cluster, the key that records how many shards the queue is split into.
    layout_key: Option<String>,
    /// Whether the queue's recorded shard count has been found equal to this store's (or
    /// recorded by it); until then submissions and claims check it first.
    layout_ok: Arc<AtomicBool>,
    retention_ms: u64,
    outage_gap_ms: u64,
    reap_settle_ms: u64,
    scripts: Arc<Scripts>,
    /// Per shard (in shard order), the batchers of the calls that busy servers make most.
    batches: Arc<Vec<Batches>>,
    /// This process's name in the tasks it streams (their `watch` field, `lua/watch.lua`).
    server: String,
    notices: broadcast::Sender<Notice>,
    subscribed: Arc<AtomicBool>,
    _subscriber: Arc<AbortOnDrop>,
}

/// What runs a call: the connection, the wait for replicas, the deadline. Shared by the
/// store and its batchers.
#[derive(Clone)]
struct Caller {
    link: Arc<Link>,
    wait: Option<WaitOptions>,
    /// The longest one call may take: connecting, the command (with the client's retries)
    /// and waiting for replicas.
    deadline: Duration,
}

/// Runs a script call on its shard, then waits for the replicas when the store is told to
/// (`WaitOptions`).
trait RunOn {
    async fn on<T: FromRedisValue>(&self, store: &Caller, shard: &Shard) -> Result<T>;
}

impl RunOn for ScriptInvocation<'_> {
    async fn on<T: FromRedisValue>(&self, store: &Caller, shard: &Shard) -> Result<T> {
        let call = async {
            let mut conn = store.conn().await?;
            let value = self.invoke_async(&mut conn).await.map_err(map_err)?;
            store.replicated(shard, &mut conn).await?;
            Ok(value)
        };
        store.bounded(call).await
    }
}

/// Stops the subscription task when the last store clone is dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn map_err(error: RedisError) -> StoreError {
    match error.code() {
        Some("OOM") => return StoreError::Full(format!("Redis is out of memory: {error}")),
        Some("QUEUEFULL") => {
            return StoreError::Full(error.detail().unwrap_or("the queue is full").to_owned());
        }
        Some("LOADING" | "TRYAGAIN" | "MASTERDOWN" | "READONLY" | "BUSY" | "CLUSTERDOWN") => {
            return StoreError::Unavailable(error.to_string());
        }
        _ => {}
    }
    let unavailable = error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || matches!(error.kind(), redis::ErrorKind::AuthenticationFailed);
    if unavailable {
        StoreError::Unavailable(error.to_string())
    } else {
        StoreError::Corrupt(error.to_string())
    }
}

fn ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Caller {
    /// The command connection.
    async fn conn(&self) -> Result<Conn> {
        self.link.conn().await
    }

    /// Runs one command (not a script: no replicas are waited for).
    async fn query<T: FromRedisValue>(&self, command: &redis::Cmd) -> Result<T> {
        let call = async {
            let mut conn = self.conn().await?;
            command.query_async(&mut conn).await.map_err(map_err)
        };
        self.bounded(call).await
    }

    /// Runs `call` within [`Caller::deadline`]: a call still unanswered then (the cluster
    /// client can wait without end for slots it cannot find) is Unavailable, and like any
    /// unavailable answer makes the connection be made again.
    async fn bounded<T>(&self, call: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        let outcome = match tokio::time::timeout(self.deadline, call).await {
            Ok(outcome) => outcome,
            Err(_) => Err(StoreError::Unavailable(format!(
                "Redis did not answer within {:?}",
                self.deadline
            ))),
        };
        if let Err(StoreError::Unavailable(_)) = &outcome {
            self.link.unavailable().await;
        }
        outcome
    }

    /// Waits until `wait.replicas` replicas hold every write made so far on `conn` to the
    /// node of `shard` (Redis `WAIT`, on that node); Unavailable when they do not in time.
    async fn replicated(&self, shard: &Shard, conn: &mut Conn) -> Result<()> {
        let Some(wait) = &self.wait else {
            return Ok(());
        };
        let mut command = redis::cmd("WAIT");
        command.arg(wait.replicas).arg(ms(wait.timeout));
        let acked: i64 = match conn {
            Conn::Single(conn) => command.query_async(conn).await.map_err(map_err)?,
            Conn::Cluster(conn) => {
                let route = Route::new(shard.slot, SlotAddr::Master);
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
                let value = conn
                    .route_command(command, routing)
                    .await
                    .map_err(map_err)?;
                redis::from_redis_value(value)
                    .map_err(|error| StoreError::Corrupt(format!("WAIT answered: {error}")))?
            }
        };
        if acked < i64::from(wait.replicas) {
            return Err(StoreError::Unavailable(format!(
                "the change reached {acked} of {} replicas within {:?} (it may still be \
                 applied)",
                wait.replicas, wait.timeout
            )));
        }
        Ok(())
    }
}

impl RedisStore {
    /// The store over the Redis at `options.url`, or the Redis Cluster of
    /// `options.cluster`. Nothing is dialled yet: commands connect on first use (and fail
    /// `Unavailable` while Redis cannot be reached), and the event subscriptions are kept in
    /// the background. Fails only on an invalid address.
    pub fn connect(options: RedisOptions) -> Result<Self> {
        let (notices, _) = broadcast::channel(4096);
        // Names this process's own events channel: the events of the tasks it streams.
        let server = crate::task::random_id();
        let subscribed = Arc::new(AtomicBool::new(false));
        let timeouts = (options.connect_timeout, options.command_timeout);
        let (link, shards, subscriber, publish) = match &options.cluster {
            None => {
                let link = Link::standalone(&options.url, timeouts.0, timeouts.1)?;
                let shards = Shards::standalone(&options.prefix);
                let client = Client::open(options.url.as_str()).map_err(map_err)?;
                let subscriber = tokio::spawn(subscribe::standalone(
                    client,
                    shards.all()[0].channels(&server),
                    notices.clone(),
                    subscribed.clone(),
                    timeouts,
                ));
                (link, shards, subscriber, "PUBLISH")
            }
            Some(cluster) => {
                let link = Link::cluster(&cluster.nodes, timeouts.0, timeouts.1)?;
                let shards = Shards::cluster(&options.prefix, cluster.shards);
                let channels = shards
                    .all()
                    .iter()
                    .flat_map(|s| s.channels(&server))
                    .collect();
                let subscriber = tokio::spawn(subscribe::cluster(
                    cluster.nodes.clone(),
                    channels,
                    notices.clone(),
                    subscribed.clone(),
                    timeouts,
                ));
                (link, shards, subscriber, "SPUBLISH")
            }
        };
        // The cap on waiting tasks is shared out between the shards.
        let per_shard = options
            .max_queued
            .map_or(0, |cap| cap.div_ceil(shards.len() as u64).max(1));
        let caller = Caller {
            link: Arc::new(link),
            wait: options.wait.clone().filter(|wait| wait.replicas > 0),
            deadline: options.connect_timeout
                + options.command_timeout * 3
                + options
                    .wait
                    .as_ref()
                    .map_or(Duration::ZERO, |wait| wait.timeout),
        };
        let shards = Arc::new(shards);
        let scripts = Arc::new(Scripts::new(publish));
        let retention_ms = ms(options.retention).max(1);
        let batches = Arc::new(
            (0..shards.len())
                .map(|index| {
                    Batches::new(BatchContext {
                        caller: caller.clone(),
                        scripts: scripts.clone(),
                        shards: shards.clone(),
                        index,
                        server: server.clone(),
                        retention_ms,
                        max_queued: per_shard,
                    })
                })
                .collect(),
        );
        Ok(Self {
            caller,
            shards,
            layout_key: options
                .cluster
                .as_ref()
                .map(|_| format!("{}shards", options.prefix)),
            layout_ok: Arc::new(AtomicBool::new(false)),
            retention_ms,
            outage_gap_ms: ms(options.outage_gap),
            reap_settle_ms: ms(options.reap_settle),
            scripts,
            batches,
            server,
            notices,
            subscribed,
            _subscriber: Arc::new(AbortOnDrop(subscriber.abort_handle())),
        })
    }

    /// Refuses work until the queue's shard count is known to be this store's: a task
    /// placed in shards the queue does not have would be found by no one. Checked once.
    async fn check_layout(&self) -> Result<()> {
        if self.layout_key.is_none() || self.layout_ok.load(Ordering::Relaxed) {
            return Ok(());
        }
        match self.layout_conflict().await? {
            None => Ok(()),
            Some(reason) => Err(StoreError::Unavailable(reason)),
        }
    }

    /// A call of `script` on `shard`, with the shard's queue keys declared and its prefix as
    /// the first argument, as every script takes them (see `lua/common.lua`).
    fn invocation<'a>(shard: &Shard, script: &'a Script) -> ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        for key in &shard.queue_keys {
            invocation.key(key);
        }
        invocation.arg(&shard.prefix);
        invocation
    }

    /// Runs `call` on every shard (by index); the results in shard order, or the first
    /// error (after every shard was tried).
    async fn on_every_shard<T, F, Fut>(&self, call: F) -> Result<Vec<T>>
    where
        F: Fn(usize) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut out = Vec::with_capacity(self.shards.len());
        let mut failed = None;
        for index in 0..self.shards.len() {
            match call(index).await {
                Ok(value) => out.push(value),
                Err(error) => {
                    failed.get_or_insert(error);
                }
            }
        }
        match failed {
            Some(error) => Err(error),
            None => Ok(out),
        }
    }

    /// The tasks of one submission by shard, each with an id that names its shard: a task
    /// with an idempotency key goes to the shard of its key, the others to the next shard
    /// in turn. On one Redis the ids stay as they are.
    fn place(&self, tasks: Vec<NewTask>) -> Vec<(usize, Vec<(usize, NewTask)>)> {
        let shards = &self.shards;
        if shards.len() == 1 {
            return vec![(0, tasks.into_iter().enumerate().collect())];
        }
        let others = shards.next_index();
        let mut groups: std::collections::BTreeMap<usize, Vec<(usize, NewTask)>> =
            std::collections::BTreeMap::new();
        for (index, mut task) in tasks.into_iter().enumerate() {
            let target = task
                .idempotency_key
                .as_deref()
                .map_or(others, |key| shards.index_of(key));
            while shards.index_of(&task.id) != target {
                task.id = crate::task::random_id();
            }
            groups.entry(target).or_default().push((index, task));
        }
        groups.into_iter().collect()
    }

    async fn claim_on(&self, shard: &Shard, token: &str, lease: Duration) -> Result<Option<Claim>> {
        self.batches[shard.index]
            .claim
            .call((token.to_owned(), ms(lease)), 1)
            .await?
    }
}

/// How many calls one batch holds at most (by tasks): one script then runs for at most
/// about a millisecond.
const BATCH_LIMIT: usize = 64;

/// Batches of one kind out at once per shard: one on its way while the next fills.
const BATCHES_IN_FLIGHT: usize = 2;

/// A completion for the batch of completions, with the claim to make after it.
struct Completion {
    id: String,
    token: String,
    result: String,
    /// The next claim's token and lease (ms), when the worker wants one.
    next: Option<(String, u64)>,
}

/// The batchers of one shard: submissions, stream registrations, claims, and completions
/// (each with its next claim), the calls a busy server makes per task (see `batch`).
struct Batches {
    submit: Batcher<Vec<NewTask>, Result<Vec<Submitted>>>,
    /// Streams opening or catching up: (task id, after), answered with raw events.
    watch: Batcher<(String, u64), Vec<Vec<u8>>>,
    /// Each answer on its own: a task that cannot be read fails its own claim only.
    claim: Batcher<(String, u64), Result<Option<Claim>>>,
    complete: Batcher<Completion, Result<(Finish, Option<Claim>)>>,
}

/// What the batchers of one shard run with.
struct BatchContext {
    caller: Caller,
    scripts: Arc<Scripts>,
    shards: Arc<Shards>,
    /// The shard's index.
    index: usize,
    /// This process's name in the tasks it streams.
    server: String,
    retention_ms: u64,
    /// The shard's cap on waiting tasks (0: none).
    max_queued: u64,
}

impl BatchContext {
    fn shard(&self) -> &Shard {
        &self.shards.all()[self.index]
    }
}

/// A batcher that runs `run` with the shard's context.
fn batcher<Q, A, F, Fut>(
    context: &Arc<BatchContext>,
    run: F,
    orphan: Option<Orphan<A>>,
) -> Batcher<Q, A>
where
    Q: Send + 'static,
    A: Send + 'static,
    F: Fn(Arc<BatchContext>, Vec<Q>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Vec<A>>> + Send + 'static,
{
    let context = context.clone();
    Batcher::spawn(
        BATCH_LIMIT,
        BATCHES_IN_FLIGHT,
        move |batch| run(context.clone(), batch),
        orphan,
    )
}

/// Hands back a task claimed for a caller that has gone, rather than leave it leased to no
/// one until its lease expires.
fn hand_back_orphans(
    context: &Arc<BatchContext>,
) -> impl Fn(Option<Claim>) + Clone + Send + Sync + use<> {
    let context = context.clone();
    move |claim: Option<Claim>| {
        let Some(claim) = claim else { return };
        let context = context.clone();
        tokio::spawn(async move {
            let shard = context.shard();
            let handed: Result<i64> = RedisStore::invocation(shard, &context.scripts.unclaim)
                .arg(&claim.token)
                .arg(context.retention_ms)
                .on(&context.caller, shard)
                .await;
            if let Err(error) = handed {
                warn!(%error, task_id = claim.task.id, "Cannot hand back a task claimed for a \
                      caller that left; its lease will expire.");
            }
        });
    }
}

impl Batches {
    fn new(context: BatchContext) -> Self {
        let context = Arc::new(context);
        let hand_back = hand_back_orphans(&context);
        let after_completion = hand_back.clone();
        Self {
            submit: batcher(&context, submit_batch, None),
            watch: batcher(&context, watch_batch, None),
            claim: batcher(
                &context,
                claim_batch,
                Some(Arc::new(move |answer: Result<Option<Claim>>| {
                    if let Ok(claim) = answer {
                        hand_back(claim);
                    }
                })),
            ),
            complete: batcher(
                &context,
                complete_batch,
                Some(Arc::new(move |answer: Result<(Finish, Option<Claim>)>| {
                    if let Ok((_, next)) = answer {
                        after_completion(next);
                    }
                })),
            ),
        }
    }
}

/// Submits each submission of `batch` on `shard`, in one call: per submission, its tasks'
/// answers, or Full when it would take the queue past `max_queued`.
async fn submit_batch(
    context: Arc<BatchContext>,
    batch: Vec<Vec<NewTask>>,
) -> Result<Vec<Result<Vec<Submitted>>>> {
    let (shard, max_queued) = (context.shard(), context.max_queued);
    let mut invocation = RedisStore::invocation(shard, &context.scripts.submit);
    invocation.arg(max_queued).arg(&context.server);
    for tasks in &batch {
        invocation.arg(tasks.len());
        for task in tasks {
            invocation
                .arg(&task.id)
                .arg(&task.description)
                .arg(task.priority)
                .arg(task.number1)
                .arg(task.number2)
                .arg(&task.kind)
                .arg(&task.payload[..])
                .arg(task.idempotency_key.as_deref().unwrap_or(""))
                .arg(task.max_attempts)
                .arg(ms(task.delay))
                .arg(task.trace_parent.as_deref().unwrap_or(""));
        }
    }
    let answers: Vec<Value> = invocation.on(&context.caller, shard).await?;
    answers
        .into_iter()
        .map(|answer| match answer {
            Value::Int(waiting) => Ok(Err(StoreError::queue_full(waiting, max_queued))),
            answer => {
                let flat: Vec<(String, i64)> =
                    redis::from_redis_value(answer).map_err(|error| map_err(error.into()))?;
                Ok(Ok(flat
                    .into_iter()
                    .map(|(id, deduplicated)| Submitted {
                        id,
                        deduplicated: deduplicated == 1,
                    })
                    .collect()))
            }
        })
        .collect()
}

/// Reads the events after each (task id, after) of `batch` on `shard` and registers
/// `server` as streaming each task, in one call.
async fn watch_batch(
    context: Arc<BatchContext>,
    batch: Vec<(String, u64)>,
) -> Result<Vec<Vec<Vec<u8>>>> {
    let shard = context.shard();
    let mut invocation = RedisStore::invocation(shard, &context.scripts.watch);
    invocation.arg(&context.server);
    for (id, after) in &batch {
        invocation.arg(id).arg(after);
    }
    invocation.on(&context.caller, shard).await
}

/// Claims on `shard` for each (token, lease in ms) of `batch`, in one call: each claim's
/// answer, or why its task could not be read.
async fn claim_batch(
    context: Arc<BatchContext>,
    batch: Vec<(String, u64)>,
) -> Result<Vec<Result<Option<Claim>>>> {
    let shard = context.shard();
    let mut invocation = RedisStore::invocation(shard, &context.scripts.claim);
    for (token, lease_ms) in &batch {
        invocation.arg(token).arg(lease_ms);
    }
    let answers: Vec<Value> = invocation.on(&context.caller, shard).await?;
    Ok(answers
        .into_iter()
        .zip(&batch)
        .map(|(answer, (token, _))| claimed_or_none(answer, token))
        .collect())
}

/// Completes each attempt of `batch` on `shard` and makes the claims that follow, in one
/// call: each completion's verdict and next task, or why its next task could not be read
/// (the worker then reports again and hands back whatever its next token holds).
async fn complete_batch(
    context: Arc<BatchContext>,
    batch: Vec<Completion>,
) -> Result<Vec<Result<(Finish, Option<Claim>)>>> {
    let shard = context.shard();
    let mut invocation = RedisStore::invocation(shard, &context.scripts.complete_claim);
    invocation.arg(context.retention_ms);
    for completion in &batch {
        let (next_token, lease_ms) = completion
            .next
            .as_ref()
            .map_or(("", 0), |(token, lease)| (token.as_str(), *lease));
        invocation
            .arg(&completion.id)
            .arg(&completion.token)
            .arg(&completion.result)
            .arg(next_token)
            .arg(lease_ms);
    }
    let answers: Vec<Value> = invocation.on(&context.caller, shard).await?;
    if answers.len() != batch.len() * 2 {
        return Err(StoreError::Corrupt(format!(
            "complete_claim.lua answered {} values for {} completions",
            answers.len(),
            batch.len()
        )));
    }
    let mut answers = answers.into_iter();
    let mut out = Vec::with_capacity(batch.len());
    for completion in &batch {
        let code = match answers.next() {
            Some(Value::Int(code)) => code,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "unexpected answer of complete_claim.lua: {other:?}"
                )));
            }
        };
        let next = match (answers.next(), &completion.next) {
            (Some(answer), Some((token, _))) => claimed_or_none(answer, token),
            _ => Ok(None),
        };
        out.push(next.map(|next| (finish(code, false), next)));
    }
    Ok(out)
}

/// The fields of a claimed task in a claim script's answer, in its order (`CLAIM_FIELDS` in
/// `lua/common.lua`, without `watch`): values only, no names, and not the three the claim
/// fixes (the state, the progress and the token).
const CLAIM_FIELDS: [&str; 18] = [
    "id",
    "description",
    "priority",
    "number1",
    "number2",
    "kind",
    "payload",
    "idem",
    "attempt",
    "max_attempts",
    "result",
    "error",
    "created_ms",
    "updated_ms",
    "seq",
    "cancel",
    "trace",
    "runnable_ms",
];

/// A claim script's answer for one token: the claimed task's `CLAIM_FIELDS`, or nil (false)
/// when nothing was claimed.
fn claimed_or_none(answer: Value, token: &str) -> Result<Option<Claim>> {
    match answer {
        Value::Nil | Value::Boolean(false) => Ok(None),
        Value::Array(values) => claimed(values, token).map(Some),
        other => Err(StoreError::Corrupt(format!(
            "unexpected answer of a claim script: {other:?}"
        ))),
    }
}

/// The claim of a task from its fields as a claim script answers them (`CLAIM_FIELDS`).
fn claimed(values: Vec<Value>, token: &str) -> Result<Claim> {
    if values.len() != CLAIM_FIELDS.len() {
        return Err(StoreError::Corrupt(format!(
            "a claim script answered {} task fields, not {}",
            values.len(),
            CLAIM_FIELDS.len()
        )));
    }
    // Each value taken as it came (a missing field is empty), decoded where it is used.
    let mut values = values.into_iter().map(|value| match value {
        Value::BulkString(bytes) => bytes,
        Value::SimpleString(text) => text.into_bytes(),
        Value::Int(number) => number.to_string().into_bytes(),
        _ => Vec::new(),
    });
    let mut next = || values.next().unwrap_or_default();
    let text = |bytes: Vec<u8>| {
        String::from_utf8(bytes)
            .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned())
    };
    let number = |bytes: Vec<u8>, index: usize| -> Result<i64> {
        std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| text.parse::<i64>().ok())
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "task field {} is not a number",
                    CLAIM_FIELDS[index]
                ))
            })
    };
    let narrow = |value: i64, index: usize| -> Result<u32> {
        u32::try_from(value).map_err(|_| {
            StoreError::Corrupt(format!(
                "task field {} is out of range",
                CLAIM_FIELDS[index]
            ))
        })
    };
    let id = text(next());
    let description = text(next());
    let priority = u8::try_from(number(next(), 2)?.clamp(0, 2)).unwrap_or(0);
    let number1 = i32::try_from(number(next(), 3)?).unwrap_or_default();
    let number2 = i32::try_from(number(next(), 4)?).unwrap_or_default();
    let kind = text(next());
    let payload = next();
    let idem = text(next());
    let attempt = narrow(number(next(), 8)?, 8)?;
    let max_attempts = narrow(number(next(), 9)?, 9)?;
    let result = text(next());
    let error = text(next());
    let created_ms = number(next(), 12)?;
    let updated_ms = number(next(), 13)?;
    let seq = u64::try_from(number(next(), 14)?).unwrap_or_default();
    let cancel_requested = next() == b"1";
    let trace = text(next());
    let runnable_ms = number(next(), 17).ok();
    let waited = runnable_ms.map(|at| {
        let ms = updated_ms.saturating_sub(at);
        Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    });
    Ok(Claim {
        task: TaskRecord {
            id,
            description,
            priority,
            number1,
            number2,
            kind,
            payload,
            idempotency_key: (!idem.is_empty()).then_some(idem),
            state: TaskState::InProgress,
            attempt,
            max_attempts,
            progress: 0,
            result,
            error,
            created_ms,
            updated_ms,
            seq,
            cancel_requested,
            trace_parent: Some(trace).filter(|t| !t.is_empty()),
        },
        token: token.to_owned(),
        waited,
    })
}

/// The notices of one message of the events channel: a status event, a JSON array of the
/// events of one script that changed several tasks (`flush` in `lua/common.lua`), or a
/// control notice. A message that cannot be read gives none.
pub(super) fn parse_notices(payload: &[u8]) -> Vec<Notice> {
    if payload.first() == Some(&b'[') {
        return serde_json::from_slice::<Vec<TaskEvent>>(payload)
            .map(|events| events.into_iter().map(Notice::Event).collect())
            .unwrap_or_default();
    }
    parse_notice(payload).into_iter().collect()
}

/// A message of the events channel holding one status event or one control notice.
fn parse_notice(payload: &[u8]) -> Option<Notice> {
    // Nearly every message is a status event: read it straight into one (a notice has
    // neither `id` nor `seq`), and only the rare notice through a generic value.
    if let Ok(event) = serde_json::from_slice::<TaskEvent>(payload) {
        return Some(Notice::Event(event));
    }
    let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
    if let Some(id) = value.get("cancel").and_then(|id| id.as_str()) {
        let token = value.get("token").and_then(|t| t.as_str()).unwrap_or("");
        return Some(Notice::Cancel {
            task_id: id.to_owned(),
            token: token.to_owned(),
        });
    }
    if let Some(count) = value.get("wake") {
        let count = count
            .as_u64()
            .map_or(1, |n| usize::try_from(n).unwrap_or(usize::MAX));
        return Some(Notice::Wake(count));
    }
    serde_json::from_value(value).ok().map(Notice::Event)
}

/// Task events as the history holds them.
fn parse_events(raw: &[Vec<u8>]) -> Result<Vec<TaskEvent>> {
    raw.iter()
        .map(|bytes| {
            serde_json::from_slice::<TaskEvent>(bytes)
                .map_err(|error| StoreError::Corrupt(format!("bad task event: {error}")))
        })
        .collect()
}

/// Builds a task from its hash (a field/value list).
fn parse_task(fields: Vec<(String, Vec<u8>)>) -> Result<TaskRecord> {
    let map: HashMap<String, Vec<u8>> = fields.into_iter().collect();
    let text =
        |name: &str| String::from_utf8_lossy(map.get(name).map_or(&[][..], |v| v)).into_owned();
    let number = |name: &str| -> Result<i64> {
        text(name)
            .parse::<i64>()
            .map_err(|_| StoreError::Corrupt(format!("task field {name} is not a number")))
    };
    let state = TaskState::parse(&text("state"))
        .ok_or_else(|| StoreError::Corrupt(format!("unknown task state {:?}", text("state"))))?;
    let idem = text("idem");
    let narrow = |value: i64, name: &str| -> Result<u32> {
        u32::try_from(value)
            .map_err(|_| StoreError::Corrupt(format!("task field {name} is out of range")))
    };
    Ok(TaskRecord {
        id: text("id"),
        description: text("description"),
        priority: u8::try_from(number("priority")?.clamp(0, 2)).unwrap_or(0),
        number1: i32::try_from(number("number1")?).unwrap_or_default(),
        number2: i32::try_from(number("number2")?).unwrap_or_default(),
        kind: text("kind"),
        payload: map.get("payload").cloned().unwrap_or_default(),
        idempotency_key: (!idem.is_empty()).then_some(idem),
        state,
        attempt: narrow(number("attempt")?, "attempt")?,
        max_attempts: narrow(number("max_attempts")?, "max_attempts")?,
        progress: narrow(number("progress")?, "progress")?,
        result: text("result"),
        error: text("error"),
        created_ms: number("created_ms")?,
        updated_ms: number("updated_ms")?,
        seq: u64::try_from(number("seq")?).unwrap_or_default(),
        cancel_requested: text("cancel") == "1",
        trace_parent: Some(text("trace")).filter(|t| !t.is_empty()),
    })
}

fn finish(code: i64, retry: bool) -> Finish {
    match (code, retry) {
        (0, _) => Finish::Stale,
        (1, true) => Finish::Retrying,
        (3, true) => Finish::Cancelled,
        _ => Finish::Done,
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn submit(&self, tasks: Vec<NewTask>) -> Result<Vec<Submitted>> {
        self.check_layout().await?;
        let count = tasks.len();
        let mut out: Vec<Option<Submitted>> = (0..count).map(|_| None).collect();
        // One submission per shard: all of a shard's tasks are accepted together or not at
        // all (in a batch with other callers' submissions, each on its own).
        for (shard, group) in self.place(tasks) {
            let (indices, tasks): (Vec<usize>, Vec<NewTask>) = group.into_iter().unzip();
            let weight = tasks.len().max(1);
            let submitted = self.batches[shard].submit.call(tasks, weight).await??;
            for (index, submitted) in indices.into_iter().zip(submitted) {
                out[index] = Some(submitted);
            }
        }
        out.into_iter()
            .map(|submitted| {
                submitted.ok_or_else(|| {
                    StoreError::Corrupt("submit.lua answered fewer tasks than it got".into())
                })
            })
            .collect()
    }

    async fn get(&self, id: &str) -> Result<Option<TaskRecord>> {
        let mut command = redis::cmd("HGETALL");
        command.arg(self.shards.of_id(id).key(&format!("task:{id}")));
        let fields: Vec<(String, Vec<u8>)> = self.caller.query(&command).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        parse_task(fields).map(Some)
    }

    async fn events_after(&self, id: &str, after: u64) -> Result<Vec<TaskEvent>> {
        // Event n is at index n - 1.
        let mut command = redis::cmd("LRANGE");
        command
            .arg(self.shards.of_id(id).key(&format!("task_events:{id}")))
            .arg(after)
            .arg(-1);
        let raw: Vec<Vec<u8>> = self.caller.query(&command).await?;
        parse_events(&raw)
    }

    async fn watch_events(&self, id: &str, after: u64) -> Result<Vec<TaskEvent>> {
        // A stream of the server that submitted the task is registered by the submission:
        // its first event says so, and reading the history is enough.
        if after == 0 {
            let events = self.events_after(id, 0).await?;
            if events.first().and_then(|first| first.by.as_deref()) == Some(&self.server) {
                return Ok(events);
            }
        }
        let raw = self.batches[self.shards.of_id(id).index]
            .watch
            .call((id.to_owned(), after), 1)
            .await?;
        parse_events(&raw)
    }

    async fn claim(&self, token: &str, lease: Duration) -> Result<Option<Claim>> {
        self.check_layout().await?;
        // Each claim starts at another shard, so that workers drain all of them; a shard
        // that cannot be reached does not keep the others' tasks from running.
        let mut failed = None;
        for shard in self.shards.round() {
            match self.claim_on(shard, token, lease).await {
                Ok(Some(claim)) => return Ok(Some(claim)),
                Ok(None) => {}
                Err(error) => {
                    failed.get_or_insert(error);
                }
            }
        }
        match failed {
            Some(error) => Err(error),
            None => Ok(None),
        }
    }

    async fn renew(&self, id: &str, token: &str, lease: Duration) -> Result<Renewal> {
        let code: i64 = Self::invocation(self.shards.of_id(id), &self.scripts.renew)
            .arg(id)
            .arg(token)
            .arg(ms(lease))
            .on(&self.caller, self.shards.of_id(id))
            .await?;
        Ok(match code {
            1 => Renewal::Renewed,
            2 => Renewal::CancelRequested,
            _ => Renewal::Lost,
        })
    }

    async fn progress(&self, id: &str, token: &str, percent: u32) -> Result<bool> {
        let code: i64 = Self::invocation(self.shards.of_id(id), &self.scripts.progress)
            .arg(id)
            .arg(token)
            .arg(percent.min(100))
            .on(&self.caller, self.shards.of_id(id))
            .await?;
        Ok(code == 1)
    }

    async fn complete(&self, id: &str, token: &str, result: &str) -> Result<Finish> {
        let completion = Completion {
            id: id.to_owned(),
            token: token.to_owned(),
            result: result.to_owned(),
            next: None,
        };
        let (finish, _) = self.batches[self.shards.of_id(id).index]
            .complete
            .call(completion, 1)
            .await??;
        Ok(finish)
    }

    async fn complete_and_claim(
        &self,
        id: &str,
        token: &str,
        result: &str,
        next_token: &str,
        lease: Duration,
    ) -> Result<(Finish, Option<Claim>)> {
        if self.shards.len() > 1 {
            // On several shards the next claim must start at the next shard in turn, not
            // stay on this one, or a shard could be left waiting while this one has work.
            return Ok((self.complete(id, token, result).await?, None));
        }
        let completion = Completion {
            id: id.to_owned(),
            token: token.to_owned(),
            result: result.to_owned(),
            next: Some((next_token.to_owned(), ms(lease))),
        };
        self.batches[self.shards.of_id(id).index]
            .complete
            .call(completion, 1)
            .await?
    }

    async fn fail(&self, id: &str, token: &str, error: &str, plan: RetryPlan) -> Result<Finish> {
        let code: i64 = Self::invocation(self.shards.of_id(id), &self.scripts.fail)
            .arg(id)
            .arg(token)
            .arg(error)
            .arg(ms(plan.delay))
            .arg(self.retention_ms)
            .arg(u8::from(plan.permanent))
            .on(&self.caller, self.shards.of_id(id))
            .await?;
        Ok(finish(code, true))
    }

    async fn finish_cancelled(&self, id: &str, token: &str, reason: &str) -> Result<Finish> {
        let code: i64 = Self::invocation(self.shards.of_id(id), &self.scripts.cancelled)
            .arg(id)
            .arg(token)
            .arg(reason)
            .arg(self.retention_ms)
            .on(&self.caller, self.shards.of_id(id))
            .await?;
        Ok(finish(code, false))
    }

    async fn release(&self, id: &str, token: &str) -> Result<Finish> {
        let code: i64 = Self::invocation(self.shards.of_id(id), &self.scripts.release)
            .arg(id)
            .arg(token)
            .arg(self.retention_ms)
            .on(&self.caller, self.shards.of_id(id))
            .await?;
        Ok(finish(code, false))
    }

    async fn unclaim(&self, token: &str) -> Result<bool> {
        // The claim whose answer was lost may have happened on any shard.
        let handed_back = self
            .on_every_shard(|index| async move {
                let shard = &self.shards.all()[index];
                let code: i64 = Self::invocation(shard, &self.scripts.unclaim)
                    .arg(token)
                    .arg(self.retention_ms)
                    .on(&self.caller, shard)
                    .await?;
                Ok(code == 1)
            })
            .await?;
        Ok(handed_back.contains(&true))
    }

    async fn cancel(&self, id: &str, reason: &str) -> Result<CancelOutcome> {
        let (outcome, state): (String, String) =
            Self::invocation(self.shards.of_id(id), &self.scripts.cancel)
                .arg(id)
                .arg(reason)
                .arg(self.retention_ms)
                .on(&self.caller, self.shards.of_id(id))
                .await?;
        Ok(match outcome.as_str() {
            "cancelled" => CancelOutcome::Cancelled,
            "requested" => CancelOutcome::Requested,
            "finished" => CancelOutcome::AlreadyFinished(
                TaskState::parse(&state)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown task state {state:?}")))?,
            ),
            _ => CancelOutcome::NotFound,
        })
    }

    async fn reap_expired(&self, limit: usize) -> Result<usize> {
        let counts = self
            .on_every_shard(|index| async move {
                let shard = &self.shards.all()[index];
                Self::invocation(shard, &self.scripts.reap)
                    .arg(limit)
                    .arg(self.retention_ms)
                    .arg(self.outage_gap_ms)
                    .arg(self.reap_settle_ms)
                    .on::<usize>(&self.caller, shard)
                    .await
            })
            .await?;
        Ok(counts.iter().sum())
    }

    async fn promote_due(&self, limit: usize) -> Result<Promotion> {
        let promotions = self
            .on_every_shard(|index| async move {
                let shard = &self.shards.all()[index];
                Self::invocation(shard, &self.scripts.promote)
                    .arg(limit)
                    .on::<(usize, i64)>(&self.caller, shard)
                    .await
            })
            .await?;
        Ok(Promotion {
            moved: promotions.iter().map(|(moved, _)| moved).sum(),
            next_due: promotions
                .iter()
                .filter_map(|(_, wait)| u64::try_from(*wait).ok())
                .min()
                .map(Duration::from_millis),
        })
    }

    async fn trim_dead(&self) -> Result<usize> {
        let counts = self
            .on_every_shard(|index| async move {
                let shard = &self.shards.all()[index];
                Self::invocation(shard, &self.scripts.trim)
                    .arg(self.retention_ms)
                    .on::<usize>(&self.caller, shard)
                    .await
            })
            .await?;
        Ok(counts.iter().sum())
    }

    async fn ping(&self) -> Result<()> {
        let mut failed = None;
        let mut timed_out = false;
        for shard in self.shards.all() {
            let pong = match self.caller.conn().await {
                Ok(mut conn) => Self::invocation(shard, &self.scripts.heartbeat)
                    .arg(self.outage_gap_ms)
                    .invoke_async::<i64>(&mut conn)
                    .await
                    .map_err(|error| {
                        timed_out |= error.is_timeout();
                        map_err(error)
                    }),
                Err(error) => Err(error),
            };
            if let Err(error) = pong {
                if matches!(error, StoreError::Unavailable(_)) {
                    self.caller.link.unavailable().await;
                }
                failed.get_or_insert(error);
            }
        }
        if timed_out {
            self.caller.link.reconnect().await;
        }
        failed.map_or(Ok(()), Err)
    }

    async fn depths(&self) -> Result<Depths> {
        let all = self
            .on_every_shard(|index| async move {
                let shard = &self.shards.all()[index];
                let counts: Vec<u64> = Self::invocation(shard, &self.scripts.depths)
                    .invoke_async(&mut self.caller.conn().await?)
                    .await
                    .map_err(map_err)?;
                match counts.as_slice() {
                    [low, medium, high, delayed, leased, dead] => Ok(Depths {
                        pending: [*low, *medium, *high],
                        delayed: *delayed,
                        leased: *leased,
                        dead: *dead,
                    }),
                    _ => Err(StoreError::Corrupt(format!(
                        "depths.lua answered {} counts instead of 6",
                        counts.len()
                    ))),
                }
            })
            .await?;
        Ok(all.into_iter().fold(Depths::default(), |sum, one| Depths {
            pending: [
                sum.pending[0] + one.pending[0],
                sum.pending[1] + one.pending[1],
                sum.pending[2] + one.pending[2],
            ],
            delayed: sum.delayed + one.delayed,
            leased: sum.leased + one.leased,
            dead: sum.dead + one.dead,
        }))
    }

    fn subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Relaxed)
    }

    async fn eviction_policy(&self) -> Result<Option<String>> {
        let answer: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory-policy")
            .query_async(&mut self.caller.conn().await?)
            .await;
        match answer {
            Ok(pair) => Ok(pair.get(1).cloned()),
            // Managed services often rename or forbid CONFIG: the policy cannot be known.
            Err(error) if error.code().is_some() => {
                warn!(%error, "Cannot read Redis's maxmemory-policy (CONFIG GET refused); \
                       make sure it is noeviction.");
                Ok(None)
            }
            Err(error) => Err(map_err(error)),
        }
    }

    async fn layout_conflict(&self) -> Result<Option<String>> {
        let Some(key) = &self.layout_key else {
            // One Redis holds one queue, under the original key names.
            return Ok(None);
        };
        let count = self.shards.len();
        // Redis 7: set when absent, and answer what was there.
        let before: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(count)
            .arg("NX")
            .arg("GET")
            .query_async(&mut self.caller.conn().await?)
            .await
            .map_err(map_err)?;
        let conflict = before.filter(|before| *before != count.to_string());
        self.layout_ok.store(conflict.is_none(), Ordering::Relaxed);
        Ok(conflict.map(|before| {
            format!(
                "the queue on this Redis Cluster is split into {before} shards ({key}), but \
                 redis.cluster.shards is {count}: tasks would be looked for in the wrong \
                 shards. Set redis.cluster.shards back to {before}; to change it, drain the \
                 queue, stop every server, delete {key}, and start them with the new count \
                 (docs/operations.md, \"Redis Cluster\")."
            )
        }))
    }

    fn notices(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_of_the_events_channel() {
        let event = br#"{"id":"t1","seq":2,"state":"IN_PROGRESS","progress":0,"attempt":1,
            "max_attempts":3,"result":"","error":"","ts":7,"run":1}"#;
        match parse_notice(event) {
            Some(Notice::Event(event)) => {
                assert_eq!((event.id.as_str(), event.seq), ("t1", 2));
                assert_eq!(event.state, TaskState::InProgress);
                assert!(event.runnable);
            }
            other => panic!("an event: {other:?}"),
        }
        assert!(matches!(
            parse_notice(br#"{"cancel":"t1","token":"k"}"#),
            Some(Notice::Cancel { task_id, token }) if task_id == "t1" && token == "k"
        ));
        assert!(matches!(
            parse_notice(br#"{"wake":3}"#),
            Some(Notice::Wake(3))
        ));
        assert!(parse_notice(b"not json").is_none());
        assert!(parse_notices(b"[not json").is_empty());
    }

    #[test]
    fn a_message_can_hold_the_events_of_one_script() {
        let batch = br#"[{"id":"t1","seq":3,"state":"COMPLETED","progress":100,"attempt":1,
            "max_attempts":3,"result":"42","error":"","ts":7},
            {"id":"t2","seq":2,"state":"IN_PROGRESS","progress":0,"attempt":1,
            "max_attempts":3,"result":"","error":"","ts":7}]"#;
        let seen: Vec<(String, u64)> = parse_notices(batch)
            .into_iter()
            .map(|notice| match notice {
                Notice::Event(event) => (event.id, event.seq),
                other => panic!("an event: {other:?}"),
            })
            .collect();
        assert_eq!(seen, vec![("t1".to_owned(), 3), ("t2".to_owned(), 2)]);
        assert_eq!(parse_notices(br#"{"wake":2}"#).len(), 1);
    }

    #[test]
    fn a_claim_answers_the_fields_the_store_reads() {
        // The Lua list, as written in common.lua: the store's list, then `watch` (read for
        // the claim's event, not answered).
        let lua = include_str!("lua/common.lua");
        let list = lua
            .split_once("local CLAIM_FIELDS = {")
            .and_then(|(_, rest)| rest.split_once('}'))
            .map(|(list, _)| list)
            .expect("CLAIM_FIELDS in common.lua");
        let fields: Vec<&str> = list
            .split(',')
            .map(|field| field.trim().trim_matches('\''))
            .filter(|field| !field.is_empty())
            .collect();
        assert_eq!(fields[..CLAIM_FIELDS.len()], CLAIM_FIELDS[..]);
        assert_eq!(fields[CLAIM_FIELDS.len()..], ["watch"]);
        // A task claimed with a field that older versions did not write (runnable_ms).
        let mut values: Vec<Value> = [
            "t1", "add", "1", "2", "3", "default", "", "", "1", "3", "", "", "10", "15", "2", "0",
            "",
        ]
        .iter()
        .map(|value| Value::BulkString(value.as_bytes().to_vec()))
        .collect();
        values.push(Value::Nil);
        let claim = claimed(values, "k").expect("a claim");
        assert_eq!(claim.task.id, "t1");
        assert_eq!((claim.task.number1, claim.task.number2), (2, 3));
        assert_eq!((claim.task.attempt, claim.task.max_attempts), (1, 3));
        assert_eq!(
            (claim.task.created_ms, claim.task.updated_ms, claim.task.seq),
            (10, 15, 2)
        );
        assert_eq!(claim.task.state, TaskState::InProgress);
        assert!(claim.waited.is_none());
        assert!(claimed(vec![Value::Nil; 3], "k").is_err());
    }
}
