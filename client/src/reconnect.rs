//! Getting a status stream back after a server restart or a broken connection: which errors
//! are worth another attempt, how long to wait between attempts, and when to give up.
//!
//! Every attempt connects afresh to the same address. tonic's `Channel` would reconnect by
//! itself, but a fresh connection is what makes the next stream go to whatever process
//! listens there now (in a cluster, any replica behind the Service, re-resolved by DNS).

use std::error::Error as _;
use std::time::{Duration, Instant};

use rand::Rng;
use taskmanager_proto::pb::task_manager_client::TaskManagerClient;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

use crate::{EXIT_RPC, EXIT_USAGE, Failure};

/// The default of `--reconnect-for`.
pub const DEFAULT_RECONNECT_FOR: &str = "60s";
/// The first delay before reconnecting.
const INITIAL_DELAY: Duration = Duration::from_millis(100);
/// The longest delay between two attempts.
const MAX_DELAY: Duration = Duration::from_secs(2);

/// Where the server is, and how hard to try to get a broken stream back.
#[derive(Clone, Debug)]
pub struct Reconnect {
    address: String,
    endpoint: Endpoint,
    budget: Duration,
}

impl Reconnect {
    /// The server at `address` (`http://host:port`); broken streams are reopened for up to
    /// `budget` without progress (zero: never).
    pub fn new(address: &str, budget: Duration) -> Result<Self, Failure> {
        let endpoint = Channel::from_shared(address.to_owned())
            .map_err(|error| Failure {
                message: format!("invalid server address {address:?}: {error}"),
                code: EXIT_USAGE,
            })?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            // A peer that vanished without closing the connection (a node lost, a network
            // partition) is noticed within ~40s instead of a stream hanging forever.
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10));
        Ok(Self {
            address: address.to_owned(),
            endpoint,
            budget,
        })
    }

    /// The server address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// How long a stream may go without progress while reconnecting.
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// Connects once.
    pub async fn connect(&self) -> Result<TaskManagerClient<Channel>, Failure> {
        self.connect_once().await.map_err(|error| Failure {
            message: format!("cannot connect to {}: {}", self.address, chain(&error)),
            code: EXIT_RPC,
        })
    }

    /// Connects once, on a new connection.
    pub(crate) async fn connect_once(
        &self,
    ) -> Result<TaskManagerClient<Channel>, tonic::transport::Error> {
        Ok(TaskManagerClient::new(self.endpoint.connect().await?))
    }
}

/// True when `status` says the server or the connection went away, so the same call may
/// succeed on a new connection: UNAVAILABLE (a server shutting down ends its streams so;
/// tonic reports refused and reset connections so), or an error tonic made from a transport
/// failure (a broken connection mid-stream surfaces as UNKNOWN, INTERNAL or CANCELLED with
/// the hyper/h2/io error as its source). A status sent by the server carries no source, so a
/// server's own UNKNOWN or INTERNAL is not retried.
pub fn is_transient(status: &tonic::Status) -> bool {
    match status.code() {
        Code::Unavailable => true,
        Code::Unknown | Code::Internal | Code::Cancelled => status.source().is_some(),
        _ => false,
    }
}

/// An error and its sources, joined with `: ` (tonic's transport error alone says only
/// "transport error").
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(error) = source {
        let more = error.to_string();
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = error.source();
    }
    text
}

/// Parses `--reconnect-for`: a duration such as `60s`, `2m` or `500ms`; `0` disables
/// reconnecting.
pub fn parse_reconnect_for(text: &str) -> Result<Duration, String> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    stack_config::types::Duration::parse(text).map(stack_config::types::Duration::get)
}

/// Exponential backoff with jitter: each delay is drawn from [d/2, d], where d starts at
/// `initial` and doubles up to `max`.
#[derive(Clone, Debug)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// A backoff from `initial` up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self { next: initial, max }
    }

    /// The next delay.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let ceiling = self.next;
        self.next = (self.next * 2).min(self.max);
        ceiling.mul_f64(rng.random_range(0.5..=1.0))
    }
}

/// A stretch of time without progress: since the first failure after the last status.
#[derive(Debug)]
pub(crate) struct Outage {
    since: Instant,
    backoff: Backoff,
}

impl Outage {
    pub(crate) fn start() -> Self {
        Self {
            since: Instant::now(),
            backoff: Backoff::new(INITIAL_DELAY, MAX_DELAY),
        }
    }

    /// How long it has lasted.
    pub(crate) fn elapsed(&self) -> Duration {
        self.since.elapsed()
    }

    /// The wait before the next attempt, or `None` when `budget` is spent (the last attempt
    /// is made when the budget runs out, never after).
    pub(crate) fn next_delay(&mut self, budget: Duration) -> Option<Duration> {
        self.delay_after(self.elapsed(), budget)
    }

    fn delay_after(&mut self, elapsed: Duration, budget: Duration) -> Option<Duration> {
        let left = budget.checked_sub(elapsed).filter(|left| !left.is_zero())?;
        Some(self.backoff.next_delay(&mut rand::rng()).min(left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut rng = rand::rng();
        let ceilings = [100, 200, 400, 800, 1600, 2000, 2000];
        for ceiling in ceilings.map(Duration::from_millis) {
            let delay = backoff.next_delay(&mut rng);
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{delay:?} not in [{:?}, {ceiling:?}]",
                ceiling / 2
            );
        }
    }

    #[test]
    fn an_outage_ends_with_its_budget() {
        let budget = Duration::from_secs(60);
        let mut outage = Outage::start();
        assert_eq!(
            outage.next_delay(Duration::ZERO),
            None,
            "zero never retries"
        );
        let delay = outage.delay_after(Duration::ZERO, budget).expect("a retry");
        assert!(delay <= INITIAL_DELAY, "{delay:?}");
        let late = Duration::from_millis(59_950);
        let last = outage.delay_after(late, budget).expect("a last retry");
        assert!(
            last <= Duration::from_millis(50),
            "capped by the budget: {last:?}"
        );
        assert_eq!(outage.delay_after(budget, budget), None);
    }

    #[test]
    fn reconnect_for_accepts_durations_and_zero() {
        assert_eq!(parse_reconnect_for("0"), Ok(Duration::ZERO));
        assert_eq!(parse_reconnect_for("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_reconnect_for("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(
            parse_reconnect_for(DEFAULT_RECONNECT_FOR),
            Ok(Duration::from_secs(60))
        );
        assert!(parse_reconnect_for("60").is_err());
    }

    #[test]
    fn which_statuses_are_retried() {
        assert!(is_transient(&tonic::Status::unavailable("shutting down")));
        let broken = tonic::Status::from_error(Box::new(std::io::Error::other("connection reset")));
        assert_eq!(broken.code(), Code::Unknown);
        assert!(
            is_transient(&broken),
            "a transport error made into a status"
        );
        for status in [
            tonic::Status::unknown("from the server"),
            tonic::Status::internal("from the server"),
            tonic::Status::not_found("no such task"),
            tonic::Status::invalid_argument("bad id"),
            tonic::Status::out_of_range("after_sequence 9 > 4"),
        ] {
            assert!(!is_transient(&status), "{status:?}");
        }
    }
}
