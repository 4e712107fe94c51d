//! The gRPC API end to end: an in-process server over a real `redis-server`.
//!
//! One concept: the API end to end, as a client sees it.

mod support;

use std::time::Duration;

use taskmanager_proto::pb::task_manager_client::TaskManagerClient;
use taskmanager_proto::{original, pb};
use taskmanager_server::worker::handler::Arithmetic;
use taskmanager_server::{Running, open_store, start};
use tonic::Code;
use tonic::transport::Channel;

struct Harness {
    server: Running,
    client: TaskManagerClient<Channel>,
    _redis: support::Redis,
}

async fn harness(extra: &[&str]) -> Harness {
    let redis = support::Redis::start();
    let mut sets = support::fast_sets(&redis);
    sets.extend(extra.iter().map(|s| (*s).to_owned()));
    let settings = support::settings(&sets);
    let store = open_store(&settings).expect("a store");
    let server = start(settings, store, "127.0.0.1:0".parse().expect("an address"))
        .await
        .expect("the server starts");
    let client = support::client(server.addr).await;
    Harness {
        server,
        client,
        _redis: redis,
    }
}

fn request(description: &str, priority: pb::TaskPriority, a: i32, b: i32) -> pb::TaskRequest {
    pb::TaskRequest {
        task_description: description.into(),
        priority: priority.into(),
        number1: a,
        number2: b,
        ..Default::default()
    }
}

/// Every status of a task's stream, until it ends.
async fn stream(client: &mut TaskManagerClient<Channel>, id: &str) -> Vec<pb::StatusResponse> {
    let mut stream = client
        .stream_task_status(pb::StatusRequest {
            task_id: id.into(),
            after_sequence: None,
        })
        .await
        .expect("the stream opens")
        .into_inner();
    let mut statuses = Vec::new();
    let collect = async {
        while let Some(status) = stream.message().await.expect("a status") {
            statuses.push(status);
        }
    };
    tokio::time::timeout(Duration::from_secs(30), collect)
        .await
        .expect("the stream ends");
    statuses
}

/// The body of `GET /metrics`, checked to be OpenMetrics text.
async fn scrape(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to metrics");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or_default();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0; charset=utf-8"),
        "{head}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    body.to_owned()
}

fn assert_contiguous(statuses: &[pb::StatusResponse]) {
    for pair in statuses.windows(2) {
        assert_eq!(
            pair[1].sequence,
            pair[0].sequence + 1,
            "no gap or repeat: {statuses:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_is_accepted_run_and_streamed_to_completion() {
    let mut h = harness(&["server.simulation.duration=500ms"]).await;
    let id = h
        .client
        .submit_task(request("add", pb::TaskPriority::High, 20, 22))
        .await
        .expect("accepted")
        .into_inner()
        .task_id;
    let statuses = stream(&mut h.client, &id).await;
    assert_contiguous(&statuses);
    let last = statuses.last().expect("at least one status");
    assert_eq!(
        (last.status.as_str(), last.state()),
        ("COMPLETED", pb::TaskState::Completed)
    );
    assert_eq!(last.result, Arithmetic::compute(20, 22));
    assert_eq!(last.progress, 100);
    let progress: Vec<u32> = statuses
        .iter()
        .filter(|s| s.state() == pb::TaskState::InProgress)
        .map(|s| s.progress)
        .collect();
    assert_eq!(
        progress.last(),
        Some(&90),
        "progress is reported during the work: {progress:?}"
    );

    let task = h
        .client
        .get_task(pb::GetTaskRequest {
            task_id: id.clone(),
        })
        .await
        .expect("get");
    let task = task.into_inner();
    assert_eq!(
        (task.status.as_str(), task.sequence),
        ("COMPLETED", last.sequence)
    );
    assert_eq!(
        (task.number1, task.number2, task.kind.as_str()),
        (20, 22, "default")
    );
    // A stream opened after the end sends the final state and ends.
    let again = stream(&mut h.client, &id).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].sequence, last.sequence);

    let metrics = scrape(h.server.metrics_addr).await;
    // The container health check probes the same endpoint.
    let probe = |url: String| {
        std::process::Command::new(env!("CARGO_BIN_EXE_taskmanager-server"))
            .args(["probe", "--url", &url])
            .status()
            .expect("the probe runs")
    };
    assert!(probe(format!("http://{}/healthz", h.server.metrics_addr)).success());
    assert!(!probe(format!("http://{}/nothing-here", h.server.metrics_addr)).success());
    for line in [
        "taskmanager_tasks_submitted_total 1\n",
        "taskmanager_attempts_started_total 1\n",
        "taskmanager_tasks_completed_total 1\n",
        "taskmanager_tasks_running 0\n",
        "# TYPE taskmanager_tasks_completed counter\n",
        "# TYPE taskmanager_task_queue_wait_seconds histogram\n",
        "taskmanager_task_queue_wait_seconds_count{priority=\"high\"} 1\n",
        "taskmanager_task_run_seconds_count{outcome=\"completed\"} 1\n",
        "taskmanager_task_end_to_end_seconds_count{outcome=\"completed\"} 1\n",
        // The store's depths, read at the scrape: nothing waits any more.
        "taskmanager_queue_depths_up 1\n",
        "taskmanager_queue_pending_tasks{priority=\"low\"} 0\n",
        "taskmanager_queue_pending_tasks{priority=\"high\"} 0\n",
        "taskmanager_queue_leased_tasks 0\n",
        "taskmanager_queue_dead_tasks 0\n",
    ] {
        assert!(metrics.contains(line), "{line:?} in\n{metrics}");
    }
    h.server.shutdown.cancel();
    h.server
        .handle
        .await
        .expect("joins")
        .expect("a clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_the_original_proto_works_unchanged() {
    let h = harness(&["server.simulation.duration=300ms"]).await;
    let channel = Channel::from_shared(format!("http://{}", h.server.addr))
        .expect("address")
        .connect()
        .await
        .expect("connect");
    let mut old = original::task_manager_client::TaskManagerClient::new(channel);
    let response = old
        .submit_task(original::TaskRequest {
            task_description: "legacy".into(),
            priority: original::TaskPriority::Medium.into(),
            number1: 3,
            number2: 4,
        })
        .await
        .expect("accepted")
        .into_inner();
    assert!(!response.task_id.is_empty());
    let mut stream = old
        .stream_task_status(original::StatusRequest {
            task_id: response.task_id,
        })
        .await
        .expect("the stream opens")
        .into_inner();
    let mut statuses = Vec::new();
    while let Some(status) = stream.message().await.expect("a status") {
        statuses.push(status.status);
    }
    assert_eq!(statuses.last().map(String::as_str), Some("COMPLETED"));
    assert!(
        statuses
            .iter()
            .all(|s| ["QUEUED", "IN_PROGRESS", "COMPLETED"].contains(&s.as_str()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_the_right_status_and_the_server_stays_up() {
    let mut h = harness(&[
        "server.limits.max_description_bytes=16",
        "server.limits.max_key_bytes=8",
        "server.limits.max_payload_bytes=32",
        "server.limits.max_batch=2",
        "server.limits.max_message_bytes=2048",
    ])
    .await;
    let base = || request("ok", pb::TaskPriority::Low, 1, 2);
    let submit_cases: Vec<(&str, pb::TaskRequest, Code, &str)> = vec![
        (
            "priority out of range",
            pb::TaskRequest {
                priority: 7,
                ..base()
            },
            Code::InvalidArgument,
            "priority",
        ),
        (
            "negative priority",
            pb::TaskRequest {
                priority: -1,
                ..base()
            },
            Code::InvalidArgument,
            "priority",
        ),
        (
            "description too long",
            pb::TaskRequest {
                task_description: "x".repeat(17),
                ..base()
            },
            Code::InvalidArgument,
            "task_description",
        ),
        (
            "unknown kind",
            pb::TaskRequest {
                kind: "nope".into(),
                ..base()
            },
            Code::InvalidArgument,
            "kind",
        ),
        (
            "idempotency key too long",
            pb::TaskRequest {
                idempotency_key: "k".repeat(9),
                ..base()
            },
            Code::InvalidArgument,
            "idempotency_key",
        ),
        (
            "payload too large",
            pb::TaskRequest {
                payload: vec![1; 33],
                ..base()
            },
            Code::InvalidArgument,
            "payload",
        ),
        (
            "too many attempts",
            pb::TaskRequest {
                max_attempts: 1000,
                ..base()
            },
            Code::InvalidArgument,
            "max_attempts",
        ),
        (
            "delay too long",
            pb::TaskRequest {
                delay_ms: 40 * 24 * 3600 * 1000,
                ..base()
            },
            Code::InvalidArgument,
            "delay_ms",
        ),
        (
            "message too large",
            pb::TaskRequest {
                task_description: "x".repeat(4096),
                ..base()
            },
            Code::OutOfRange,
            "",
        ),
    ];
    for (case, request, code, field) in submit_cases {
        let status = h.client.submit_task(request).await.expect_err(case);
        let resource = code == Code::OutOfRange && status.code() == Code::ResourceExhausted;
        assert!(status.code() == code || resource, "{case}: {status:?}");
        assert!(
            status.message().contains(field),
            "{case}: {}",
            status.message()
        );
    }

    let stream_status = |id: &str| {
        let mut client = h.client.clone();
        let id = id.to_owned();
        async move {
            client
                .stream_task_status(pb::StatusRequest {
                    task_id: id,
                    after_sequence: None,
                })
                .await
                .map(|_| ())
                .expect_err("rejected")
        }
    };
    assert_eq!(stream_status("").await.code(), Code::InvalidArgument);
    assert_eq!(
        stream_status("not an id!").await.code(),
        Code::InvalidArgument
    );
    assert_eq!(
        stream_status(&"a".repeat(65)).await.code(),
        Code::InvalidArgument
    );
    let missing = stream_status("00000000-0000-4000-8000-000000000000").await;
    assert_eq!(missing.code(), Code::NotFound);
    assert!(missing.message().contains("does not exist"));
    let get = h
        .client
        .get_task(pb::GetTaskRequest {
            task_id: "missing".into(),
        })
        .await;
    assert_eq!(get.expect_err("unknown").code(), Code::NotFound);
    let cancel = h
        .client
        .cancel_task(pb::CancelTaskRequest {
            task_id: "missing".into(),
            reason: String::new(),
        })
        .await;
    assert_eq!(cancel.expect_err("unknown").code(), Code::NotFound);

    let batch = |tasks: Vec<pb::TaskRequest>| {
        let mut client = h.client.clone();
        async move { client.submit_tasks(pb::SubmitTasksRequest { tasks }).await }
    };
    assert_eq!(
        batch(vec![]).await.expect_err("empty").code(),
        Code::InvalidArgument
    );
    let too_many = batch(vec![base(), base(), base()])
        .await
        .expect_err("too many");
    assert_eq!(too_many.code(), Code::InvalidArgument);
    let one_bad = batch(vec![
        base(),
        pb::TaskRequest {
            priority: 9,
            ..base()
        },
    ])
    .await
    .expect_err("bad");
    assert_eq!(one_bad.code(), Code::InvalidArgument);
    assert!(
        one_bad.message().starts_with("tasks[1].priority"),
        "{}",
        one_bad.message()
    );

    // Nothing of the rejected batch was queued, and the server still works.
    let id = h
        .client
        .submit_task(base())
        .await
        .expect("still serving")
        .into_inner()
        .task_id;
    let statuses = stream(&mut h.client, &id).await;
    assert_eq!(
        statuses.last().map(|s| s.status.as_str()),
        Some("COMPLETED")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_lookups_idempotency_and_cancellation() {
    let mut h = harness(&["server.simulation.duration=10s"]).await;
    let delayed = |name: &str| pb::TaskRequest {
        delay_ms: 600_000,
        ..request(name, pb::TaskPriority::Medium, 1, 1)
    };
    let batch = h
        .client
        .submit_tasks(pb::SubmitTasksRequest {
            tasks: vec![delayed("a"), delayed("b"), delayed("c")],
        })
        .await
        .expect("accepted")
        .into_inner()
        .tasks;
    assert_eq!(batch.len(), 3);
    for (accepted, name) in batch.iter().zip(["a", "b", "c"]) {
        let task = h
            .client
            .get_task(pb::GetTaskRequest {
                task_id: accepted.task_id.clone(),
            })
            .await;
        let task = task.expect("exists").into_inner();
        assert_eq!(
            (task.task_description.as_str(), task.status.as_str()),
            (name, "QUEUED")
        );
    }

    // Idempotency: the same key gives the same task.
    let keyed = pb::TaskRequest {
        idempotency_key: "invoice-7".into(),
        ..delayed("keyed")
    };
    let first = h
        .client
        .submit_task(keyed.clone())
        .await
        .expect("accepted")
        .into_inner();
    let second = h
        .client
        .submit_task(keyed)
        .await
        .expect("accepted")
        .into_inner();
    assert_eq!(first.task_id, second.task_id);
    assert!(!first.deduplicated && second.deduplicated);

    // Cancelling a waiting task ends it at once; its stream shows CANCELLED and ends.
    let id = batch[0].task_id.clone();
    let cancelled = h
        .client
        .cancel_task(pb::CancelTaskRequest {
            task_id: id.clone(),
            reason: "changed my mind".into(),
        })
        .await
        .expect("cancel")
        .into_inner();
    assert_eq!(
        (cancelled.state(), cancelled.cancelled),
        (pb::TaskState::Cancelled, true)
    );
    let statuses = stream(&mut h.client, &id).await;
    assert_eq!(statuses.len(), 1);
    assert_eq!(
        (statuses[0].status.as_str(), statuses[0].error.as_str()),
        ("CANCELLED", "changed my mind")
    );
    let again = h
        .client
        .cancel_task(pb::CancelTaskRequest {
            task_id: id,
            reason: String::new(),
        })
        .await
        .expect("cancel")
        .into_inner();
    assert_eq!(
        (again.state(), again.cancelled),
        (pb::TaskState::Cancelled, false)
    );

    // Cancelling a running task stops its handler.
    let running = h
        .client
        .submit_task(request("long", pb::TaskPriority::High, 1, 1))
        .await
        .expect("accepted")
        .into_inner()
        .task_id;
    let mut watch = h
        .client
        .stream_task_status(pb::StatusRequest {
            task_id: running.clone(),
            after_sequence: None,
        })
        .await
        .expect("stream")
        .into_inner();
    loop {
        let status = watch.message().await.expect("a status").expect("not ended");
        if status.state() == pb::TaskState::InProgress {
            break;
        }
    }
    let response = h
        .client
        .cancel_task(pb::CancelTaskRequest {
            task_id: running.clone(),
            reason: String::new(),
        })
        .await
        .expect("cancel")
        .into_inner();
    assert!(response.cancelled);
    let mut last = None;
    let drain = async {
        while let Some(status) = watch.message().await.expect("a status") {
            last = Some(status);
        }
    };
    tokio::time::timeout(Duration::from_secs(5), drain)
        .await
        .expect("the handler stops early");
    let last = last.expect("a final status");
    assert_eq!(last.status, "CANCELLED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_attempts_are_retried_then_the_task_fails() {
    let mut h = harness(&[
        "server.simulation.failure_rate=1",
        "server.retries.max_attempts=3",
    ])
    .await;
    let id = h
        .client
        .submit_task(request("always fails", pb::TaskPriority::Low, 1, 2))
        .await
        .expect("accepted")
        .into_inner()
        .task_id;
    let statuses = stream(&mut h.client, &id).await;
    let last = statuses.last().expect("a final status");
    assert_eq!(
        (last.status.as_str(), last.attempt, last.max_attempts),
        ("FAILED", 3, 3)
    );
    assert_eq!(last.error, "simulated failure");
    let task = h
        .client
        .get_task(pb::GetTaskRequest { task_id: id })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(
        task.sequence, 7,
        "QUEUED, then IN_PROGRESS and QUEUED/FAILED for each attempt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_are_served() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let h = harness(&[]).await;
    let channel = Channel::from_shared(format!("http://{}", h.server.addr))
        .expect("address")
        .connect()
        .await
        .expect("connect");
    let mut health = HealthClient::new(channel.clone());
    support::wait_until_async(Duration::from_secs(10), "SERVING", || {
        let mut health = health.clone();
        async move {
            let response = health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: "proto.TaskManager".into(),
                })
                .await;
            response.is_ok_and(|r| r.into_inner().status() == ServingStatus::Serving)
        }
    })
    .await;
    let overall = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health");
    assert_eq!(overall.into_inner().status(), ServingStatus::Serving);
    let liveness = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "liveness".into(),
        })
        .await
        .expect("health");
    assert_eq!(liveness.into_inner().status(), ServingStatus::Serving);

    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut reflection = ServerReflectionClient::new(channel);
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection")
        .into_inner();
    let response = responses
        .message()
        .await
        .expect("a response")
        .expect("not empty");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"proto.TaskManager".to_owned()), "{names:?}");
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );
}

/// The statuses of a stream opened with `after`, until it ends.
async fn stream_after(
    client: &mut TaskManagerClient<Channel>,
    id: &str,
    after: Option<u64>,
) -> Result<Vec<pb::StatusResponse>, tonic::Status> {
    let mut stream = client
        .stream_task_status(pb::StatusRequest {
            task_id: id.into(),
            after_sequence: after,
        })
        .await?
        .into_inner();
    let mut statuses = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(status) = stream.message().await? {
            statuses.push(status);
        }
        Ok::<_, tonic::Status>(())
    })
    .await
    .expect("the stream ends")?;
    Ok(statuses)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_resume_after_a_sequence_number() {
    let mut h = harness(&["server.simulation.duration=300ms"]).await;
    let id = h
        .client
        .submit_task(request("resume", pb::TaskPriority::Medium, 1, 2))
        .await
        .expect("accepted")
        .into_inner()
        .task_id;
    // From the start, while it runs: every event, 1, 2, ... to COMPLETED.
    let full = stream_after(&mut h.client, &id, Some(0))
        .await
        .expect("streams");
    assert_eq!(full.first().map(|s| s.sequence), Some(1));
    assert_contiguous(&full);
    let last = full.last().expect("events").clone();
    assert_eq!(last.state(), pb::TaskState::Completed);

    // Resuming after any event gives exactly the rest.
    for after in [1, 3, last.sequence - 1] {
        let rest = stream_after(&mut h.client, &id, Some(after))
            .await
            .expect("streams");
        let sequences: Vec<u64> = rest.iter().map(|s| s.sequence).collect();
        assert_eq!(sequences, (after + 1..=last.sequence).collect::<Vec<_>>());
        assert_eq!(
            rest,
            full[usize::try_from(after).expect("small")..].to_vec()
        );
    }
    // After the last event of a finished task there is nothing more: the stream just ends.
    let none = stream_after(&mut h.client, &id, Some(last.sequence))
        .await
        .expect("ends");
    assert!(none.is_empty(), "{none:?}");
    // Unset, as old clients send it: the current state only.
    let current = stream_after(&mut h.client, &id, None)
        .await
        .expect("streams");
    assert_eq!(current, vec![last.clone()]);
    // Past the latest event: OUT_OF_RANGE, saying so.
    let past = stream_after(&mut h.client, &id, Some(last.sequence + 5))
        .await
        .expect_err("past the end");
    assert_eq!(past.code(), tonic::Code::OutOfRange, "{past:?}");
    assert!(past.message().contains("after_sequence"), "{past:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_beyond_the_limit_are_refused_until_one_closes() {
    let mut h = harness(&[
        "server.simulation.duration=30s",
        "server.limits.max_streams=2",
    ])
    .await;
    let id = h
        .client
        .submit_task(request("long", pb::TaskPriority::Medium, 1, 2))
        .await
        .expect("accepted")
        .into_inner()
        .task_id;
    let open = |mut client: TaskManagerClient<Channel>, id: String| async move {
        client
            .stream_task_status(pb::StatusRequest {
                task_id: id,
                after_sequence: None,
            })
            .await
    };
    let first = open(h.client.clone(), id.clone())
        .await
        .expect("the first stream");
    let _second = open(h.client.clone(), id.clone())
        .await
        .expect("the second stream");
    let third = open(h.client.clone(), id.clone())
        .await
        .expect_err("over the limit");
    assert_eq!(third.code(), tonic::Code::ResourceExhausted, "{third:?}");
    assert!(third.message().contains("max_streams"), "{third:?}");
    // A stream that closes frees its place.
    drop(first);
    support::wait_until_async(Duration::from_secs(10), "a free stream", || {
        let (client, id) = (h.client.clone(), id.clone());
        async move { open(client, id).await.is_ok() }
    })
    .await;
    let cancelled = h
        .client
        .cancel_task(pb::CancelTaskRequest {
            task_id: id,
            reason: String::new(),
        })
        .await
        .expect("cancel");
    assert!(cancelled.into_inner().cancelled);
}

/// A codec that sends and receives bytes as they are: a client that can send anything.
#[derive(Clone, Copy, Default)]
struct Raw;

impl tonic::codec::Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl tonic::codec::Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        buffer: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        prost::bytes::BufMut::put_slice(buffer, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        buffer: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use prost::bytes::Buf;
        Ok(Some(buffer.copy_to_bytes(buffer.remaining()).to_vec()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversize_requests_get_client_codes_and_are_counted() {
    let h = harness(&["server.limits.max_message_bytes=65536"]).await;
    let channel = Channel::from_shared(format!("http://{}", h.server.addr))
        .expect("address")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    let mut call = async |bytes: Vec<u8>| {
        grpc.ready().await.expect("ready");
        grpc.unary(
            tonic::Request::new(bytes),
            tonic::codegen::http::uri::PathAndQuery::from_static("/proto.TaskManager/SubmitTask"),
            Raw,
        )
        .await
    };
    // task_description (field 1) that is not UTF-8.
    let not_utf8 = call(vec![0x0a, 0x02, 0xff, 0xfe])
        .await
        .expect_err("refused");
    assert_eq!(not_utf8.code(), Code::InvalidArgument, "{not_utf8:?}");
    // Not protobuf at all.
    let garbage = call(vec![0xff; 7]).await.expect_err("refused");
    assert_eq!(garbage.code(), Code::InvalidArgument, "{garbage:?}");
    assert!(
        garbage.message().contains("not a valid message"),
        "{garbage:?}"
    );
    // Larger than server.limits.max_message_bytes.
    let mut large = vec![0x0a, 0x80, 0x80, 0x05]; // field 1, 81,920 bytes
    large.extend(std::iter::repeat_n(b'a', 81_920));
    let too_large = call(large).await.expect_err("refused");
    assert_eq!(too_large.code(), Code::ResourceExhausted, "{too_large:?}");
    assert!(
        too_large.message().contains("max_message_bytes"),
        "{too_large:?}"
    );
    // A valid one still works on the same connection.
    let valid = call(vec![0x0a, 0x02, b'o', b'k']).await.expect("accepted");
    assert!(!valid.into_inner().is_empty());

    let metrics = scrape(h.server.metrics_addr).await;
    for line in [
        "taskmanager_grpc_responses_total{method=\"SubmitTask\",code=\"INVALID_ARGUMENT\"} 2\n",
        "taskmanager_grpc_responses_total{method=\"SubmitTask\",code=\"RESOURCE_EXHAUSTED\"} 1\n",
        "taskmanager_grpc_responses_total{method=\"SubmitTask\",code=\"OK\"} 1\n",
    ] {
        assert!(metrics.contains(line), "{line:?} in\n{metrics}");
    }
}
