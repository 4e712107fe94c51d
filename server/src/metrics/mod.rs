//! The metrics of one server process, in the OpenMetrics text format with exemplars, served
//! over HTTP/1.1 on `server.metrics_port` (`/metrics`, and `/healthz`, `/readyz`).
//!
//! Counters and gauges are updated where things happen. The latency histograms (queue wait,
//! run time, end to end) carry the trace id of a sampled attempt as an exemplar, which
//! Grafana links to the trace in Tempo. The queue depths are the whole store's, read when
//! scraped: every replica reports the same numbers, so aggregate them with `max`, not `sum`.
//!
//! The label types are in `labels`; the HTTP endpoint is in `endpoint`.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::hub::Hub;

mod endpoint;
mod labels;

pub use endpoint::CONTENT_TYPE;
pub(crate) use endpoint::serve;
pub use labels::{Outcome, OutcomeLabels, Priority, PriorityLabels, TraceExemplar};
use labels::{ResponseLabels, code_name};

type Histogram = HistogramWithExemplars<TraceExemplar>;

/// The methods of the TaskManager API, as the `method` label names them.
pub(crate) const API_METHODS: [&str; 5] = [
    "SubmitTask",
    "StreamTaskStatus",
    "SubmitTasks",
    "GetTask",
    "CancelTask",
];

/// Bucket bounds, in seconds: `start`, doubling, `count` of them.
fn doubling(start: f64, count: u16) -> impl Iterator<Item = f64> {
    (0..count).map(move |i| start * 2f64.powi(i32::from(i)))
}

fn queue_wait_histogram() -> Histogram {
    // 1 ms to about 9 minutes.
    Histogram::new(doubling(0.001, 20))
}

fn run_histogram() -> Histogram {
    // 5 ms to about 22 minutes.
    Histogram::new(doubling(0.005, 19))
}

/// Counters and gauges, updated where things happen.
#[derive(Debug)]
pub struct Metrics {
    /// Tasks accepted.
    pub submitted: Counter,
    /// Submissions answered with an earlier task (idempotency key).
    pub deduplicated: Counter,
    /// Requests rejected as invalid.
    pub invalid_requests: Counter,
    /// Requests that failed because the store was unavailable.
    pub unavailable: Counter,
    /// Requests refused at a limit: server limits, a full store.
    pub exhausted: Counter,
    /// Attempts started by this process.
    pub attempts: Counter,
    /// Tasks completed by this process.
    pub completed: Counter,
    /// Attempts that failed and will be retried.
    pub retried: Counter,
    /// Tasks that failed for good in this process.
    pub failed: Counter,
    /// Tasks cancelled while running here.
    pub cancelled: Counter,
    /// Tasks handed back to the queue on shutdown.
    pub released: Counter,
    /// Outcomes rejected because the lease was lost.
    pub stale: Counter,
    /// Tasks handed back after a claim whose answer was lost.
    pub unclaimed: Counter,
    /// Expired leases taken back by this process' reaper.
    pub reaped: Counter,
    /// Handlers running now.
    pub running: AtomicI64,
    /// Whether the store answers.
    pub store_up: AtomicBool,
    /// Whether the store's event subscription is up.
    pub subscription_up: AtomicBool,
    /// Whether the server is ready (reported SERVING).
    pub ready: AtomicBool,
    /// From a task becoming runnable to a worker claiming it, by priority.
    pub queue_wait: Family<PriorityLabels, Histogram>,
    /// How long attempts ran, by how they ended.
    pub run_time: Family<OutcomeLabels, Histogram>,
    /// From acceptance to the end (completed, failed, cancelled while running), by outcome.
    pub end_to_end: Family<OutcomeLabels, Histogram>,
    responses: Family<ResponseLabels, Counter>,
    gauges: Gauges,
    registry: Registry,
}

/// The gauges, set from the state when scraped.
#[derive(Debug, Default)]
struct Gauges {
    running: Gauge,
    streams: Gauge,
    store_up: Gauge,
    subscription_up: Gauge,
    ready: Gauge,
    pending: Family<PriorityLabels, Gauge>,
    delayed: Gauge,
    leased: Gauge,
    dead: Gauge,
    depths_up: Gauge,
}

/// Adds one to a counter.
pub(crate) fn inc(counter: &Counter) {
    counter.inc();
}

impl Default for Metrics {
    fn default() -> Self {
        let mut metrics = Self {
            submitted: Counter::default(),
            deduplicated: Counter::default(),
            invalid_requests: Counter::default(),
            unavailable: Counter::default(),
            exhausted: Counter::default(),
            attempts: Counter::default(),
            completed: Counter::default(),
            retried: Counter::default(),
            failed: Counter::default(),
            cancelled: Counter::default(),
            released: Counter::default(),
            stale: Counter::default(),
            unclaimed: Counter::default(),
            reaped: Counter::default(),
            running: AtomicI64::default(),
            store_up: AtomicBool::default(),
            subscription_up: AtomicBool::default(),
            ready: AtomicBool::default(),
            queue_wait: Family::new_with_constructor(queue_wait_histogram),
            run_time: Family::new_with_constructor(run_histogram),
            end_to_end: Family::new_with_constructor(run_histogram),
            responses: Family::default(),
            gauges: Gauges::default(),
            registry: Registry::with_prefix("taskmanager"),
        };
        metrics.register();
        metrics.create_series();
        metrics
    }
}

impl Metrics {
    /// Registers every metric under the `taskmanager_` prefix. Counters get their `_total`
    /// suffix from the encoder.
    fn register(&mut self) {
        let r = &mut self.registry;
        let counters = [
            ("tasks_submitted", "Tasks accepted", &self.submitted),
            (
                "tasks_deduplicated",
                "Submissions answered with an earlier task",
                &self.deduplicated,
            ),
            (
                "requests_invalid",
                "Requests rejected as invalid",
                &self.invalid_requests,
            ),
            (
                "requests_unavailable",
                "Requests failed because the store was unavailable",
                &self.unavailable,
            ),
            (
                "requests_exhausted",
                "Requests refused with RESOURCE_EXHAUSTED: a server limit or a full store",
                &self.exhausted,
            ),
            ("attempts_started", "Attempts started", &self.attempts),
            ("tasks_completed", "Tasks completed", &self.completed),
            (
                "attempts_retried",
                "Failed attempts that will be retried",
                &self.retried,
            ),
            ("tasks_failed", "Tasks that failed for good", &self.failed),
            (
                "tasks_cancelled",
                "Tasks cancelled while running",
                &self.cancelled,
            ),
            (
                "tasks_released",
                "Tasks handed back to the queue on shutdown",
                &self.released,
            ),
            (
                "outcomes_stale",
                "Outcomes rejected because the lease was lost",
                &self.stale,
            ),
            (
                "claims_handed_back",
                "Tasks handed back after a claim whose answer was lost",
                &self.unclaimed,
            ),
            ("leases_reaped", "Expired leases taken back", &self.reaped),
        ];
        for (name, help, counter) in counters {
            r.register(name, help, counter.clone());
        }
        r.register(
            "grpc_responses",
            "gRPC calls answered, by method and status code (a stream counts when it opens or \
             is refused)",
            self.responses.clone(),
        );
        r.register(
            "task_queue_wait_seconds",
            "From a task becoming runnable to a worker claiming it, by priority",
            self.queue_wait.clone(),
        );
        r.register(
            "task_run_seconds",
            "How long attempts ran, by how they ended",
            self.run_time.clone(),
        );
        r.register(
            "task_end_to_end_seconds",
            "From acceptance to the end of the task's last attempt, by outcome",
            self.end_to_end.clone(),
        );
        let g = &self.gauges;
        let gauges = [
            ("tasks_running", "Handlers running now", &g.running),
            ("status_streams_open", "Status streams open now", &g.streams),
            ("store_up", "1 when the task store answers", &g.store_up),
            (
                "store_subscription_up",
                "1 when the task store's event subscription is up and answers PING",
                &g.subscription_up,
            ),
            (
                "ready",
                "1 when the server reports SERVING (store reachable, subscription up)",
                &g.ready,
            ),
            (
                "queue_delayed_tasks",
                "Tasks waiting for a retry or their start time, in the whole store (the same on \
                 every replica)",
                &g.delayed,
            ),
            (
                "queue_leased_tasks",
                "Tasks running under a lease, in the whole store (the same on every replica)",
                &g.leased,
            ),
            (
                "queue_dead_tasks",
                "Tasks that failed for good and are kept for the retention, in the whole store \
                 (the same on every replica)",
                &g.dead,
            ),
            (
                "queue_depths_up",
                "1 when the last scrape could read the store's queue depths",
                &g.depths_up,
            ),
        ];
        for (name, help, gauge) in gauges {
            r.register(name, help, gauge.clone());
        }
        r.register(
            "queue_pending_tasks",
            "Tasks waiting to run, by priority, in the whole store (the same on every replica)",
            g.pending.clone(),
        );
    }

    /// Creates the series of every label value known in advance, so that a query finds a
    /// zero before the first event instead of nothing.
    fn create_series(&self) {
        for priority in [Priority::low, Priority::medium, Priority::high] {
            let _ = self.queue_wait.get_or_create(&PriorityLabels { priority });
            let _ = self
                .gauges
                .pending
                .get_or_create(&PriorityLabels { priority });
        }
        for outcome in [
            Outcome::completed,
            Outcome::retried,
            Outcome::failed,
            Outcome::cancelled,
            Outcome::released,
            Outcome::stale,
        ] {
            let _ = self.run_time.get_or_create(&OutcomeLabels { outcome });
        }
        for outcome in [Outcome::completed, Outcome::failed, Outcome::cancelled] {
            let _ = self.end_to_end.get_or_create(&OutcomeLabels { outcome });
        }
        for method in API_METHODS {
            let _ = self
                .responses
                .get_or_create(&ResponseLabels { method, code: "OK" });
        }
    }

    /// Counts one response of `method` with `code`.
    pub(crate) fn count_response(&self, method: &'static str, code: tonic::Code) {
        self.responses
            .get_or_create(&ResponseLabels {
                method,
                code: code_name(code),
            })
            .inc();
    }

    /// Sets the gauges from the process' state and the store's depths (when read).
    fn refresh(&self, hub: &Hub, depths: Option<&crate::store::Depths>) {
        let g = &self.gauges;
        let flag = |value: &AtomicBool| i64::from(value.load(Ordering::Relaxed));
        g.running.set(self.running.load(Ordering::Relaxed));
        g.streams
            .set(i64::try_from(hub.open_streams()).unwrap_or(i64::MAX));
        g.store_up.set(flag(&self.store_up));
        g.subscription_up.set(flag(&self.subscription_up));
        g.ready.set(flag(&self.ready));
        g.depths_up.set(i64::from(depths.is_some()));
        if let Some(depths) = depths {
            let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            for (priority, pending) in [
                (Priority::low, depths.pending[0]),
                (Priority::medium, depths.pending[1]),
                (Priority::high, depths.pending[2]),
            ] {
                g.pending
                    .get_or_create(&PriorityLabels { priority })
                    .set(count(pending));
            }
            g.delayed.set(count(depths.delayed));
            g.leased.set(count(depths.leased));
            g.dead.set(count(depths.dead));
        }
    }

    /// The metrics in the OpenMetrics text format, ending with `# EOF`.
    pub fn render(&self, hub: &Hub, depths: Option<&crate::store::Depths>) -> String {
        self.refresh(hub, depths);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The exemplar of the current span's trace, when it is sampled.
pub(crate) fn exemplar(span: &tracing::Span) -> Option<TraceExemplar> {
    crate::telemetry::trace_id(span).map(|trace_id| TraceExemplar { trace_id })
}

/// Milliseconds as seconds, never negative (clocks of two machines may disagree).
pub(crate) fn seconds(ms: i64) -> f64 {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0)).as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_double() {
        let bounds: Vec<f64> = doubling(0.001, 4).collect();
        assert_eq!(bounds, [0.001, 0.002, 0.004, 0.008]);
    }

    #[test]
    fn seconds_are_never_negative() {
        assert_eq!(seconds(-5), 0.0);
        assert_eq!(seconds(1500), 1.5);
    }
}
