//! `taskmanager-client submit` while the real `taskmanager-server` under it is killed and
//! started again on the same port: the status stream resumes where it broke
//! (`after_sequence`), every transition is shown exactly once, and the client exits with the
//! task's outcome. Real processes throughout: `redis-server`, the server binary, the client
//! binary.

mod support;

use std::time::{Duration, Instant};

use support::{ClientProcess, Redis, ServerProcess};

/// How the first server goes away.
#[derive(Clone, Copy, Debug)]
enum Stop {
    /// SIGKILL: connections reset, the task's lease expires and a new server runs it again.
    Kill,
    /// SIGTERM with no grace period: streams end with UNAVAILABLE, the task is handed back.
    Terminate,
}

/// The task's latest sequence number, asked of the server at `addr`.
fn latest_sequence(addr: std::net::SocketAddr, id: &str) -> Option<u64> {
    let get = ClientProcess::start(addr, &["--json", "get", id]);
    let finished = get.finish(Instant::now() + Duration::from_secs(10));
    let task: serde_json::Value = serde_json::from_str(finished.stdout.first()?).ok()?;
    task["sequence"].as_u64()
}

/// Submits a 4s task with `--json` and stops the server once the task has made progress.
/// A second server on another port (a replica the client does not talk to) carries on with
/// the task while the client is cut off; once it has moved the task on by a few events, a
/// new server starts on the first one's port. The client must show exactly the events it
/// missed and the rest, then exit 0.
fn submit_survives(stop: Stop) {
    let redis = Redis::start();
    let binary = support::server_binary();
    let sets = support::server_sets(
        &redis,
        &["server.simulation.duration=4s", "server.shutdown_grace=0s"],
    );
    let mut first = ServerProcess::start(&binary, &sets, 0);
    let port = first.addr.port();
    let client = ClientProcess::start(
        first.addr,
        &[
            "--json",
            "--reconnect-for",
            "30s",
            "submit",
            "--number1",
            "7",
            "--number2",
            "-3",
        ],
    );

    let mut statuses = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let Some(line) = client.next_line(deadline) else {
            panic!(
                "no progress before the deadline; got {statuses:?}; server log:\n{}",
                first.log()
            );
        };
        let status: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|error| panic!("stdout holds only JSON lines: {line:?}: {error}"));
        let running = status["status"] == "IN_PROGRESS" && status["progress"].as_u64() >= Some(20);
        statuses.push(status);
        if running {
            break;
        }
    }
    let before = statuses.len();
    let shown = statuses[before - 1]["sequence"]
        .as_u64()
        .expect("a sequence number");
    let id = statuses[0]["task_id"]
        .as_str()
        .expect("a task id")
        .to_owned();
    let replica = ServerProcess::start(&binary, &sets, 0);
    match stop {
        Stop::Kill => first.kill_9(),
        Stop::Terminate => {
            let exit = first.terminate();
            assert!(exit.success(), "the server shut down cleanly: {exit:?}");
        }
    }
    // Events the client cannot see yet: the hand-back or lease expiry, the new attempt.
    let deadline = Instant::now() + Duration::from_secs(30);
    while latest_sequence(replica.addr, &id).is_none_or(|latest| latest < shown + 3) {
        assert!(
            Instant::now() < deadline,
            "the replica did not take the task over; its log:\n{}",
            replica.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let second = ServerProcess::start(&binary, &sets, port);
    let finished = client.finish(Instant::now() + Duration::from_secs(60));

    for line in &finished.stdout {
        statuses.push(
            serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("stdout holds only JSON lines: {line:?}: {error}")),
        );
    }
    let context = || {
        format!(
            "{stop:?}: exit {:?}\nstdout:\n{}\nstderr:\n{}\nsecond server's log:\n{}",
            finished.code,
            statuses
                .iter()
                .map(|status| status.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
            finished.stderr,
            second.log()
        )
    };
    assert_eq!(finished.code, Some(0), "{}", context());
    assert!(
        statuses.len() > before,
        "statuses came after the restart: {}",
        context()
    );
    let sequences: Vec<u64> = statuses
        .iter()
        .map(|status| status["sequence"].as_u64().expect("a sequence number"))
        .collect();
    let first_sequence = sequences[0];
    let expected: Vec<u64> = (first_sequence..first_sequence + sequences.len() as u64).collect();
    assert_eq!(sequences, expected, "contiguous, no repeats: {}", context());
    let last = statuses.last().expect("a status");
    assert_eq!(last["status"], "COMPLETED", "{}", context());
    assert_eq!(
        last["result"],
        r#"{"sum":4,"difference":10,"product":-21,"quotient":-2}"#,
        "{}",
        context()
    );
    let address = format!("http://127.0.0.1:{port}");
    assert!(
        finished
            .stderr
            .contains(&format!("reconnecting to {address} in ")),
        "the client said it was reconnecting: {}",
        context()
    );
    // The client may have read an event or two more than this test before the stop.
    let resumed_after: Vec<u64> = finished
        .stderr
        .lines()
        .filter_map(|line| line.strip_prefix("reconnected; resuming after #"))
        .map(|sequence| sequence.parse().expect("a sequence number"))
        .collect();
    let last_sequence = sequences[sequences.len() - 1];
    assert!(
        !resumed_after.is_empty()
            && resumed_after
                .iter()
                .all(|after| (shown..last_sequence).contains(after)),
        "the client resumed after a status it showed: {}",
        context()
    );
    eprintln!(
        "{stop:?}: the client showed #{first_sequence}..#{last_sequence} contiguously, \
         resuming after {resumed_after:?}"
    );
}

#[test]
fn submit_survives_a_server_killed_mid_task() {
    submit_survives(Stop::Kill);
}

#[test]
fn submit_survives_a_graceful_server_restart() {
    submit_survives(Stop::Terminate);
}

#[test]
fn giving_up_after_reconnect_for_exits_3() {
    let redis = Redis::start();
    let binary = support::server_binary();
    let sets = support::server_sets(&redis, &["server.simulation.duration=10s"]);
    let mut server = ServerProcess::start(&binary, &sets, 0);
    let client = ClientProcess::start(server.addr, &["--reconnect-for", "1s", "submit"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = client.next_line(deadline).expect("a first status");
    server.kill_9();
    let started = Instant::now();
    let finished = client.finish(Instant::now() + Duration::from_secs(30));
    let waited = started.elapsed();
    assert_eq!(finished.code, Some(3), "{}", finished.stderr);
    let address = format!("http://{}", server.addr);
    let last = finished.stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: ")
            && last.contains(&format!("; gave up reconnecting to {address} after 1."))
            && last.ends_with("s without a new status (--reconnect-for 1s)"),
        "{}",
        finished.stderr
    );
    assert!(
        finished
            .stderr
            .contains(&format!("reconnecting to {address} in ")),
        "{}",
        finished.stderr
    );
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(10),
        "gave up after {waited:?}"
    );
    assert!(first.contains(" #"), "plain lines: {first}");
}
