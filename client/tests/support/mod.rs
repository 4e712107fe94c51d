//! Test harness for the client against real processes: a real `redis-server` on a free port,
//! real `taskmanager-server` processes that can be killed and started again on the same
//! port, and the client binary with its output read line by line. Everything started here
//! is stopped on drop, and every wait has a deadline. Mirrors `server/tests/support`.
//!
//! One concept: the client tests' harness.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant, SystemTime};
pub(crate) use taskmanager_test_support::Scratch;

/// A port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("bind a free port")
}

/// Kills `child` (SIGKILL) and reaps it.
fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits for `child` to exit until `deadline`; kills it and panics after.
fn wait_until(child: &mut Child, deadline: Instant, what: &str) -> ExitStatus {
    loop {
        if let Some(status) = child.try_wait().expect("poll the process") {
            return status;
        }
        if Instant::now() >= deadline {
            kill(child);
            panic!("timed out waiting for {what} to exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The lines of `stream`, read on a thread.
fn lines(stream: impl Read + Send + 'static) -> Receiver<String> {
    let (sender, receiver) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// A real `redis-server` on a free port, with its data in a scratch directory.
pub(crate) struct Redis {
    pub(crate) port: u16,
    child: Child,
    _dir: Scratch,
}

impl Redis {
    pub(crate) fn start() -> Self {
        let dir = Scratch::new("redis");
        for _ in 0..5 {
            let port = free_port();
            if let Some(child) = Self::spawn(port, dir.path()) {
                return Self {
                    port,
                    child,
                    _dir: dir,
                };
            }
        }
        panic!("could not start redis-server on a free port");
    }

    /// The process on `port` once it answers PING; `None` if it exited (the port was taken
    /// meanwhile).
    fn spawn(port: u16, dir: &Path) -> Option<Child> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--loglevel", "warning", "--protected-mode", "no"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(error) => panic!(
                "cannot run redis-server ({error}); scripts/test installs it (apt-get install \
                 redis-server)"
            ),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return None;
            }
            if ping(port) {
                return Some(child);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        kill(&mut child);
        None
    }
}

/// True when a Redis on `port` answers PING.
fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    use std::io::Write;
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buffer = [0u8; 64];
    matches!(stream.read(&mut buffer), Ok(n) if buffer[..n].starts_with(b"+PONG"))
}

impl Drop for Redis {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// `--set` overrides for a server on `redis` with fast lease timings (a killed server's task
/// is run again within ~2s), quiet logs and `extra` last.
pub(crate) fn server_sets(redis: &Redis, extra: &[&str]) -> Vec<String> {
    let mut sets: Vec<String> = vec![
        "server.store=redis".into(),
        "redis.mode=external".into(),
        "redis.host=127.0.0.1".into(),
        format!("redis.port={}", redis.port),
        "redis.auth.enabled=false".into(),
        "redis.connect_timeout=500ms".into(),
        "redis.command_timeout=500ms".into(),
        "server.lease.duration=2s".into(),
        "server.lease.renew_interval=300ms".into(),
        "server.lease.reaper_interval=200ms".into(),
        "server.retries.backoff_initial=100ms".into(),
        "server.retries.backoff_max=200ms".into(),
        "server.simulation.failure_rate=0".into(),
        "server.log.format=text".into(),
        "server.log.level=warn".into(),
        "observability.tracing.enabled=false".into(),
    ];
    sets.extend(extra.iter().map(|set| (*set).to_owned()));
    sets
}

/// The workspace root.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the client crate is in the workspace")
        .to_owned()
}

/// The `taskmanager-server` binary of this workspace.
///
/// Cargo gives a test the path of its own package's binaries only, so this one is found
/// next to the client binary: `cargo test --workspace` has just built it there. When it is
/// missing or older than the sources it is built from (`cargo test -p taskmanager-client`
/// after a server change), it is built with `cargo build -p taskmanager-server` first.
/// `TASKMANAGER_SERVER_BIN` names another binary instead.
pub(crate) fn server_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(find_server_binary).clone()
}

fn find_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("TASKMANAGER_SERVER_BIN") {
        return PathBuf::from(path);
    }
    let client = Path::new(env!("CARGO_BIN_EXE_taskmanager-client"));
    let sibling = client.with_file_name(format!(
        "taskmanager-server{}",
        std::env::consts::EXE_SUFFIX
    ));
    let built = std::fs::metadata(&sibling).and_then(|metadata| metadata.modified());
    let root = workspace();
    let sources = [
        "Cargo.toml",
        "Cargo.lock",
        "server",
        "proto",
        "tools/stack-config",
    ]
    .map(|part| newest(&root.join(part)));
    match built {
        Ok(built) if sources.iter().all(|source| *source <= built) => sibling,
        _ => build_server(client),
    }
}

/// The newest modification time of `path` and everything under it (`target` excluded).
fn newest(path: &Path) -> SystemTime {
    let mut newest = std::fs::metadata(path)
        .and_then(|metadata| metadata.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            if entry.file_name() != "target" {
                newest = newest.max(self::newest(&entry.path()));
            }
        }
    }
    newest
}

/// Builds the server binary with the client binary's profile; its path.
fn build_server(client: &Path) -> PathBuf {
    let profile_dir = client
        .parent()
        .and_then(Path::file_name)
        .and_then(|name| name.to_str())
        .unwrap_or("debug");
    let profile = match profile_dir {
        "debug" => "dev",
        other => other,
    };
    eprintln!("building taskmanager-server (profile {profile}) for the restart tests");
    let mut child = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(workspace())
        .args([
            "build",
            "--locked",
            "--profile",
            profile,
            "--message-format=json-render-diagnostics",
        ])
        .args(["-p", "taskmanager-server", "--bin", "taskmanager-server"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run cargo build");
    let messages = lines(child.stdout.take().expect("piped stdout"));
    let status = wait_until(
        &mut child,
        Instant::now() + Duration::from_secs(1800),
        "cargo build -p taskmanager-server",
    );
    assert!(status.success(), "cargo build -p taskmanager-server failed");
    // The process is gone, so its stdout ends and `iter` stops after the last message.
    messages
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(&line).ok())
        .filter(|message| message["target"]["name"] == "taskmanager-server")
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .expect("cargo reported the server executable")
}

/// A `taskmanager-server` process.
pub(crate) struct ServerProcess {
    pub(crate) addr: SocketAddr,
    child: Option<Child>,
    log: PathBuf,
    _scratch: Scratch,
}

impl ServerProcess {
    /// Starts `binary` with `sets` on `127.0.0.1:port` (0: a free port) and waits until it
    /// listens.
    pub(crate) fn start(binary: &Path, sets: &[String], port: u16) -> Self {
        let scratch = Scratch::new("server");
        let config = scratch.join("stack.yaml");
        std::fs::write(&config, "# settings come from --set\n").expect("write stack file");
        let log = scratch.join("server.log");
        let mut command = taskmanager_test_support::isolated(binary);
        command
            .arg("--config")
            .arg(&config)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--metrics-listen", "127.0.0.1:0"]);
        for set in sets {
            command.args(["--set", set]);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(&log).expect("create the server log"),
            ))
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run {}: {error}", binary.display()));
        let stdout = lines(child.stdout.take().expect("piped stdout"));
        let line = match stdout.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => line,
            Err(error) => {
                kill(&mut child);
                panic!(
                    "the server did not say where it listens ({error}); its log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        let addr = line
            .trim()
            .rsplit(' ')
            .next()
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("the server printed its address, got {line:?}"));
        Self {
            addr,
            child: Some(child),
            log,
            _scratch: scratch,
        }
    }

    /// SIGKILL: the process dies at once, mid-task, its connections reset.
    pub(crate) fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill(&mut child);
        }
    }

    /// SIGTERM (a graceful shutdown: streams end with UNAVAILABLE), then waits for the exit.
    pub(crate) fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the server runs");
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        wait_until(
            &mut child,
            Instant::now() + Duration::from_secs(20),
            "the server",
        )
    }

    /// What the server logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// A running `taskmanager-client`, its stdout read line by line.
pub(crate) struct ClientProcess {
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    _scratch: Scratch,
}

/// How a client process ended.
pub(crate) struct Finished {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: Vec<String>,
    pub(crate) stderr: String,
}

impl ClientProcess {
    /// Starts the client against `addr` with `args` (and an empty stack file).
    pub(crate) fn start(addr: SocketAddr, args: &[&str]) -> Self {
        let scratch = Scratch::new("client");
        let config = scratch.join("stack.yaml");
        std::fs::write(&config, "# defaults\n").expect("write stack file");
        let mut command =
            taskmanager_test_support::isolated(env!("CARGO_BIN_EXE_taskmanager-client"));
        command
            .arg("--config")
            .arg(&config)
            .args(["--address", &format!("http://{addr}")])
            .args(args);
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the client runs");
        let stdout = lines(child.stdout.take().expect("piped stdout"));
        let stderr = lines(child.stderr.take().expect("piped stderr"));
        Self {
            child,
            stdout,
            stderr,
            _scratch: scratch,
        }
    }

    /// The next line on stdout, or `None` at its end or at `deadline`.
    pub(crate) fn next_line(&self, deadline: Instant) -> Option<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        self.stdout.recv_timeout(left).ok()
    }

    /// Waits for the exit until `deadline` (then kills it and panics); the rest of its
    /// output.
    pub(crate) fn finish(mut self, deadline: Instant) -> Finished {
        let status = wait_until(&mut self.child, deadline, "the client");
        // The pipes close with the process; the reader threads drain them.
        let collect = |receiver: &Receiver<String>| {
            let mut lines = Vec::new();
            while let Ok(line) = receiver.recv_timeout(Duration::from_secs(5)) {
                lines.push(line);
            }
            lines
        };
        Finished {
            code: status.code(),
            stdout: collect(&self.stdout),
            stderr: collect(&self.stderr).join("\n"),
        }
    }
}

impl Drop for ClientProcess {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}
