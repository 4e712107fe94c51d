//! Traces leave the server over OTLP: a real server process exports to a collector that this
//! test runs (the OTLP trace service, as Tempo implements it).

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use taskmanager_proto::pb;
use tonic::{Request, Response, Status};

#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(request.into_inner());
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_of_requests_and_tasks_reach_the_otlp_endpoint() {
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

    let redis = support::Redis::start();
    let mut sets = support::fast_sets(&redis);
    sets.extend([
        "observability.tracing.enabled=true".to_owned(),
        format!("observability.tracing.endpoint={endpoint}"),
        "observability.tracing.sampling_ratio=1".to_owned(),
    ]);
    sets.extend([
        "server.log.level=debug".to_owned(),
        "server.log.format=json".to_owned(),
    ]);
    let scratch = support::Scratch::new("telemetry");
    let log = scratch.0.join("server.log");
    let mut server = support::ServerProcess::start_logging(&sets, Some(&log));
    let mut client = support::client(server.addr).await;
    let request = pb::TaskRequest {
        task_description: "traced".into(),
        ..Default::default()
    };
    let id = client
        .submit_task(request)
        .await
        .expect("accepted")
        .into_inner()
        .task_id;
    support::wait_until_async(Duration::from_secs(10), "COMPLETED", || {
        let mut client = client.clone();
        let id = id.clone();
        async move {
            client
                .get_task(pb::GetTaskRequest { task_id: id })
                .await
                .is_ok_and(|t| t.into_inner().status == "COMPLETED")
        }
    })
    .await;
    let (code, metrics) =
        support::http_get(server.metrics_addr, "/metrics").expect("the metrics answer");
    assert_eq!(code, 200, "{metrics}");
    // Shutting down flushes the spans still buffered.
    assert!(server.terminate().expect("exits").success());

    let exports = collector
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let mut names = Vec::new();
    let mut traces = std::collections::HashMap::new();
    for export in &exports {
        for resource in &export.resource_spans {
            let service = resource
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
                .and_then(|a| a.value.as_ref())
                .map(|v| format!("{:?}", v.value));
            assert!(
                service
                    .as_deref()
                    .is_some_and(|s| s.contains("taskmanager-server")),
                "{service:?}"
            );
            for scope in &resource.scope_spans {
                for span in &scope.spans {
                    names.push(span.name.clone());
                    traces.insert(span.name.clone(), span.trace_id.clone());
                }
            }
        }
    }
    assert!(names.contains(&"SubmitTask".to_owned()), "{names:?}");
    assert!(names.contains(&"task".to_owned()), "{names:?}");
    // The attempt joins the trace of the call that submitted the task.
    assert_eq!(
        traces.get("task"),
        traces.get("SubmitTask"),
        "one trace from submit to run"
    );

    // Its log lines carry the trace id, as Grafana's Loki datasource expects to find it.
    let trace_id: String = traces["SubmitTask"]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let logs = std::fs::read_to_string(&log).expect("the server log");
    let needle = format!("\"trace_id\":\"{trace_id}\"");
    let accepted = logs
        .lines()
        .find(|line| line.contains("Task accepted."))
        .unwrap_or_else(|| panic!("an acceptance log line in\n{logs}"));
    assert!(accepted.contains(&needle), "{accepted}");

    // The latency histograms carry the sampled attempt's trace as an exemplar (OpenMetrics:
    // `<bucket> <count> # {trace_id="..."} <value>`), for Grafana's metrics-to-trace link.
    let exemplar = format!(" # {{trace_id=\"{trace_id}\"}} ");
    for histogram in [
        "taskmanager_task_queue_wait_seconds_bucket{",
        "taskmanager_task_run_seconds_bucket{",
        "taskmanager_task_end_to_end_seconds_bucket{",
    ] {
        assert!(
            metrics
                .lines()
                .any(|line| line.starts_with(histogram) && line.contains(&exemplar)),
            "{histogram} with {exemplar} in\n{metrics}"
        );
    }
}
