//! Idle status streams cost Redis nothing and the server little memory.
//!
//! Opens `IDLE_STREAMS` streams (2,000 unless the variable says otherwise) on tasks that
//! will not change for ten minutes, then counts the commands Redis processes while nothing
//! happens and reads the server's resident memory. The command count must not grow with
//! the number of streams: what remains is the server's own upkeep (health checks, the
//! subscription's PING, the delayed-task and lease timers). `just idle-streams` runs it
//! with 10,000 streams on a release build; docs/benchmarks.md has the figures.

mod support;

use std::time::{Duration, Instant};

use support::{Redis, ServerProcess};
use taskmanager_proto::pb;
use tokio::task::JoinSet;

/// Resident memory of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kb| kb * 1024)
        .expect("VmRSS")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_streams_cost_redis_nothing() {
    let count: usize = std::env::var("IDLE_STREAMS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    let redis = Redis::start();
    let mut sets = support::fast_sets(&redis);
    // The shipped timings, not the fast ones of the other tests: this measures upkeep.
    sets.retain(|set| !set.starts_with("server.lease.") && !set.starts_with("redis.command"));
    let server = ServerProcess::start(&sets);
    let mut client = support::client(server.addr).await;
    support::wait_until_async(Duration::from_secs(20), "ready", || {
        let mut client = client.clone();
        async move {
            client
                .get_task(pb::GetTaskRequest {
                    task_id: "none".into(),
                })
                .await
                .is_err_and(|status| status.code() == tonic::Code::NotFound)
        }
    })
    .await;

    let mut ids = Vec::with_capacity(count);
    while ids.len() < count {
        let batch = (count - ids.len()).min(1000);
        let tasks = (0..batch)
            .map(|n| pb::TaskRequest {
                task_description: format!("idle {n}"),
                delay_ms: 600_000,
                ..Default::default()
            })
            .collect();
        let response = client
            .submit_tasks(pb::SubmitTasksRequest { tasks })
            .await
            .expect("accepted");
        ids.extend(response.into_inner().tasks.into_iter().map(|t| t.task_id));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = rss(server.pid());

    // Open every stream and read its first message (the current state).
    let mut connections = Vec::new();
    for _ in 0..8 {
        connections.push(support::client(server.addr).await);
    }
    let mut opened = JoinSet::new();
    for (n, id) in ids.into_iter().enumerate() {
        let mut client = connections[n % connections.len()].clone();
        opened.spawn(async move {
            let mut stream = client
                .stream_task_status(pb::StatusRequest {
                    task_id: id,
                    after_sequence: None,
                })
                .await
                .expect("the stream opens")
                .into_inner();
            let first = stream.message().await.expect("a status").expect("one");
            assert_eq!(first.status, "QUEUED");
            stream
        });
    }
    let mut streams = Vec::with_capacity(count);
    while let Some(stream) = opened.join_next().await {
        streams.push(stream.expect("opened"));
    }
    assert_eq!(streams.len(), count);

    tokio::time::sleep(Duration::from_secs(1)).await;
    let window = Duration::from_secs(5);
    let started = Instant::now();
    let commands_before = redis.info("total_commands_processed");
    tokio::time::sleep(window).await;
    let commands = redis.info("total_commands_processed") - commands_before;
    let elapsed = started.elapsed().as_secs_f64();
    let rss_after = rss(server.pid());
    let per_second = commands as f64 / elapsed;
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    eprintln!(
        "idle streams: {count} open; Redis processed {commands} commands in {elapsed:.1}s \
         ({per_second:.1}/s, the INFO calls included); server RSS {:.1} MiB ({:.1} MiB before \
         the streams, {:.0} bytes per stream)",
        mib(rss_after),
        mib(rss_before),
        rss_after.saturating_sub(rss_before) as f64 / count as f64,
    );
    // The server's own upkeep, whatever the number of streams.
    assert!(
        per_second <= 50.0,
        "{per_second:.1} commands/s while {count} streams idle"
    );
    drop(streams);
}
