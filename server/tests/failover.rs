//! Failover on a real Redis Cluster: three masters with a replica each, started by the
//! harness on loopback. With `redis.wait.replicas: 1` every change is answered only once a
//! replica holds it; a master is killed with SIGKILL while tasks run and streams are open,
//! its replica is promoted, the old master comes back as the new one's replica (as its pod
//! would be restarted), and every acknowledged task still reaches COMPLETED, each stream
//! showing every sequence number once.
//!
//! Every wait has a deadline; every process is stopped when the test ends.

mod support;

use std::time::{Duration, Instant};

use support::RedisCluster;
use taskmanager_proto::pb;
use taskmanager_proto::pb::task_manager_client::TaskManagerClient;
use taskmanager_server::store::{ClusterOptions, WaitOptions};
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
async fn watch(
    mut client: TaskManagerClient<Channel>,
    id: String,
) -> (String, Vec<u64>, String, u32) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_loses_no_acknowledged_task() {
    let mut cluster = RedisCluster::start(3, 1);
    let first = &cluster.nodes[0];
    let mut sets = support::fast_sets(first);
    sets.extend([
        "server.simulation.duration=1500ms".to_owned(),
        "server.workers.concurrency=8".to_owned(),
        "server.retries.max_attempts=5".to_owned(),
        "redis.command_timeout=1s".to_owned(),
    ]);
    let mut settings = support::settings(&sets);
    settings.redis.cluster = Some(ClusterOptions {
        nodes: cluster.urls(),
        shards: 3,
    });
    settings.redis.wait = Some(WaitOptions {
        replicas: 1,
        timeout: Duration::from_secs(2),
    });
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
    eprintln!(
        "failover: a replica took over {promoted:?} after the kill; {completed} tasks \
         completed, {reopened} streams reopened, all settled {:?} after the kill",
        killed.elapsed()
    );
    assert_eq!(completed, ids.len(), "every acknowledged task completed");
    server.shutdown.cancel();
}
