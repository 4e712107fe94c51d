//! One trace from the client to the worker: the real client binary submits a task to the
//! real server binary (over a real `redis-server`), both exporting spans over OTLP to a
//! collector that this test runs. The client's `submit` span, the server's call spans and the
//! task's attempt share one trace id, and the server's span is a child of the client's. A
//! client that does not sample sends an unsampled context: the server (which samples every
//! trace it starts) follows it, and its log lines carry no trace id that would link to a
//! trace never exported.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use support::{ClientProcess, Redis, ServerProcess};
use taskmanager_telemetry::collector::{Collector, ExportedSpan};

/// Runs `submit` with the client's tracing at `ratio`; returns the task id.
fn submit(server: &ServerProcess, endpoint: &str, ratio: &str) -> String {
    let endpoint = format!("observability.tracing.endpoint={endpoint}");
    let ratio = format!("observability.tracing.sampling_ratio={ratio}");
    let client = ClientProcess::start(
        server.addr,
        &[
            "--set",
            "observability.tracing.enabled=true",
            "--set",
            &endpoint,
            "--set",
            &ratio,
            "submit",
            "--number1",
            "2",
            "--number2",
            "3",
        ],
    );
    let finished = client.finish(Instant::now() + Duration::from_secs(30));
    assert_eq!(
        finished.code,
        Some(0),
        "the task completes: {:?}\n{}",
        finished.stdout,
        finished.stderr
    );
    // `accepted <id>` on stderr, before the statuses.
    finished
        .stderr
        .lines()
        .find_map(|line| line.strip_prefix("accepted "))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("the client names the task: {}", finished.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_runs_from_the_client_to_the_worker() {
    let (collector, endpoint) = Collector::start().await.expect("a collector");

    let redis = Redis::start();
    let endpoint_set = format!("observability.tracing.endpoint={endpoint}");
    let sets = support::server_sets(
        &redis,
        &[
            "server.simulation.duration=200ms",
            "observability.tracing.enabled=true",
            &endpoint_set,
            // The server would keep every trace it starts: what it drops, it drops because
            // the client's trace context said the trace is not sampled.
            "observability.tracing.sampling_ratio=1",
            "server.log.level=debug",
            "server.log.format=json",
        ],
    );
    let binary = support::server_binary();
    let mut server = ServerProcess::start(&binary, &sets, 0);

    let sampled = tokio::task::block_in_place(|| submit(&server, &endpoint, "1"));
    let unsampled = tokio::task::block_in_place(|| submit(&server, &endpoint, "0"));
    // Shutting down flushes the server's spans still buffered (the client flushed at exit).
    assert!(server.terminate().success(), "{}", server.log());
    let log = server.log();

    let spans = collector.spans();
    let client_span = spans
        .iter()
        .find(|s| s.service == "taskmanager-client" && s.name == "submit")
        .unwrap_or_else(|| panic!("the client's submit span in {spans:#?}"));
    assert_eq!(client_span.attributes.get("task_id"), Some(&sampled));
    let trace: Vec<&ExportedSpan> = spans
        .iter()
        .filter(|s| s.trace_id == client_span.trace_id)
        .collect();
    let names: Vec<(&str, &str)> = trace
        .iter()
        .map(|s| (s.service.as_str(), s.name.as_str()))
        .collect();
    for expected in [
        ("taskmanager-client", "submit"),
        ("taskmanager-server", "proto.TaskManager/SubmitTask"),
        ("taskmanager-server", "SubmitTask"),
        ("taskmanager-server", "proto.TaskManager/StreamTaskStatus"),
        ("taskmanager-server", "task"),
    ] {
        assert!(names.contains(&expected), "{expected:?} in {names:?}");
    }
    // The server's call span continues the client's span.
    let call = trace
        .iter()
        .find(|s| s.name == "proto.TaskManager/SubmitTask")
        .expect("the call span");
    assert_eq!(call.parent, client_span.span_id);
    // The attempt ran the task the client submitted.
    let attempt = trace
        .iter()
        .find(|s| s.name == "task")
        .expect("the attempt");
    assert_eq!(attempt.attributes.get("task_id"), Some(&sampled));

    // Nothing of the unsampled task was exported, by either side: every span exported is of
    // the sampled trace.
    let leaked: Vec<&ExportedSpan> = spans
        .iter()
        .filter(|s| s.trace_id != client_span.trace_id)
        .collect();
    assert!(
        leaked.is_empty(),
        "spans outside the sampled trace: {leaked:#?}"
    );

    // Log lines link to exported traces only.
    let lines: HashMap<&str, &str> = [&sampled, &unsampled]
        .into_iter()
        .map(|id| {
            let line = log
                .lines()
                .find(|line| line.contains("Task accepted.") && line.contains(id.as_str()))
                .unwrap_or_else(|| panic!("an acceptance line for {id} in\n{log}"));
            (id.as_str(), line)
        })
        .collect();
    let linked = format!("\"trace_id\":\"{}\"", client_span.trace_id);
    assert!(
        lines[sampled.as_str()].contains(&linked),
        "{}",
        lines[sampled.as_str()]
    );
    assert!(
        !lines[unsampled.as_str()].contains("trace_id"),
        "{}",
        lines[unsampled.as_str()]
    );
}
