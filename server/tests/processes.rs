//! Real server processes sharing a real `redis-server`: crashes, replicas, a Redis outage and
//! graceful shutdown.
//!
//! One concept: faults of whole processes.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use support::{Redis, ServerProcess};
use taskmanager_proto::pb;
use taskmanager_proto::pb::task_manager_client::TaskManagerClient;
use tonic::Code;
use tonic::transport::Channel;

fn sets(redis: &Redis, extra: &[&str]) -> Vec<String> {
    let mut sets = support::fast_sets(redis);
    sets.extend(extra.iter().map(|s| (*s).to_owned()));
    sets
}

/// Waits until `GetTask` reports `status` for `id`.
async fn wait_for_status(
    client: &TaskManagerClient<Channel>,
    id: &str,
    status: &str,
    timeout: Duration,
) {
    support::wait_until_async(timeout, status, || {
        let mut client = client.clone();
        let id = id.to_owned();
        async move {
            client
                .get_task(pb::GetTaskRequest { task_id: id })
                .await
                .is_ok_and(|t| t.into_inner().status == status)
        }
    })
    .await;
}

fn task(description: &str) -> pb::TaskRequest {
    pb::TaskRequest {
        task_description: description.into(),
        priority: pb::TaskPriority::Medium.into(),
        number1: 2,
        number2: 3,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_server_mid_task_loses_no_accepted_task() {
    let redis = Redis::start();
    let common = sets(
        &redis,
        &[
            "server.simulation.duration=1s",
            "server.workers.concurrency=4",
        ],
    );
    let mut doomed = ServerProcess::start(&common);
    let survivor = ServerProcess::start(&common);
    let mut client = support::client(doomed.addr).await;

    let mut ids = Vec::new();
    for n in 0..24 {
        let response = client
            .submit_task(task(&format!("task {n}")))
            .await
            .expect("accepted");
        ids.push(response.into_inner().task_id);
    }
    // Both servers are now running tasks; kill one in the middle of its work.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    doomed.kill_9();

    let mut client = support::client(survivor.addr).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let final_states = loop {
        let mut states = HashMap::new();
        for id in &ids {
            let task = client
                .get_task(pb::GetTaskRequest {
                    task_id: id.clone(),
                })
                .await;
            let task = task.expect("every accepted task still exists").into_inner();
            states.insert(id.clone(), task);
        }
        if states
            .values()
            .all(|t| t.status == "COMPLETED" || t.status == "FAILED")
        {
            break states;
        }
        assert!(
            Instant::now() < deadline,
            "tasks did not all finish: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let completed = final_states
        .values()
        .filter(|t| t.status == "COMPLETED")
        .count();
    assert_eq!(
        completed,
        ids.len(),
        "every accepted task completed: {final_states:?}"
    );
    let retried = final_states.values().filter(|t| t.attempt > 1).count();
    assert!(
        retried > 0,
        "the kill interrupted tasks that were then run again"
    );
    eprintln!(
        "crash test: {} tasks accepted, {completed} completed, {retried} re-run after the kill",
        ids.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_on_one_replica_follows_a_task_submitted_on_another() {
    let redis = Redis::start();
    let common = sets(
        &redis,
        &[
            "server.simulation.duration=600ms",
            "server.workers.concurrency=2",
        ],
    );
    let a = ServerProcess::start(&common);
    let b = ServerProcess::start(&common);
    let mut on_a = support::client(a.addr).await;
    let mut on_b = support::client(b.addr).await;

    for n in 0..6 {
        let id = on_a
            .submit_task(task(&format!("cross {n}")))
            .await
            .expect("accepted")
            .into_inner()
            .task_id;
        let mut stream = on_b
            .stream_task_status(pb::StatusRequest {
                task_id: id.clone(),
                after_sequence: None,
            })
            .await
            .expect("replica B knows the task")
            .into_inner();
        let mut statuses = Vec::new();
        while let Some(status) = stream.message().await.expect("a status") {
            statuses.push(status);
        }
        let sequences: Vec<u64> = statuses.iter().map(|s| s.sequence).collect();
        let first = sequences[0];
        let expected: Vec<u64> = (first..first + sequences.len() as u64).collect();
        assert_eq!(sequences, expected, "every transition, in order");
        let last = statuses.last().expect("a final status");
        assert_eq!(last.status, "COMPLETED");
        let full = on_a
            .get_task(pb::GetTaskRequest { task_id: id })
            .await
            .expect("get")
            .into_inner();
        assert_eq!(
            full.sequence, last.sequence,
            "the stream reached the last transition"
        );
        // QUEUED, IN_PROGRESS at 0, 10..90 percent, COMPLETED: 12 transitions in all.
        assert_eq!(full.sequence, 12);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_fails_fast_and_the_server_recovers() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let mut redis = Redis::start();
    let server = ServerProcess::start(&sets(&redis, &["server.simulation.duration=300ms"]));
    let mut client = support::client(server.addr).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.addr))
        .expect("address")
        .connect()
        .await
        .expect("connect");
    let health = HealthClient::new(channel);
    let status = |mut health: HealthClient<tonic::transport::Channel>| async move {
        health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|r| r.into_inner().status())
            .ok()
    };

    // Accepted before the outage, and kept by Redis' append-only file through it.
    let before = client
        .submit_task(pb::TaskRequest {
            delay_ms: 1500,
            ..task("before")
        })
        .await;
    let before = before.expect("accepted").into_inner().task_id;

    redis.kill();
    let started = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(10), client.submit_task(task("during")))
        .await
        .expect("SubmitTask answers instead of hanging");
    let elapsed = started.elapsed();
    assert_eq!(
        outcome.expect_err("Redis is down").code(),
        Code::Unavailable
    );
    eprintln!("outage: SubmitTask answered UNAVAILABLE after {elapsed:?}");
    support::wait_until_async(Duration::from_secs(10), "NOT_SERVING", || {
        let health = health.clone();
        async move { status(health).await == Some(ServingStatus::NotServing) }
    })
    .await;
    // The process is alive all the same: a liveness probe must not restart it.
    let mut alive = health.clone();
    let liveness = alive
        .check(HealthCheckRequest {
            service: "liveness".into(),
        })
        .await
        .expect("health answers");
    assert_eq!(liveness.into_inner().status(), ServingStatus::Serving);

    redis.restart();
    support::wait_until_async(Duration::from_secs(20), "SERVING again", || {
        let health = health.clone();
        async move { status(health).await == Some(ServingStatus::Serving) }
    })
    .await;
    let after = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match client.submit_task(task("after")).await {
                Ok(response) => return response.into_inner().task_id,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    })
    .await
    .expect("submissions work again without restarting the server");
    for id in [before, after] {
        wait_for_status(&client, &id, "COMPLETED", Duration::from_secs(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_running_tasks_back_and_exits_cleanly() {
    let redis = Redis::start();
    let slow = sets(
        &redis,
        &[
            "server.simulation.duration=20s",
            "server.shutdown_grace=300ms",
        ],
    );
    let mut server = ServerProcess::start(&slow);
    let mut client = support::client(server.addr).await;
    let id = client
        .submit_task(task("interrupted"))
        .await
        .expect("accepted")
        .into_inner()
        .task_id;
    wait_for_status(&client, &id, "IN_PROGRESS", Duration::from_secs(10)).await;
    let status = server.terminate().expect("the server exits");
    assert!(status.success(), "exit status {status:?}");

    // Handed back, without spending the attempt; another server finishes it.
    let fast = ServerProcess::start(&sets(&redis, &[]));
    let mut client = support::client(fast.addr).await;
    let task = client
        .get_task(pb::GetTaskRequest {
            task_id: id.clone(),
        })
        .await
        .expect("get");
    let task = task.into_inner();
    assert!(task.status == "QUEUED" || task.status == "IN_PROGRESS" || task.status == "COMPLETED");
    wait_for_status(&client, &id, "COMPLETED", Duration::from_secs(20)).await;
    let done = client
        .get_task(pb::GetTaskRequest { task_id: id })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(done.attempt, 1, "the hand-back did not spend an attempt");
}

/// `GET path` on `addr`; the status code, or 0 when nothing answers.
fn http_status(addr: std::net::SocketAddr, path: &str) -> u16 {
    support::http_get(addr, path).map_or(0, |(code, _)| code)
}

/// The gRPC health status of `service`, or `None` when the server does not answer.
async fn health(
    addr: std::net::SocketAddr,
    service: &str,
) -> Option<tonic_health::pb::health_check_response::ServingStatus> {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let channel = Channel::from_shared(format!("http://{addr}"))
        .ok()?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(2))
        .connect()
        .await
        .ok()?;
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .ok()
        .map(|r| r.into_inner().status())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_without_redis_serves_health_and_becomes_ready_when_redis_comes() {
    use tonic_health::pb::health_check_response::ServingStatus;
    // Nothing listens on this port yet.
    let port = support::free_port();
    let placeholder = Redis::start();
    let mut sets = sets(&placeholder, &[]);
    drop(placeholder);
    sets.retain(|set| !set.starts_with("redis.port="));
    sets.push(format!("redis.port={port}"));
    let server = ServerProcess::start(&sets);

    // It answers at once: alive, not ready.
    assert_eq!(
        health(server.addr, "liveness").await,
        Some(ServingStatus::Serving)
    );
    for service in ["", "proto.TaskManager"] {
        assert_eq!(
            health(server.addr, service).await,
            Some(ServingStatus::NotServing),
            "{service:?}"
        );
    }
    assert_eq!(http_status(server.metrics_addr, "/healthz"), 200);
    assert_eq!(http_status(server.metrics_addr, "/readyz"), 503);
    let mut client = support::client(server.addr).await;
    let refused = client.submit_task(task("too early")).await;
    assert_eq!(refused.expect_err("no Redis").code(), Code::Unavailable);

    // Redis comes; the server becomes ready by itself.
    let _redis = Redis::start_on(port);
    support::wait_until_async(Duration::from_secs(20), "SERVING", || async {
        health(server.addr, "proto.TaskManager").await == Some(ServingStatus::Serving)
    })
    .await;
    assert_eq!(http_status(server.metrics_addr, "/readyz"), 200);
    let id = client
        .submit_task(task("after"))
        .await
        .expect("accepted once Redis answers")
        .into_inner()
        .task_id;
    wait_for_status(&client, &id, "COMPLETED", Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_evicts_keys_is_refused_unless_allowed() {
    let redis = Redis::start();
    assert!(
        redis
            .query(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"])
            .starts_with("+OK")
    );
    let log = support::Scratch::new("evicting");
    let log = log.join("server.log");
    let mut refused = ServerProcess::start_logging(&sets(&redis, &[]), Some(&log));
    let status = refused
        .wait_exit(Duration::from_secs(20))
        .expect("the server exits by itself");
    assert!(!status.success(), "{status:?}");
    let logged = std::fs::read_to_string(&log).expect("the log");
    assert!(logged.contains("maxmemory-policy is"), "{logged}");
    assert!(logged.contains("allkeys-lru"), "{logged}");
    assert!(logged.contains("redis.allow_evicting_policy"), "{logged}");

    let allowed = ServerProcess::start(&sets(&redis, &["redis.allow_evicting_policy=true"]));
    let mut client = support::client(allowed.addr).await;
    support::wait_until_async(Duration::from_secs(20), "accepted", || {
        let mut client = client.clone();
        async move { client.submit_task(task("allowed")).await.is_ok() }
    })
    .await;
    let id = client
        .submit_task(task("allowed"))
        .await
        .expect("accepted")
        .into_inner()
        .task_id;
    wait_for_status(&client, &id, "COMPLETED", Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_a_full_redis_answer_resource_exhausted() {
    let redis = Redis::start();
    let server = ServerProcess::start(&sets(
        &redis,
        &[
            "server.simulation.duration=1500ms",
            "server.limits.max_in_flight=1",
            "server.limits.max_queued_tasks=3",
        ],
    ));
    let mut client = support::client(server.addr).await;
    support::wait_until_async(Duration::from_secs(20), "ready", || {
        let mut client = client.clone();
        async move { client.submit_task(task("warm-up")).await.is_ok() }
    })
    .await;

    // The cap on waiting tasks: two delayed tasks and a batch of two pass it.
    let mut waiting = Vec::new();
    for n in 0..2 {
        let response = client
            .submit_task(pb::TaskRequest {
                delay_ms: 60_000,
                ..task(&format!("waiting {n}"))
            })
            .await
            .expect("under the cap");
        waiting.push(response.into_inner().task_id);
    }
    let full = client
        .submit_tasks(pb::SubmitTasksRequest {
            tasks: vec![task("one more"), task("and another")],
        })
        .await
        .expect_err("over the cap");
    assert_eq!(full.code(), Code::ResourceExhausted, "{full:?}");
    assert!(full.message().contains("max_queued_tasks"), "{full:?}");

    for id in waiting {
        client
            .cancel_task(pb::CancelTaskRequest {
                task_id: id,
                reason: "make room".into(),
            })
            .await
            .expect("cancelled");
    }

    // A full Redis: submissions are refused whole, running tasks still finish.
    {
        let second = &mut client;
        let id = second
            .submit_task(task("runs through the full Redis"))
            .await
            .expect("accepted")
            .into_inner()
            .task_id;
        wait_for_status(second, &id, "IN_PROGRESS", Duration::from_secs(10)).await;
        assert!(
            redis
                .query(&["CONFIG", "SET", "maxmemory", "1"])
                .starts_with("+OK")
        );
        let refused = second
            .submit_task(task("no room"))
            .await
            .expect_err("Redis is full");
        assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
        assert!(refused.message().contains("out of memory"), "{refused:?}");
        wait_for_status(second, &id, "COMPLETED", Duration::from_secs(20)).await;
        assert!(
            redis
                .query(&["CONFIG", "SET", "maxmemory", "0"])
                .starts_with("+OK")
        );
        second
            .submit_task(task("room again"))
            .await
            .expect("accepted once Redis has room");
    }

    // In-flight requests: one slot, held by a submission stuck on a frozen Redis.
    redis.signal("STOP");
    let stuck = {
        let mut client = client.clone();
        tokio::spawn(async move { client.submit_task(task("stuck")).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let busy = client
        .get_task(pb::GetTaskRequest {
            task_id: "any".into(),
        })
        .await
        .expect_err("no slot left");
    redis.signal("CONT");
    assert_eq!(busy.code(), Code::ResourceExhausted, "{busy:?}");
    assert!(busy.message().contains("max_in_flight"), "{busy:?}");
    let _ = stuck.await;
}
