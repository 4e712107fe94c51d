//! Failover and resharding on a real Redis Cluster, started by the harness on loopback.
//!
//! Failover: three masters with a replica each. With `redis.wait.replicas: 1` every change is answered only once a
//! replica holds it; a master is killed with SIGKILL while tasks run and streams are open,
//! its replica is promoted, the old master comes back as the new one's replica (as its pod
//! would be restarted), and every acknowledged task still reaches COMPLETED, each stream
//! showing every sequence number once.
//!
//! Resharding: a shard's slot is moved to another master key by key (`CLUSTER SETSLOT`,
//! `MIGRATE`, as `redis-cli --cluster reshard` does) while its tasks run and their streams
//! are open; every task still completes, each stream gap-free.
//!
//! Changing the shard count under a running queue is refused: a server configured with
//! another count than the queue's exits, saying so.
//!
//! Every wait has a deadline; every process is stopped when the test ends.

mod support;

use std::time::{Duration, Instant};

use support::RedisCluster;
use taskmanager_proto::pb;
use taskmanager_proto::pb::task_manager_client::TaskManagerClient;
use taskmanager_server::store::WaitOptions;
use taskmanager_server::{open_store, start};
use tokio::task::JoinSet;
use tonic::transport::Channel;

/// How long the tasks may take to finish once the master is gone.
const SETTLE: Duration = Duration::from_secs(60);

fn task(n: usize) -> pb::TaskRequest {
    pb::TaskRequest {
        task_description: format!("failover {n}"),
        priority: pb::TaskPriority::Medium.into(),
        number1: i32::try_from(n).unwrap_or(0),
        number2: 1,
        ..Default::default()
    }
}

/// Submits until accepted (a shard is unavailable while its master fails over).
async fn submit(client: &mut TaskManagerClient<Channel>, n: usize) -> String {
    let deadline = Instant::now() + SETTLE;
    loop {
        match client.submit_task(task(n)).await {
            Ok(response) => return response.into_inner().task_id,
            Err(status) if Instant::now() < deadline => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => panic!("no submission accepted within {SETTLE:?}: {status:?}"),
        }
    }
}

/// The sequence numbers and the last status of one stream, opened from the start and read
/// until it ends; a stream that breaks is opened again after its last sequence number.
async fn watch(mut client: TaskManagerClient<Channel>, id: String) -> Watched {
    let deadline = Instant::now() + SETTLE;
    let mut sequences = Vec::new();
    let mut last = String::new();
    let mut reopened = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "the stream of {id} did not end in time"
        );
        let opened = client
            .stream_task_status(pb::StatusRequest {
                task_id: id.clone(),
                after_sequence: Some(sequences.last().copied().unwrap_or(0)),
            })
            .await;
        let mut stream = match opened {
            Ok(stream) => stream.into_inner(),
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        loop {
            match tokio::time::timeout_at(deadline.into(), stream.message()).await {
                Ok(Ok(Some(event))) => {
                    sequences.push(event.sequence);
                    last = event.status;
                }
                Ok(Ok(None)) => return (id, sequences, last, reopened),
                Ok(Err(_)) => {
                    reopened += 1;
                    break;
                }
                Err(_) => panic!("the stream of {id} did not end within {SETTLE:?}"),
            }
        }
    }
}

/// What a stream's watch saw: the task, its sequence numbers, its last status, and how many
/// times it was opened again.
type Watched = (String, Vec<u64>, String, u32);

/// A server on `settings` with 24 tasks submitted and watched, half a second into their
/// run: the server, its client, the task ids and the watches.
async fn busy(
    settings: taskmanager_server::Settings,
) -> (
    taskmanager_server::Running,
    TaskManagerClient<Channel>,
    Vec<String>,
    JoinSet<Watched>,
) {
    let store = open_store(&settings).expect("a store");
    let server = start(settings, store, "127.0.0.1:0".parse().expect("an address"))
        .await
        .expect("the server starts");
    let mut client = support::client(server.addr).await;
    let mut ids = Vec::new();
    for n in 0..24 {
        ids.push(submit(&mut client, n).await);
    }
    let mut watches = JoinSet::new();
    for id in &ids {
        watches.spawn(watch(client.clone(), id.clone()));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    (server, client, ids, watches)
}

/// Waits for every watch: each stream showed every sequence number once, in order, and
/// ended COMPLETED. How many completed, and how many times streams were opened again.
async fn settle(watches: &mut JoinSet<Watched>) -> (usize, u32) {
    let mut completed = 0;
    let mut reopened = 0;
    while let Some(watched) = watches.join_next().await {
        let (id, sequences, last, again) = watched.expect("a watch");
        let expected: Vec<u64> = (1..=sequences.len() as u64).collect();
        assert_eq!(
            sequences, expected,
            "{id}: every sequence number once, in order"
        );
        assert_eq!(last, "COMPLETED", "{id} completed");
        completed += 1;
        reopened += again;
    }
    (completed, reopened)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_loses_no_acknowledged_task() {
    let mut cluster = RedisCluster::start(3, 1);
    let mut sets = support::fast_cluster_sets(&cluster.ports(), 3);
    sets.extend([
        "server.simulation.duration=1500ms".to_owned(),
        "server.workers.concurrency=8".to_owned(),
        "server.retries.max_attempts=5".to_owned(),
        "redis.command_timeout=1s".to_owned(),
        "redis.wait.replicas=1".to_owned(),
        "redis.wait.timeout=2s".to_owned(),
    ]);
    let settings = support::settings(&sets);
    assert_eq!(
        settings.redis.wait,
        Some(WaitOptions {
            replicas: 1,
            timeout: Duration::from_secs(2),
        })
    );
    assert_eq!(
        settings.redis.cluster.as_ref().map(|c| c.nodes.len()),
        Some(6)
    );
    let (server, mut client, mut ids, mut watches) = busy(settings).await;

    // Kill a master that holds some of the queue; its replica takes over.
    let master = cluster
        .nodes
        .iter()
        .position(|node| {
            node.query(&["ROLE"]).contains("master")
                && node.query(&["DBSIZE"]).trim_start_matches(':').trim() != "0"
        })
        .expect("a master holds some of the queue");
    cluster.nodes[master].kill();
    let killed = Instant::now();
    let port = cluster.nodes[master].port;
    support::wait_until(Duration::from_secs(30), "a replica takes over", || {
        cluster
            .nodes
            .iter()
            .filter(|node| node.port != port)
            .all(|node| {
                let info = node.query(&["CLUSTER", "INFO"]);
                info.contains("cluster_state:ok")
                    && node
                        .query(&["CLUSTER", "NODES"])
                        .lines()
                        .any(|line| line.contains(&format!(":{port}@")) && line.contains("fail"))
            })
    });
    let promoted = killed.elapsed();
    // As Kubernetes would restart its pod, the old master comes back, as a replica of the
    // one that took over: the shard has a replica again to wait for.
    cluster.nodes[master].start_again();
    for n in 24..36 {
        let id = submit(&mut client, n).await;
        watches.spawn(watch(client.clone(), id.clone()));
        ids.push(id);
    }

    let (completed, reopened) = settle(&mut watches).await;
    eprintln!(
        "failover: a replica took over {promoted:?} after the kill; {completed} tasks \
         completed, {reopened} streams reopened, all settled {:?} after the kill",
        killed.elapsed()
    );
    assert_eq!(completed, ids.len(), "every acknowledged task completed");
    server.shutdown.cancel();
}

/// The lines of a RESP answer that are values (bulk strings, simple strings, integers),
/// without their type markers: `*2 $3 abc $1 d` is `["abc", "d"]`.
fn resp_values(answer: &str) -> Vec<String> {
    answer
        .split("\r\n")
        .filter(|line| !line.is_empty() && !line.starts_with('*') && !line.starts_with('$'))
        .map(|line| line.trim_start_matches([':', '+']).to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_moved_to_another_master_loses_no_task() {
    let cluster = RedisCluster::start(3, 0);
    let mut sets = support::fast_cluster_sets(&cluster.ports(), 3);
    sets.extend([
        "server.simulation.duration=1500ms".to_owned(),
        "server.workers.concurrency=8".to_owned(),
        "server.retries.max_attempts=5".to_owned(),
        "redis.command_timeout=1s".to_owned(),
    ]);
    let settings = support::settings(&sets);
    let (server, mut client, mut ids, mut watches) = busy(settings).await;

    // The shard of the master with the most keys moves to the next master.
    let size = |node: &support::Redis| {
        resp_values(&node.query(&["DBSIZE"]))
            .first()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let from = (0..3)
        .max_by_key(|&i| size(&cluster.nodes[i]))
        .expect("a node");
    let to = (from + 1) % 3;
    let (source, target) = (&cluster.nodes[from], &cluster.nodes[to]);
    let key = resp_values(&source.query(&["RANDOMKEY"]))
        .pop()
        .expect("a key");
    let slot = resp_values(&source.query(&["CLUSTER", "KEYSLOT", &key]))
        .pop()
        .expect("a slot");
    let id_of = |node: &support::Redis| resp_values(&node.query(&["CLUSTER", "MYID"])).remove(0);
    let (source_id, target_id) = (id_of(source), id_of(target));
    let ok = |answer: String| assert!(answer.starts_with("+OK"), "{answer}");
    ok(target.query(&["CLUSTER", "SETSLOT", &slot, "IMPORTING", &source_id]));
    ok(source.query(&["CLUSTER", "SETSLOT", &slot, "MIGRATING", &target_id]));
    let started = Instant::now();
    let target_port = target.port.to_string();
    let mut moved = 0;
    // A few keys at a time, slowly, so that the servers work on the slot while it moves.
    for _ in 0..10_000 {
        let keys = resp_values(&source.query(&["CLUSTER", "GETKEYSINSLOT", &slot, "2"]));
        if keys.is_empty() {
            break;
        }
        let mut words = vec![
            "MIGRATE",
            "127.0.0.1",
            &target_port,
            "",
            "0",
            "5000",
            "KEYS",
        ];
        words.extend(keys.iter().map(String::as_str));
        let answer = source.query(&words);
        assert!(answer.starts_with('+'), "MIGRATE: {answer}");
        moved += keys.len();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for node in &cluster.nodes {
        ok(node.query(&["CLUSTER", "SETSLOT", &slot, "NODE", &target_id]));
    }
    let migration = started.elapsed();
    assert!(moved > 0, "the shard's keys moved");
    assert_eq!(
        resp_values(&source.query(&["CLUSTER", "COUNTKEYSINSLOT", &slot])),
        ["0"],
        "the source kept no key of the slot"
    );

    for n in 24..36 {
        let id = submit(&mut client, n).await;
        watches.spawn(watch(client.clone(), id.clone()));
        ids.push(id);
    }
    let (completed, reopened) = settle(&mut watches).await;
    eprintln!(
        "resharding: {moved} keys of slot {slot} moved in {migration:?}; {completed} tasks \
         completed, {reopened} streams reopened"
    );
    assert_eq!(completed, ids.len(), "every task completed");
    // What kept the scripts off the slot while it moved: a declared key that is never
    // stored (the events channel's name).
    for node in &cluster.nodes {
        let stored = resp_values(&node.query(&["KEYS", "*events"]));
        assert!(
            stored.iter().all(|key| key.contains("task_events:")),
            "the events channel is never a key: {stored:?}"
        );
    }
    server.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_another_shard_count_refuses_the_queue() {
    let cluster = RedisCluster::start(3, 0);
    let sets = support::fast_cluster_sets(&cluster.ports(), 3);
    let first = support::ServerProcess::start(&sets);
    let mut client = support::client(first.addr).await;
    support::wait_until_async(Duration::from_secs(20), "the first server accepts", || {
        let mut client = client.clone();
        async move { client.submit_task(task(0)).await.is_ok() }
    })
    .await;
    submit(&mut client, 1).await;

    let log = support::Scratch::new("shards");
    let log = log.join("server.log");
    let mut other = support::ServerProcess::start_logging(
        &support::fast_cluster_sets(&cluster.ports(), 4),
        Some(&log),
    );
    let status = other
        .wait_exit(Duration::from_secs(20))
        .expect("the server exits by itself");
    assert!(!status.success(), "{status:?}");
    let logged = std::fs::read_to_string(&log).expect("the log");
    assert!(
        logged.contains("split into 3 shards") && logged.contains("redis.cluster.shards is 4"),
        "{logged}"
    );
    // The first server goes on.
    submit(&mut client, 2).await;
}
