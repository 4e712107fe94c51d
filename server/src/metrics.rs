//! Prometheus metrics of one server process, served as text on `server.metrics_port`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::hub::Hub;

/// Counters and gauges, updated where things happen.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Tasks accepted.
    pub submitted: AtomicU64,
    /// Submissions answered with an earlier task (idempotency key).
    pub deduplicated: AtomicU64,
    /// Requests rejected as invalid.
    pub invalid_requests: AtomicU64,
    /// Requests that failed because the store was unavailable.
    pub unavailable: AtomicU64,
    /// Requests refused at a limit: server limits, a full store.
    pub exhausted: AtomicU64,
    /// Attempts started by this process.
    pub attempts: AtomicU64,
    /// Tasks completed by this process.
    pub completed: AtomicU64,
    /// Attempts that failed and will be retried.
    pub retried: AtomicU64,
    /// Tasks that failed for good in this process.
    pub failed: AtomicU64,
    /// Tasks cancelled while running here.
    pub cancelled: AtomicU64,
    /// Tasks handed back to the queue on shutdown.
    pub released: AtomicU64,
    /// Outcomes rejected because the lease was lost.
    pub stale: AtomicU64,
    /// Tasks handed back after a claim whose answer was lost.
    pub unclaimed: AtomicU64,
    /// Expired leases taken back by this process' reaper.
    pub reaped: AtomicU64,
    /// Handlers running now.
    pub running: AtomicI64,
    /// Whether the store answers.
    pub store_up: AtomicBool,
    /// Whether the store's event subscription is up.
    pub subscription_up: AtomicBool,
    /// Whether the server is ready (reported SERVING).
    pub ready: AtomicBool,
    /// gRPC responses by method and status code.
    responses: Mutex<BTreeMap<(&'static str, i32), u64>>,
}

/// The canonical name of a gRPC status code, as gRPC's documentation spells it.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Adds one to a counter.
pub(crate) fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// Counts one response of `method` with `code`.
    pub(crate) fn count_response(&self, method: &'static str, code: tonic::Code) {
        *self
            .responses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry((method, code as i32))
            .or_default() += 1;
    }

    /// The metrics in the Prometheus text format (0.0.4).
    pub fn render(&self, hub: &Hub) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: &AtomicU64| {
            let _ = writeln!(out, "# HELP taskmanager_{name} {help}");
            let _ = writeln!(out, "# TYPE taskmanager_{name} counter");
            let _ = writeln!(out, "taskmanager_{name} {}", value.load(Ordering::Relaxed));
        };
        counter("tasks_submitted_total", "Tasks accepted.", &self.submitted);
        counter(
            "tasks_deduplicated_total",
            "Submissions answered with an earlier task.",
            &self.deduplicated,
        );
        counter(
            "requests_invalid_total",
            "Requests rejected as invalid.",
            &self.invalid_requests,
        );
        counter(
            "requests_unavailable_total",
            "Requests failed because the store was unavailable.",
            &self.unavailable,
        );
        counter(
            "requests_exhausted_total",
            "Requests refused with RESOURCE_EXHAUSTED: a server limit or a full store.",
            &self.exhausted,
        );
        counter(
            "attempts_started_total",
            "Attempts started.",
            &self.attempts,
        );
        counter("tasks_completed_total", "Tasks completed.", &self.completed);
        counter(
            "attempts_retried_total",
            "Failed attempts that will be retried.",
            &self.retried,
        );
        counter(
            "tasks_failed_total",
            "Tasks that failed for good.",
            &self.failed,
        );
        counter(
            "tasks_cancelled_total",
            "Tasks cancelled while running.",
            &self.cancelled,
        );
        counter(
            "tasks_released_total",
            "Tasks handed back to the queue on shutdown.",
            &self.released,
        );
        counter(
            "outcomes_stale_total",
            "Outcomes rejected because the lease was lost.",
            &self.stale,
        );
        counter(
            "claims_handed_back_total",
            "Tasks handed back after a claim whose answer was lost.",
            &self.unclaimed,
        );
        counter(
            "leases_reaped_total",
            "Expired leases taken back.",
            &self.reaped,
        );
        let mut gauge = |name: &str, help: &str, value: i64| {
            let _ = writeln!(out, "# HELP taskmanager_{name} {help}");
            let _ = writeln!(out, "# TYPE taskmanager_{name} gauge");
            let _ = writeln!(out, "taskmanager_{name} {value}");
        };
        gauge(
            "tasks_running",
            "Handlers running now.",
            self.running.load(Ordering::Relaxed),
        );
        gauge(
            "status_streams_open",
            "Status streams open now.",
            i64::try_from(hub.open_streams()).unwrap_or(i64::MAX),
        );
        gauge(
            "store_up",
            "1 when the task store answers.",
            i64::from(self.store_up.load(Ordering::Relaxed)),
        );
        gauge(
            "store_subscription_up",
            "1 when the task store's event subscription is up and answers PING.",
            i64::from(self.subscription_up.load(Ordering::Relaxed)),
        );
        gauge(
            "ready",
            "1 when the server reports SERVING (store reachable, subscription up).",
            i64::from(self.ready.load(Ordering::Relaxed)),
        );
        let _ = writeln!(
            out,
            "# HELP taskmanager_grpc_responses_total gRPC calls answered, by method and status \
             code (a stream counts when it opens or is refused)."
        );
        let _ = writeln!(out, "# TYPE taskmanager_grpc_responses_total counter");
        for ((method, code), count) in self
            .responses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            let code = code_name(tonic::Code::from_i32(*code));
            let _ = writeln!(
                out,
                "taskmanager_grpc_responses_total{{method=\"{method}\",code=\"{code}\"}} {count}"
            );
        }
        out
    }
}

/// Serves `GET /metrics` (and `GET /healthz`) on `listener` until `stop` fires.
pub(crate) async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    hub: Hub,
    stop: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    debug!(%error, "Cannot accept a metrics connection.");
                    continue;
                }
            },
            () = stop.cancelled() => return,
        };
        let metrics = metrics.clone();
        let hub = hub.clone();
        tokio::spawn(async move {
            if let Err(error) = answer(stream, &metrics, &hub).await {
                debug!(%error, "A metrics request failed.");
            }
        });
    }
}

async fn answer(mut stream: TcpStream, metrics: &Metrics, hub: &Hub) -> std::io::Result<()> {
    let mut request = Vec::with_capacity(512);
    let mut buffer = [0u8; 1024];
    let read = async {
        while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
            let n = stream.read(&mut buffer).await?;
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buffer[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), read)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "slow request"))??;
    let line = request.split(|b| *b == b'\n').next().unwrap_or_default();
    let (status, content_type, body) = if line.starts_with(b"GET /metrics ") {
        (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(hub),
        )
    } else if line.starts_with(b"GET /healthz ") {
        ("200 OK", "text/plain; charset=utf-8", "ok\n".to_owned())
    } else if line.starts_with(b"GET /readyz ") {
        if metrics.ready.load(Ordering::Relaxed) {
            ("200 OK", "text/plain; charset=utf-8", "ready\n".to_owned())
        } else {
            (
                "503 Service Unavailable",
                "text/plain; charset=utf-8",
                "not ready: the task store or its event subscription is down\n".to_owned(),
            )
        }
    } else {
        (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "try /metrics\n".to_owned(),
        )
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
