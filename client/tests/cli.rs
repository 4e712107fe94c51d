//! `taskmanager-client` driven through the real binary against an in-process server (the
//! in-memory store: these tests are about the client, the server has its own).

use std::sync::Arc;

use stack_config::Loader;
use taskmanager_server::store::MemoryStore;
use taskmanager_server::{Running, Settings, start};

async fn server(sets: &[&str]) -> Running {
    let mut all = vec![
        "server.store=memory",
        "server.replicas=1",
        "server.autoscaling.enabled=false",
    ];
    all.extend(["redis.auth.enabled=false", "server.log.level=warn"]);
    all.extend(sets);
    let stack = Loader::new()
        .sets(all)
        .load()
        .expect("valid test settings")
        .stack;
    let settings = Settings::from_stack(&stack).expect("settings");
    let store = Arc::new(MemoryStore::new(settings.retention));
    start(settings, store, "127.0.0.1:0".parse().expect("address"))
        .await
        .expect("the server starts")
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn client(addr: std::net::SocketAddr, args: &[&str]) -> Outcome {
    let scratch = std::env::temp_dir().join(format!("client-test-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let config = scratch.join("stack.yaml");
    std::fs::write(&config, "# defaults\n").expect("write");
    let mut command = tokio::process::Command::from(taskmanager_test_support::isolated(env!(
        "CARGO_BIN_EXE_taskmanager-client"
    )));
    command
        .arg("--config")
        .arg(&config)
        .args(["--address", &format!("http://{addr}")])
        .args(args);
    let output = command.output().await.expect("the client runs");
    Outcome {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_streams_plain_lines_and_exits_0() {
    let running = server(&["server.simulation.duration=200ms"]).await;
    let out = client(
        running.addr,
        &["submit", "--number1", "7", "--number2", "-3"],
    )
    .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines.len() >= 3, "{}", out.stdout);
    let last = lines.last().expect("a line");
    assert!(
        last.ends_with(r#"COMPLETED 100% attempt 1/3 result {"sum":4,"difference":10,"product":-21,"quotient":-2}"#),
        "{last}"
    );
    assert!(out.stderr.starts_with("accepted "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_and_a_failed_task_exits_1() {
    let running = server(&["server.simulation.failure_rate=1"]).await;
    let out = client(running.addr, &["--json", "submit", "--max-attempts", "2"]).await;
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let statuses: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    let last = statuses.last().expect("a status");
    assert_eq!(last["status"], "FAILED");
    assert_eq!(last["attempt"], 2);
    assert_eq!(last["error"], "simulated failure");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_cancel_watch_and_errors() {
    let running = server(&["server.simulation.duration=30s"]).await;
    let out = client(
        running.addr,
        &["submit", "--no-watch", "--delay-ms", "600000"],
    )
    .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let id = out.stdout.trim().to_owned();

    let out = client(running.addr, &["get", &id]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("status: \"QUEUED\"\n"),
        "{}",
        out.stdout
    );

    let out = client(
        running.addr,
        &["cancel", &id, "--reason", "no longer needed"],
    )
    .await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "cancelled (now CANCELLED)\n")
    );
    let out = client(running.addr, &["watch", &id]).await;
    assert_eq!(out.code, Some(1), "a cancelled task is not a success");
    assert!(out.stdout.contains("CANCELLED"), "{}", out.stdout);

    let out = client(
        running.addr,
        &["watch", "00000000-0000-4000-8000-000000000000"],
    )
    .await;
    assert_eq!(out.code, Some(3));
    assert!(out.stderr.contains("NotFound"), "{}", out.stderr);
    let out = client(running.addr, &["submit", "--kind", "nope"]).await;
    assert_eq!(out.code, Some(3));
    assert!(out.stderr.contains("kind: no handler"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_reports_throughput_and_percentiles() {
    let running = server(&["server.workers.concurrency=4"]).await;
    let out = client(
        running.addr,
        &["load", "--tasks", "200", "--concurrency", "8"],
    )
    .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.starts_with("load: 200 tasks, concurrency 8"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("accepted 200 (rejected 0), completed 200, failed 0"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("end-to-end latency ms: p50 "),
        "{}",
        out.stdout
    );

    let out = client(
        running.addr,
        &["--json", "load", "-n", "50", "-C", "5", "--no-wait"],
    )
    .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("JSON report");
    assert_eq!(report["submitted"], 50);
    assert!(report["throughput_per_s"].as_f64().is_some_and(|t| t > 0.0));
    assert!(report["end_to_end_latency_ms"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_the_requested_number_of_tasks() {
    let running = server(&[]).await;
    let out = client(running.addr, &["demo", "--count", "3", "--rate", "20"]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let completed = out
        .stdout
        .lines()
        .filter(|line| line.contains(" COMPLETED "))
        .count();
    assert_eq!(completed, 3, "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_exits_3() {
    let running = server(&[]).await;
    let addr = running.addr;
    running.shutdown.cancel();
    let _ = running.handle.await;
    let out = client(addr, &["watch", "x"]).await;
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with("error: cannot connect to http://127.0.0.1:"),
        "{}",
        out.stderr
    );
}
