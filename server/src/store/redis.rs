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

use arc_swap::ArcSwap;
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError, Script, ScriptInvocation};
use tokio::sync::broadcast;
use tokio_stream::StreamExt;
use tracing::{info, warn};

use super::{
    CancelOutcome, Claim, Depths, Finish, Promotion, Renewal, Result, RetryPlan, Store, StoreError,
};
use crate::task::{NewTask, Notice, Submitted, TaskEvent, TaskRecord, TaskState};

/// A script that creates work: refused at its start when Redis is out of memory, so that a
/// full Redis answers submissions with an error and never half-runs a script.
const DENY_OOM: &str = "#!lua\n";
/// A script that finishes, moves or drains work: allowed when Redis is out of memory, so that
/// a full Redis still lets running tasks finish and frees memory as they expire.
const ALLOW_OOM: &str = "#!lua flags=allow-oom\n";
/// A script that only reads: runs whatever the memory, and on a replica.
const READ_ONLY: &str = "#!lua flags=no-writes,allow-oom\n";

macro_rules! script {
    ($flags:expr, $file:literal) => {
        Script::new(&format!(
            "{}{}{}",
            $flags,
            include_str!("lua/common.lua"),
            include_str!($file)
        ))
    };
}

/// The keys of the queue that every script declares, in this order (`lua/common.lua`).
const QUEUE_KEYS: [&str; 8] = [
    "tasks", "leases", "delayed", "dead", "enqueued", "events", "alive", "resumed",
];

/// The Lua scripts, loaded once.
struct Scripts {
    submit: Script,
    claim: Script,
    renew: Script,
    progress: Script,
    complete: Script,
    fail: Script,
    cancelled: Script,
    release: Script,
    unclaim: Script,
    cancel: Script,
    reap: Script,
    promote: Script,
    trim: Script,
    heartbeat: Script,
    depths: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            submit: script!(DENY_OOM, "lua/submit.lua"),
            claim: script!(ALLOW_OOM, "lua/claim.lua"),
            renew: script!(ALLOW_OOM, "lua/renew.lua"),
            progress: script!(ALLOW_OOM, "lua/progress.lua"),
            complete: script!(ALLOW_OOM, "lua/complete.lua"),
            fail: script!(ALLOW_OOM, "lua/fail.lua"),
            cancelled: script!(ALLOW_OOM, "lua/cancelled.lua"),
            release: script!(ALLOW_OOM, "lua/release.lua"),
            unclaim: script!(ALLOW_OOM, "lua/unclaim.lua"),
            cancel: script!(ALLOW_OOM, "lua/cancel.lua"),
            reap: script!(ALLOW_OOM, "lua/reap.lua"),
            promote: script!(ALLOW_OOM, "lua/promote.lua"),
            trim: script!(ALLOW_OOM, "lua/trim.lua"),
            heartbeat: script!(ALLOW_OOM, "lua/heartbeat.lua"),
            depths: script!(READ_ONLY, "lua/depths.lua"),
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
    client: Client,
    config: ConnectionManagerConfig,
    conn: Arc<ArcSwap<ConnectionManager>>,
    prefix: String,
    /// [`QUEUE_KEYS`] under the prefix.
    queue_keys: Arc<[String]>,
    retention_ms: u64,
    max_queued: u64,
    outage_gap_ms: u64,
    reap_settle_ms: u64,
    scripts: Arc<Scripts>,
    notices: broadcast::Sender<Notice>,
    subscribed: Arc<AtomicBool>,
    _subscriber: Arc<AbortOnDrop>,
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

/// How often the subscription connection is PINGed to prove it alive.
const SUBSCRIPTION_PING_EVERY: Duration = Duration::from_secs(1);

impl RedisStore {
    /// The store over the Redis at `options.url`. Nothing is dialled yet: commands connect on
    /// first use (and fail `Unavailable` while Redis cannot be reached), and the event
    /// subscription is kept in the background. Fails only on an invalid address.
    pub fn connect(options: RedisOptions) -> Result<Self> {
        let client = Client::open(options.url.as_str())
            .map_err(|error| StoreError::Unavailable(format!("invalid Redis address: {error}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.command_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
            .map_err(map_err)?;
        let (notices, _) = broadcast::channel(4096);
        let subscribed = Arc::new(AtomicBool::new(false));
        let channel = format!("{}events", options.prefix);
        let subscriber = tokio::spawn(subscribe(
            client.clone(),
            channel,
            notices.clone(),
            subscribed.clone(),
            options.connect_timeout,
            options.command_timeout,
        ));
        Ok(Self {
            client,
            config,
            conn: Arc::new(ArcSwap::from_pointee(conn)),
            queue_keys: QUEUE_KEYS
                .map(|name| format!("{}{name}", options.prefix))
                .into(),
            prefix: options.prefix,
            retention_ms: ms(options.retention).max(1),
            max_queued: options.max_queued.unwrap_or(0),
            outage_gap_ms: ms(options.outage_gap),
            reap_settle_ms: ms(options.reap_settle),
            scripts: Arc::new(Scripts::new()),
            notices,
            subscribed,
            _subscriber: Arc::new(AbortOnDrop(subscriber.abort_handle())),
        })
    }

    /// The command connection (a cheap clone of the shared one).
    fn conn(&self) -> ConnectionManager {
        ConnectionManager::clone(&self.conn.load())
    }

    /// Replaces the command connection by a fresh one. The manager reconnects by itself when
    /// a connection drops, but not when it stops answering without dropping.
    fn reconnect(&self) {
        match ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone()) {
            Ok(conn) => {
                warn!("Redis stopped answering on the command connection; reconnecting.");
                self.conn.store(Arc::new(conn));
            }
            Err(error) => warn!(%error, "Cannot make a new Redis connection."),
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// A call of `script` with the queue's keys declared and the prefix as its first
    /// argument, as every script takes them (see `lua/common.lua`).
    fn invocation<'a>(&self, script: &'a Script) -> ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        for key in self.queue_keys.iter() {
            invocation.key(key);
        }
        invocation.arg(&self.prefix);
        invocation
    }
}

/// Keeps one subscription to the events channel for the whole process. The connection is
/// PINGed every second; one that does not answer within the command timeout is dropped and
/// made again. Every (re)subscription announces `Resync`, so that streams and workers
/// re-read what they may have missed while it was down. `subscribed` tells whether the
/// subscription is up, for readiness.
async fn subscribe(
    client: Client,
    channel: String,
    notices: broadcast::Sender<Notice>,
    subscribed: Arc<AtomicBool>,
    connect_timeout: Duration,
    command_timeout: Duration,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let pubsub = tokio::time::timeout(connect_timeout, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, RedisError>(pubsub)
        })
        .await;
        match pubsub {
            Ok(Ok(pubsub)) => {
                subscribed.store(true, Ordering::Relaxed);
                info!("Subscribed to task events.");
                let _ = notices.send(Notice::Resync);
                backoff = Duration::from_millis(100);
                let (mut sink, mut messages) = pubsub.split();
                let mut pings = tokio::time::interval(SUBSCRIPTION_PING_EVERY);
                pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        message = messages.next() => match message {
                            Some(message) => {
                                if let Some(notice) = parse_notice(message.get_payload_bytes()) {
                                    let _ = notices.send(notice);
                                }
                            }
                            None => {
                                warn!("Lost the task event subscription; resubscribing.");
                                break;
                            }
                        },
                        _ = pings.tick() => {
                            let pong = tokio::time::timeout(
                                command_timeout,
                                sink.ping::<redis::Value>(),
                            )
                            .await;
                            if !matches!(pong, Ok(Ok(_))) {
                                warn!("The task event subscription stopped answering; \
                                       resubscribing.");
                                break;
                            }
                        }
                    }
                }
                subscribed.store(false, Ordering::Relaxed);
            }
            Ok(Err(error)) => warn!(%error, "Cannot subscribe to task events; retrying."),
            Err(_) => warn!("Timed out subscribing to task events; retrying."),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// A message of the events channel: a status event, or a control notice.
fn parse_notice(payload: &[u8]) -> Option<Notice> {
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

fn pairs(flat: Vec<Vec<u8>>) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::with_capacity(flat.len() / 2);
    let mut items = flat.into_iter();
    while let (Some(key), Some(value)) = (items.next(), items.next()) {
        out.push((String::from_utf8_lossy(&key).into_owned(), value));
    }
    out
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
        let mut invocation = self.invocation(&self.scripts.submit);
        invocation.arg(self.max_queued);
        for task in &tasks {
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
        let flat: Vec<(String, i64)> = invocation
            .invoke_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        Ok(flat
            .into_iter()
            .map(|(id, deduplicated)| Submitted {
                id,
                deduplicated: deduplicated == 1,
            })
            .collect())
    }

    async fn get(&self, id: &str) -> Result<Option<TaskRecord>> {
        let fields: Vec<(String, Vec<u8>)> = redis::cmd("HGETALL")
            .arg(self.key(&format!("task:{id}")))
            .query_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        if fields.is_empty() {
            return Ok(None);
        }
        parse_task(fields).map(Some)
    }

    async fn events_after(&self, id: &str, after: u64) -> Result<Vec<TaskEvent>> {
        // Event n is at index n - 1.
        let raw: Vec<Vec<u8>> = redis::cmd("LRANGE")
            .arg(self.key(&format!("task_events:{id}")))
            .arg(after)
            .arg(-1)
            .query_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        raw.iter()
            .map(|bytes| {
                serde_json::from_slice::<TaskEvent>(bytes)
                    .map_err(|error| StoreError::Corrupt(format!("bad task event: {error}")))
            })
            .collect()
    }

    async fn claim(&self, token: &str, lease: Duration) -> Result<Option<Claim>> {
        let flat: Option<Vec<Vec<u8>>> = self
            .invocation(&self.scripts.claim)
            .arg(token)
            .arg(ms(lease))
            .invoke_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        match flat {
            None => Ok(None),
            Some(flat) => {
                let fields = pairs(flat);
                let runnable_ms = fields
                    .iter()
                    .find(|(name, _)| name == "runnable_ms")
                    .and_then(|(_, value)| std::str::from_utf8(value).ok()?.parse::<i64>().ok());
                let task = parse_task(fields)?;
                let waited = runnable_ms.map(|at| {
                    let ms = task.updated_ms.saturating_sub(at);
                    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
                });
                Ok(Some(Claim {
                    task,
                    token: token.to_owned(),
                    waited,
                }))
            }
        }
    }

    async fn renew(&self, id: &str, token: &str, lease: Duration) -> Result<Renewal> {
        let code: i64 = self
            .invocation(&self.scripts.renew)
            .arg(id)
            .arg(token)
            .arg(ms(lease))
            .invoke_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        Ok(match code {
            1 => Renewal::Renewed,
            2 => Renewal::CancelRequested,
            _ => Renewal::Lost,
        })
    }

    async fn progress(&self, id: &str, token: &str, percent: u32) -> Result<bool> {
        let code: i64 = self
            .invocation(&self.scripts.progress)
            .arg(id)
            .arg(token)
            .arg(percent.min(100))
            .invoke_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        Ok(code == 1)
    }

    async fn complete(&self, id: &str, token: &str, result: &str) -> Result<Finish> {
        let code: i64 = self
            .invocation(&self.scripts.complete)
            .arg(id)
            .arg(token)
            .arg(result)
            .arg(self.retention_ms)
            .invoke_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        Ok(finish(code, false))
    }

    async fn fail(&self, id: &str, token: &str, error: &str, plan: RetryPlan) -> Result<Finish> {
        let code: i64 = self
            .invocation(&self.scripts.fail)
            .arg(id)
            .arg(token)
            .arg(error)
            .arg(ms(plan.delay))
            .arg(self.retention_ms)
            .arg(u8::from(plan.permanent))
            .invoke_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        Ok(finish(code, true))
    }

    async fn finish_cancelled(&self, id: &str, token: &str, reason: &str) -> Result<Finish> {
        let code: i64 = self
            .invocation(&self.scripts.cancelled)
            .arg(id)
            .arg(token)
            .arg(reason)
            .arg(self.retention_ms)
            .invoke_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        Ok(finish(code, false))
    }

    async fn release(&self, id: &str, token: &str) -> Result<Finish> {
        let code: i64 = self
            .invocation(&self.scripts.release)
            .arg(id)
            .arg(token)
            .arg(self.retention_ms)
            .invoke_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        Ok(finish(code, false))
    }

    async fn unclaim(&self, token: &str) -> Result<bool> {
        let code: i64 = self
            .invocation(&self.scripts.unclaim)
            .arg(token)
            .arg(self.retention_ms)
            .invoke_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        Ok(code == 1)
    }

    async fn cancel(&self, id: &str, reason: &str) -> Result<CancelOutcome> {
        let (outcome, state): (String, String) = self
            .invocation(&self.scripts.cancel)
            .arg(id)
            .arg(reason)
            .arg(self.retention_ms)
            .invoke_async(&mut self.conn())
            .await
            .map_err(map_err)?;
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
        let count: usize = self
            .invocation(&self.scripts.reap)
            .arg(limit)
            .arg(self.retention_ms)
            .arg(self.outage_gap_ms)
            .arg(self.reap_settle_ms)
            .invoke_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        Ok(count)
    }

    async fn promote_due(&self, limit: usize) -> Result<Promotion> {
        let (moved, wait): (usize, i64) = self
            .invocation(&self.scripts.promote)
            .arg(limit)
            .invoke_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        Ok(Promotion {
            moved,
            next_due: u64::try_from(wait).ok().map(Duration::from_millis),
        })
    }

    async fn trim_dead(&self) -> Result<usize> {
        let count: usize = self
            .invocation(&self.scripts.trim)
            .arg(self.retention_ms)
            .invoke_async(&mut self.conn())
            .await
            .map_err(map_err)?;
        Ok(count)
    }

    async fn ping(&self) -> Result<()> {
        let pong: Result<i64> = self
            .invocation(&self.scripts.heartbeat)
            .arg(self.outage_gap_ms)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|error| {
                if error.is_timeout() {
                    self.reconnect();
                }
                map_err(error)
            });
        pong.map(drop)
    }

    async fn depths(&self) -> Result<Depths> {
        let counts: Vec<u64> = self
            .invocation(&self.scripts.depths)
            .invoke_async(&mut self.conn())
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
    }

    fn subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Relaxed)
    }

    async fn eviction_policy(&self) -> Result<Option<String>> {
        let answer: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory-policy")
            .query_async(&mut self.conn())
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

    fn notices(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }
}
