//! Test harness: real `redis-server` processes on free ports, real server processes, and
//! in-process servers. Everything started here is stopped on drop.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use stack_config::Loader;
use taskmanager_proto::pb::task_manager_client::TaskManagerClient;
use taskmanager_server::Settings;
use tonic::transport::Channel;

/// A scratch directory, removed on drop.
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    pub(crate) fn new(label: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "taskmanager-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create scratch dir");
        Self(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port nobody listens on right now.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("bind a free port")
}

/// Polls `check` until it holds or `timeout` passes.
pub(crate) fn wait_until(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A real `redis-server`, with append-only persistence, on a free port.
pub(crate) struct Redis {
    pub(crate) port: u16,
    dir: Scratch,
    child: Option<Child>,
}

impl Redis {
    pub(crate) fn start() -> Self {
        let dir = Scratch::new("redis");
        let mut redis = Self {
            port: 0,
            dir,
            child: None,
        };
        for _ in 0..5 {
            redis.port = free_port();
            if redis.spawn() {
                return redis;
            }
        }
        panic!("could not start redis-server on a free port");
    }

    /// Starts the process on `self.port`; false if it exited (the port was taken meanwhile).
    fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .args(["--loglevel", "warning", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir.0)
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
                return false;
            }
            if self.ping() {
                self.child = Some(child);
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        false
    }

    /// True when the server answers PING (and has loaded its data).
    pub(crate) fn ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        use std::io::{Read, Write};
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        if stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buffer = [0u8; 64];
        matches!(stream.read(&mut buffer), Ok(n) if buffer[..n].starts_with(b"+PONG"))
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server (SIGKILL).
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same data directory.
    pub(crate) fn restart(&mut self) {
        self.kill();
        assert!(self.spawn(), "redis-server restarts on port {}", self.port);
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `--set` overrides for a server talking to `redis` with fast timings.
pub(crate) fn fast_sets(redis: &Redis) -> Vec<String> {
    vec![
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
        "server.shutdown_grace=2s".into(),
        "server.simulation.duration=0s".into(),
        "server.simulation.failure_rate=0".into(),
        "server.log.format=text".into(),
        "server.log.level=warn".into(),
        "observability.tracing.enabled=false".into(),
    ]
}

/// Settings from the built-in defaults plus `sets`.
pub(crate) fn settings(sets: &[String]) -> Settings {
    let stack = Loader::new()
        .sets(sets.iter().cloned())
        .load()
        .unwrap_or_else(|report| panic!("test settings are valid:\n{report}"))
        .stack;
    Settings::from_stack(&stack).expect("settings")
}

/// A gRPC client of `addr`.
pub(crate) async fn client(addr: SocketAddr) -> TaskManagerClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("a valid address")
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("connect to the server");
    TaskManagerClient::new(channel)
}

/// The repository root (the server finds no `stack.yaml` there: tests pass settings
/// explicitly).
pub(crate) fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// A `taskmanager-server` process.
pub(crate) struct ServerProcess {
    pub(crate) addr: SocketAddr,
    child: Option<Child>,
    _scratch: Scratch,
}

impl ServerProcess {
    /// Starts the real binary with `sets` (and an empty stack file) and waits until it
    /// listens.
    pub(crate) fn start(sets: &[String]) -> Self {
        Self::start_logging(sets, None)
    }

    /// Like `start`, with the server's stderr (its logs) written to `log`.
    pub(crate) fn start_logging(sets: &[String], log: Option<&Path>) -> Self {
        let scratch = Scratch::new("server");
        let config = scratch.0.join("stack.yaml");
        std::fs::write(&config, "# settings come from --set\n").expect("write stack file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_taskmanager-server"));
        command.arg("--config").arg(&config).args([
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ]);
        for set in sets {
            command.args(["--set", set]);
        }
        for (name, _) in std::env::vars() {
            if name.starts_with("TASKMANAGER__") || name.starts_with("STACK_") {
                command.env_remove(name);
            }
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(match log {
                Some(path) => Stdio::from(std::fs::File::create(path).expect("create the log")),
                None => Stdio::inherit(),
            })
            .spawn()
            .expect("start taskmanager-server");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let addr = line
            .trim()
            .rsplit(' ')
            .next()
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("the server printed its address, got {line:?}"));
        Self {
            addr,
            child: Some(child),
            _scratch: scratch,
        }
    }

    /// SIGKILL: the process dies at once, mid-task.
    pub(crate) fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for the exit; returns the exit status.
    pub(crate) fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        child.wait().ok()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// Polls the async `check` until it holds or `timeout` passes.
pub(crate) async fn wait_until_async<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
