//! What the dashboards and alerts read is what the server writes: every metric named by a
//! query of the rendered Grafana dashboard and of the rendered alerting rules is one that a
//! running server exports, with the type the query's suffix implies.

mod support;

use std::collections::BTreeSet;

use taskmanager_server::store::MemoryStore;
use taskmanager_server::{Settings, start};

/// The sample names a scrape can hold, from its `# TYPE` lines: a counter `x` is sampled as
/// `x_total`, a histogram as `x_bucket`, `x_sum` and `x_count`, a gauge as `x`.
fn exported(scrape: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in scrape.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (family, kind) = rest.split_once(' ').expect("# TYPE <name> <type>");
        match kind {
            "counter" => {
                names.insert(format!("{family}_total"));
            }
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{family}{suffix}"));
                }
            }
            _ => {
                names.insert(family.to_owned());
            }
        }
    }
    names
}

/// Every `taskmanager_*` metric name in `text` (recording rules, `taskmanager:*`, are not
/// metrics of the server).
fn named(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("taskmanager_") {
        let name: String = rest[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        names.insert(name.clone());
        rest = &rest[start + name.len()..];
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_and_alerts_read_only_metrics_the_server_exports() {
    let stack = stack_config::Loader::new()
        .sets([
            "server.store=memory",
            "server.replicas=1",
            "server.autoscaling.enabled=false",
            "redis.auth.enabled=false",
        ])
        .load()
        .expect("valid")
        .stack;
    let settings = Settings::from_stack(&stack).expect("settings");
    let store = std::sync::Arc::new(MemoryStore::new(settings.retention));
    let server = start(settings, store, "127.0.0.1:0".parse().expect("address"))
        .await
        .expect("starts");
    let addr = server.metrics_addr;
    let (code, scrape) = tokio::task::spawn_blocking(move || support::http_get(addr, "/metrics"))
        .await
        .expect("joins")
        .expect("the metrics answer");
    assert_eq!(code, 200);
    let exported = exported(&scrape);
    // The families the dashboard is built on exist even before anything happened.
    for family in [
        "taskmanager_queue_pending_tasks",
        "taskmanager_task_queue_wait_seconds_bucket",
        "taskmanager_grpc_responses_total",
    ] {
        assert!(exported.contains(family), "{family} in\n{scrape}");
    }

    let rendered = support::repo().join("rendered/configs");
    for file in ["taskmanager-dashboard.json", "alerts.yml"] {
        let text = std::fs::read_to_string(rendered.join(file)).expect("rendered");
        let named = named(&text);
        assert!(named.len() >= 5, "{file} names {named:?}");
        let unknown: Vec<&String> = named.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{file} queries metrics the server does not export: {unknown:?}\nexported: \
             {exported:?}"
        );
    }
    server.shutdown.cancel();
    let _ = server.handle.await;
}

#[test]
fn metric_names_are_found_in_queries() {
    let names = named(
        "sum(rate(taskmanager_tasks_failed_total[5m])) / taskmanager:x:rate5m and \
         taskmanager_store_up, \"uid\": \"taskmanager-overview\"",
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["taskmanager_store_up", "taskmanager_tasks_failed_total"]
    );
}
