//! Traces leave the server over OTLP: a real server process exports to a collector that this
//! test runs (the OTLP trace service, as Tempo implements it).

mod support;

use std::time::Duration;

use taskmanager_proto::pb;
use taskmanager_telemetry::collector::Collector;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_of_requests_and_tasks_reach_the_otlp_endpoint() {
    let (collector, endpoint) = Collector::start().await.expect("a collector");

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
    let log = scratch.join("server.log");
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

    let spans = collector.spans();
    for span in &spans {
        assert_eq!(span.service, "taskmanager-server", "{span:?}");
    }
    let trace_of = |name: &str| {
        spans
            .iter()
            .find(|span| span.name == name)
            .map(|span| span.trace_id.clone())
            .unwrap_or_else(|| panic!("a {name} span in {spans:#?}"))
    };
    // The attempt joins the trace of the call that submitted the task.
    let trace_id = trace_of("SubmitTask");
    assert_eq!(trace_of("task"), trace_id, "one trace from submit to run");

    // Its log lines carry the trace id, as Grafana's Loki datasource expects to find it.
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
