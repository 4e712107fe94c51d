//! One trace from the client to the worker: the real client binary submits a task to the
//! real server binary (over a real `redis-server`), both exporting spans over OTLP to a
//! collector that this test runs. The client's `submit` span, the server's call spans and the
//! task's attempt share one trace id, and the server's span is a child of the client's. A
//! client that does not sample sends an unsampled context: the server follows it, and its
//! log lines carry no trace id that would link to a trace never exported.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use support::{ClientProcess, Redis, ServerProcess};

/// An OTLP trace receiver, as Tempo implements it: keeps every export.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// One exported span, flattened.
#[derive(Clone, Debug)]
struct Span {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    task_id: Option<String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn spans(collector: &Collector) -> Vec<Span> {
    let exports = collector
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let text = |value: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>| match value
        .as_ref()
        .and_then(|v| v.value.as_ref())
    {
        Some(Value::StringValue(text)) => Some(text.clone()),
        _ => None,
    };
    let mut out = Vec::new();
    for export in exports {
        for resource in export.resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| text(&a.value))
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    out.push(Span {
                        service: service.clone(),
                        name: span.name.clone(),
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent: hex(&span.parent_span_id),
                        task_id: span
                            .attributes
                            .iter()
                            .find(|a| a.key == "task_id")
                            .and_then(|a| text(&a.value)),
                    });
                }
            }
        }
    }
    out
}

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
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let redis = Redis::start();
    let endpoint_set = format!("observability.tracing.endpoint={endpoint}");
    let sets = support::server_sets(
        &redis,
        &[
            "server.simulation.duration=200ms",
            "observability.tracing.enabled=true",
            &endpoint_set,
            // The server keeps what the client sampled, and nothing else.
            "observability.tracing.sampling_ratio=0",
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

    let spans = spans(&collector);
    let client_span = spans
        .iter()
        .find(|s| s.service == "taskmanager-client" && s.name == "submit")
        .unwrap_or_else(|| panic!("the client's submit span in {spans:#?}"));
    assert_eq!(client_span.task_id.as_deref(), Some(sampled.as_str()));
    let trace: Vec<&Span> = spans
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
    assert_eq!(attempt.task_id.as_deref(), Some(sampled.as_str()));

    // Nothing of the unsampled task was exported, by either side.
    let leaked: Vec<&Span> = spans
        .iter()
        .filter(|s| s.task_id.as_deref() == Some(unsampled.as_str()))
        .collect();
    assert!(leaked.is_empty(), "unsampled spans exported: {leaked:#?}");

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
