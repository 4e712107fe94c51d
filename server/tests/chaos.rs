//! The chaos suite: real faults against real processes, on loopback only.
//!
//! Each test runs one Redis (or a Redis Cluster of three masters, the queue in three shards)
//! and two server processes: tasks are submitted through the first and every status stream
//! is read through the second. While tasks run, one fault is injected — Redis (on a cluster:
//! the master holding the most keys) killed and started again on the same append-only file,
//! frozen with SIGSTOP, stalled with `DEBUG SLEEP`, its connections (on a cluster: those to
//! every node) turned half-open by a proxy, or the submitting server killed with SIGKILL
//! again and again — and the test asserts:
//!
//! - every accepted task reaches a terminal state (here COMPLETED: nothing fails on purpose);
//! - no stream through the surviving server breaks: each ends Ok after the terminal state;
//! - no stream skips or repeats a sequence number: each shows 1, 2, ... n exactly;
//! - where Redis was the one at fault, no task ran twice (every task finished on attempt 1).
//!
//! Every wait has a deadline, and every process and proxy is stopped when the test ends.
//! The tests take turns (one lock) so that their timings do not compete for two cores.

mod support;

use std::time::{Duration, Instant};

use support::{Proxy, Redis, RedisCluster, ServerProcess};
use taskmanager_proto::pb;
use taskmanager_proto::pb::task_manager_client::TaskManagerClient;
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tonic::transport::Channel;

/// One chaos test at a time.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// Tasks accepted before the fault (their streams are open through it).
const BEFORE: usize = 24;
/// How long a whole test may take to settle once the fault is over.
const SETTLE: Duration = Duration::from_secs(60);

/// The timings every scenario shares, after the Redis settings in `sets`.
fn with_workload(mut sets: Vec<String>) -> Vec<String> {
    sets.extend([
        "server.simulation.duration=1500ms".to_owned(),
        "server.workers.concurrency=4".to_owned(),
        "server.retries.max_attempts=5".to_owned(),
    ]);
    sets
}

fn task(n: usize) -> pb::TaskRequest {
    pb::TaskRequest {
        task_description: format!("chaos {n}"),
        priority: pb::TaskPriority::Medium.into(),
        number1: i32::try_from(n).unwrap_or(0),
        number2: 1,
        ..Default::default()
    }
}

/// What one stream saw.
struct Watched {
    id: String,
    events: Vec<pb::StatusResponse>,
    /// The error that ended the stream, if it broke.
    broke: Option<tonic::Status>,
}

/// Streams `id` from its first event until it ends. Opening is retried while the store is
/// unavailable (no stream exists yet then); once open, an error is a broken stream.
async fn watch(mut client: TaskManagerClient<Channel>, id: String) -> Watched {
    let deadline = Instant::now() + SETTLE;
    let mut stream = loop {
        let opened = client
            .stream_task_status(pb::StatusRequest {
                task_id: id.clone(),
                after_sequence: Some(0),
            })
            .await;
        match opened {
            Ok(stream) => break stream.into_inner(),
            Err(status) if Instant::now() < deadline => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => panic!("cannot open a stream for {id}: {status:?}"),
        }
    };
    let mut events = Vec::new();
    let broke = loop {
        match tokio::time::timeout_at(deadline.into(), stream.message()).await {
            Ok(Ok(Some(event))) => events.push(event),
            Ok(Ok(None)) => break None,
            Ok(Err(status)) => break Some(status),
            Err(_) => panic!("the stream of {id} did not end within {SETTLE:?}"),
        }
    };
    Watched { id, events, broke }
}

/// Submits through `client` until accepted (the store may be down), within the deadline.
async fn submit(client: &mut TaskManagerClient<Channel>, n: usize) -> Option<String> {
    match client.submit_task(task(n)).await {
        Ok(response) => Some(response.into_inner().task_id),
        Err(status) => {
            assert!(
                matches!(
                    status.code(),
                    tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
                ),
                "a submission during a fault fails only as unavailable: {status:?}"
            );
            None
        }
    }
}

/// The outcome of one scenario.
#[derive(Debug, Default)]
struct Tally {
    accepted: usize,
    completed: usize,
    broken: usize,
    bad_sequences: usize,
    ran_twice: usize,
}

impl Tally {
    fn add(&mut self, watched: &Watched) {
        let sequences: Vec<u64> = watched.events.iter().map(|e| e.sequence).collect();
        let expected: Vec<u64> = (1..=u64::try_from(sequences.len()).unwrap_or(0)).collect();
        if sequences != expected {
            eprintln!("{}: sequences {sequences:?}", watched.id);
            self.bad_sequences += 1;
        }
        if let Some(status) = &watched.broke {
            eprintln!("{}: stream broke: {status:?}", watched.id);
            self.broken += 1;
        }
        let last = watched.events.last();
        if last.is_some_and(|e| e.status == "COMPLETED") {
            self.completed += 1;
        }
        if last.is_some_and(|e| e.attempt > 1) {
            self.ran_twice += 1;
        }
    }
}

/// A fault to inject.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Redis killed, and started again on the same data three seconds later.
    RedisRestart,
    /// Redis frozen (SIGSTOP) for four seconds.
    RedisFrozen,
    /// Redis busy in `DEBUG SLEEP 3`.
    RedisDebugSleep,
    /// Every open connection to Redis stops forwarding, for good, without closing.
    HalfOpen,
    /// The submitting server killed with SIGKILL and started again, three times.
    KillServer,
}

impl Fault {
    async fn inject(self, env: &mut Env) {
        match self {
            Self::RedisRestart => {
                let redis = env.backend.target();
                redis.kill();
                tokio::time::sleep(Duration::from_secs(3)).await;
                redis.start_again();
            }
            Self::RedisFrozen => {
                let redis = env.backend.target();
                redis.signal("STOP");
                tokio::time::sleep(Duration::from_secs(4)).await;
                redis.signal("CONT");
            }
            Self::RedisDebugSleep => {
                env.backend.target().send(&["DEBUG", "SLEEP", "3"]);
                tokio::time::sleep(Duration::from_millis(3500)).await;
            }
            Self::HalfOpen => {
                for proxy in &env.proxies {
                    proxy.black_hole_open_connections();
                }
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            Self::KillServer => {
                for _ in 0..3 {
                    env.submitter.kill_9();
                    env.submitter = ServerProcess::start(&env.sets);
                    tokio::time::sleep(Duration::from_millis(700)).await;
                }
            }
        }
    }
}

/// Runs the workload through a fault: `BEFORE` tasks submitted and watched before it, more
/// submitted (and watched) right after it, then everything is waited for.
async fn run(on: On, fault: Fault) -> Tally {
    let mut env = Env::start(on, matches!(fault, Fault::HalfOpen)).await;
    let mut submitter = support::client(env.submitter.addr).await;
    let streamer = support::client(env.streamer.addr).await;
    let mut watchers = JoinSet::new();
    let mut tally = Tally::default();
    for n in 0..BEFORE {
        let id = submit(&mut submitter, n)
            .await
            .expect("accepted before the fault");
        tally.accepted += 1;
        watchers.spawn(watch(streamer.clone(), id));
    }
    // Let the first tasks start, so that the fault hits running work.
    tokio::time::sleep(Duration::from_millis(600)).await;
    fault.inject(&mut env).await;
    // Submissions right after the fault (through whichever submitter now runs).
    let mut submitter = support::client(env.submitter.addr).await;
    let mut extra = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while extra < 6 && Instant::now() < deadline {
        if let Some(id) = submit(&mut submitter, BEFORE + extra).await {
            tally.accepted += 1;
            extra += 1;
            watchers.spawn(watch(streamer.clone(), id));
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    while let Some(watched) = watchers.join_next().await {
        tally.add(&watched.expect("a watcher does not panic"));
    }
    eprintln!("chaos {on:?} {fault:?}: {tally:?}");
    tally
}

/// What the servers run on.
#[derive(Clone, Copy, Debug)]
enum On {
    /// One Redis.
    Redis,
    /// A Redis Cluster of three masters without replicas (a fault on a master is not
    /// failed over: it hits every task of that master's shard).
    Cluster,
}

/// The Redis processes of a scenario.
enum Backend {
    Single(Redis),
    Cluster(RedisCluster),
}

impl Backend {
    /// The process a Redis fault hits: the one Redis, or the master holding the most keys.
    fn target(&mut self) -> &mut Redis {
        match self {
            Self::Single(redis) => redis,
            Self::Cluster(cluster) => cluster
                .nodes
                .iter_mut()
                .max_by_key(|node| {
                    let size = node.query(&["DBSIZE"]);
                    size.trim()
                        .trim_start_matches(':')
                        .parse::<u64>()
                        .unwrap_or(0)
                })
                .expect("a node"),
        }
    }
}

/// Redis (maybe behind proxies) and two servers.
struct Env {
    backend: Backend,
    proxies: Vec<Proxy>,
    submitter: ServerProcess,
    streamer: ServerProcess,
    sets: Vec<String>,
}

impl Env {
    async fn start(on: On, behind_proxy: bool) -> Self {
        let (backend, proxies, sets) = match on {
            On::Redis => {
                let redis = Redis::start();
                let proxies = if behind_proxy {
                    vec![Proxy::start(redis.port).await]
                } else {
                    Vec::new()
                };
                let port = proxies.first().map_or(redis.port, |proxy| proxy.port);
                let mut sets = support::fast_sets(&redis);
                sets.retain(|set| !set.starts_with("redis.port="));
                sets.push(format!("redis.port={port}"));
                (Backend::Single(redis), proxies, sets)
            }
            On::Cluster => {
                let cluster = RedisCluster::start(3, 0);
                let proxies = if behind_proxy {
                    cluster.behind_proxies().await
                } else {
                    Vec::new()
                };
                let ports = if behind_proxy {
                    proxies.iter().map(|proxy| proxy.port).collect()
                } else {
                    cluster.ports()
                };
                let sets = support::fast_cluster_sets(&ports, 3);
                (Backend::Cluster(cluster), proxies, sets)
            }
        };
        let sets = with_workload(sets);
        let submitter = ServerProcess::start(&sets);
        let streamer = ServerProcess::start(&sets);
        // Faults start from a working system: both servers connected and subscribed.
        for server in [&submitter, &streamer] {
            support::wait_until(Duration::from_secs(30), "the server is ready", || {
                support::http_get(server.metrics_addr, "/readyz")
                    .is_some_and(|(code, _)| code == 200)
            });
        }
        Self {
            backend,
            proxies,
            submitter,
            streamer,
            sets,
        }
    }
}

fn assert_clean(tally: &Tally, double_runs_allowed: bool) {
    assert!(tally.accepted >= BEFORE, "{tally:?}");
    assert_eq!(
        tally.completed, tally.accepted,
        "every task completes: {tally:?}"
    );
    assert_eq!(tally.broken, 0, "no stream breaks: {tally:?}");
    assert_eq!(tally.bad_sequences, 0, "no gap, no repeat: {tally:?}");
    if !double_runs_allowed {
        assert_eq!(tally.ran_twice, 0, "no task runs twice: {tally:?}");
    }
}

/// One test per backend and fault.
macro_rules! scenarios {
    ($($name:ident: $on:ident, $fault:ident, double_runs_allowed: $double:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let _turn = SERIAL.lock().await;
            assert_clean(&run(On::$on, Fault::$fault).await, $double);
        }
    )*};
}

// Tasks that ran on a killed server run again once their lease expires: double runs are
// allowed there only.
scenarios! {
    redis_killed_and_restarted_on_its_append_only_file: Redis, RedisRestart, double_runs_allowed: false;
    redis_frozen_with_sigstop: Redis, RedisFrozen, double_runs_allowed: false;
    redis_stalled_with_debug_sleep: Redis, RedisDebugSleep, double_runs_allowed: false;
    redis_connections_turned_half_open: Redis, HalfOpen, double_runs_allowed: false;
    the_submitting_server_killed_again_and_again: Redis, KillServer, double_runs_allowed: true;
    cluster_master_killed_and_restarted_on_its_append_only_file: Cluster, RedisRestart, double_runs_allowed: false;
    cluster_master_frozen_with_sigstop: Cluster, RedisFrozen, double_runs_allowed: false;
    cluster_master_stalled_with_debug_sleep: Cluster, RedisDebugSleep, double_runs_allowed: false;
    cluster_connections_turned_half_open: Cluster, HalfOpen, double_runs_allowed: false;
    cluster_submitting_server_killed_again_and_again: Cluster, KillServer, double_runs_allowed: true;
}
