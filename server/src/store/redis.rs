//! The Redis store: every transition is one Lua script (see `lua/common.lua` for the keys).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError, Script};
use tokio::sync::broadcast;
use tokio_stream::StreamExt;
use tracing::{info, warn};

use super::{
    CancelOutcome, Claim, Finish, Promotion, Renewal, Result, RetryPlan, Store, StoreError,
};
use crate::task::{NewTask, Notice, Submitted, TaskEvent, TaskRecord, TaskState};

macro_rules! script {
    ($file:literal) => {
        Script::new(concat!(include_str!("lua/common.lua"), include_str!($file)))
    };
}

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
    cancel: Script,
    reap: Script,
    promote: Script,
    trim: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            submit: script!("lua/submit.lua"),
            claim: script!("lua/claim.lua"),
            renew: script!("lua/renew.lua"),
            progress: script!("lua/progress.lua"),
            complete: script!("lua/complete.lua"),
            fail: script!("lua/fail.lua"),
            cancelled: script!("lua/cancelled.lua"),
            release: script!("lua/release.lua"),
            cancel: script!("lua/cancel.lua"),
            reap: script!("lua/reap.lua"),
            promote: script!("lua/promote.lua"),
            trim: script!("lua/trim.lua"),
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
    conn: ConnectionManager,
    prefix: String,
    retention_ms: u64,
    scripts: std::sync::Arc<Scripts>,
    notices: broadcast::Sender<Notice>,
    _subscriber: std::sync::Arc<AbortOnDrop>,
}

/// Stops the subscription task when the last store clone is dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn map_err(error: RedisError) -> StoreError {
    let unavailable = error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || matches!(error.kind(), redis::ErrorKind::AuthenticationFailed)
        || {
            let text = format!("{:?}", error.kind());
            ["BusyLoading", "TryAgain", "MasterDown", "ReadOnly"]
                .iter()
                .any(|kind| text.contains(kind))
        };
    if unavailable {
        StoreError::Unavailable(error.to_string())
    } else {
        StoreError::Corrupt(error.to_string())
    }
}

fn ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl RedisStore {
    /// Connects to Redis and subscribes to the events channel. Fails when Redis cannot be
    /// reached within the connect timeout.
    pub async fn connect(options: RedisOptions) -> Result<Self> {
        let client = Client::open(options.url.as_str())
            .map_err(|error| StoreError::Unavailable(format!("invalid Redis address: {error}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.command_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(map_err)?;
        let (notices, _) = broadcast::channel(4096);
        let channel = format!("{}events", options.prefix);
        let subscriber = tokio::spawn(subscribe(
            client,
            channel,
            notices.clone(),
            options.connect_timeout,
        ));
        Ok(Self {
            conn,
            prefix: options.prefix,
            retention_ms: ms(options.retention).max(1),
            scripts: std::sync::Arc::new(Scripts::new()),
            notices,
            _subscriber: std::sync::Arc::new(AbortOnDrop(subscriber.abort_handle())),
        })
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

/// Keeps one subscription to the events channel for the whole process, re-subscribing after
/// a disconnect and announcing `Resync` so that streams re-read what they may have missed.
async fn subscribe(
    client: Client,
    channel: String,
    notices: broadcast::Sender<Notice>,
    connect_timeout: Duration,
) {
    let mut subscribed_before = false;
    let mut backoff = Duration::from_millis(100);
    loop {
        let pubsub = tokio::time::timeout(connect_timeout, client.get_async_pubsub()).await;
        match pubsub {
            Ok(Ok(mut pubsub)) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    if subscribed_before {
                        info!("Re-subscribed to task events.");
                        let _ = notices.send(Notice::Resync);
                    }
                    subscribed_before = true;
                    backoff = Duration::from_millis(100);
                    let mut messages = pubsub.into_on_message();
                    while let Some(message) = messages.next().await {
                        if let Some(notice) = parse_notice(message.get_payload_bytes()) {
                            let _ = notices.send(notice);
                        }
                    }
                    warn!("Lost the task event subscription; reconnecting.");
                }
                Err(error) => warn!(%error, "Cannot subscribe to task events; retrying."),
            },
            Ok(Err(error)) => warn!(%error, "Cannot connect for task events; retrying."),
            Err(_) => warn!("Timed out connecting for task events; retrying."),
        }
        // Tell everyone to re-check: wake-ups may have been published while disconnected.
        let _ = notices.send(Notice::Resync);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// A message of the events channel: a status event, or a control notice.
fn parse_notice(payload: &[u8]) -> Option<Notice> {
    let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
    if let Some(id) = value.get("cancel").and_then(|id| id.as_str()) {
        return Some(Notice::Cancel(id.to_owned()));
    }
    if value.get("wake").is_some() {
        return Some(Notice::Wake);
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
        _ => Finish::Done,
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn submit(&self, tasks: Vec<NewTask>) -> Result<Vec<Submitted>> {
        let mut invocation = self.scripts.submit.prepare_invoke();
        invocation.arg(&self.prefix);
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
            .invoke_async(&mut self.conn.clone())
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
            .query_async(&mut self.conn.clone())
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
            .query_async(&mut self.conn.clone())
            .await
            .map_err(map_err)?;
        raw.iter()
            .map(|bytes| {
                serde_json::from_slice::<TaskEvent>(bytes)
                    .map_err(|error| StoreError::Corrupt(format!("bad task event: {error}")))
            })
            .collect()
    }

    async fn claim(&self, lease: Duration) -> Result<Option<Claim>> {
        let token = uuid::Uuid::new_v4().to_string();
        let flat: Option<Vec<Vec<u8>>> = self
            .scripts
            .claim
            .prepare_invoke()
            .arg(&self.prefix)
            .arg(&token)
            .arg(ms(lease))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(map_err)?;
        match flat {
            None => Ok(None),
            Some(flat) => Ok(Some(Claim {
                task: parse_task(pairs(flat))?,
                token,
            })),
        }
    }

    async fn renew(&self, id: &str, token: &str, lease: Duration) -> Result<Renewal> {
        let code: i64 = self
            .scripts
            .renew
            .prepare_invoke()
            .arg(&self.prefix)
            .arg(id)
            .arg(token)
            .arg(ms(lease))
            .invoke_async(&mut self.conn.clone())
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
            .scripts
            .progress
            .prepare_invoke()
            .arg(&self.prefix)
            .arg(id)
            .arg(token)
            .arg(percent.min(100))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(map_err)?;
        Ok(code == 1)
    }

    async fn complete(&self, id: &str, token: &str, result: &str) -> Result<Finish> {
        let code: i64 = self
            .scripts
            .complete
            .prepare_invoke()
            .arg(&self.prefix)
            .arg(id)
            .arg(token)
            .arg(result)
            .arg(self.retention_ms)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(map_err)?;
        Ok(finish(code, false))
    }

    async fn fail(&self, id: &str, token: &str, error: &str, plan: RetryPlan) -> Result<Finish> {
        let code: i64 = self
            .scripts
            .fail
            .prepare_invoke()
            .arg(&self.prefix)
            .arg(id)
            .arg(token)
            .arg(error)
            .arg(ms(plan.delay))
            .arg(self.retention_ms)
            .arg(u8::from(plan.permanent))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(map_err)?;
        Ok(finish(code, true))
    }

    async fn finish_cancelled(&self, id: &str, token: &str, reason: &str) -> Result<Finish> {
        let code: i64 = self
            .scripts
            .cancelled
            .prepare_invoke()
            .arg(&self.prefix)
            .arg(id)
            .arg(token)
            .arg(reason)
            .arg(self.retention_ms)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(map_err)?;
        Ok(finish(code, false))
    }

    async fn release(&self, id: &str, token: &str) -> Result<Finish> {
        let code: i64 = self
            .scripts
            .release
            .prepare_invoke()
            .arg(&self.prefix)
            .arg(id)
            .arg(token)
            .arg(self.retention_ms)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(map_err)?;
        Ok(finish(code, false))
    }

    async fn cancel(&self, id: &str, reason: &str) -> Result<CancelOutcome> {
        let (outcome, state): (String, String) = self
            .scripts
            .cancel
            .prepare_invoke()
            .arg(&self.prefix)
            .arg(id)
            .arg(reason)
            .arg(self.retention_ms)
            .invoke_async(&mut self.conn.clone())
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
            .scripts
            .reap
            .prepare_invoke()
            .arg(&self.prefix)
            .arg(limit)
            .arg(self.retention_ms)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(map_err)?;
        Ok(count)
    }

    async fn promote_due(&self, limit: usize) -> Result<Promotion> {
        let (moved, wait): (usize, i64) = self
            .scripts
            .promote
            .prepare_invoke()
            .arg(&self.prefix)
            .arg(limit)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(map_err)?;
        Ok(Promotion {
            moved,
            next_due: u64::try_from(wait).ok().map(Duration::from_millis),
        })
    }

    async fn trim_dead(&self) -> Result<usize> {
        let count: usize = self
            .scripts
            .trim
            .prepare_invoke()
            .arg(&self.prefix)
            .arg(self.retention_ms)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(map_err)?;
        Ok(count)
    }

    async fn ping(&self) -> Result<()> {
        let _: String = redis::cmd("PING")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(map_err)?;
        Ok(())
    }

    fn notices(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }
}
