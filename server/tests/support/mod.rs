//! Test harness: real `redis-server` processes on free ports, real server processes, and
//! in-process servers. Everything started here is stopped on drop.
//!
//! One concept: the server tests' harness.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
pub(crate) use taskmanager_test_support::Scratch;

use stack_config::Loader;
use taskmanager_proto::pb::task_manager_client::TaskManagerClient;
use taskmanager_server::Settings;
use tonic::transport::Channel;

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

/// A real Redis Cluster on loopback: `masters` masters with `replicas` replicas each, every
/// node a [`Redis`] of its own (append-only, on a free port), joined with
/// `redis-cli --cluster create` and ready once every node says `cluster_state:ok`. A node
/// that stops answering for a second is failed over. Every node is stopped on drop.
pub(crate) struct RedisCluster {
    pub(crate) nodes: Vec<Redis>,
}

impl RedisCluster {
    pub(crate) fn start(masters: usize, replicas: usize) -> Self {
        let count = masters * (1 + replicas);
        let nodes: Vec<Redis> = (0..count)
            .map(|_| {
                Redis::start_with(
                    [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "1000",
                    ]
                    .map(str::to_owned)
                    .to_vec(),
                )
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let output = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            output.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        let cluster = Self { nodes };
        wait_until(
            Duration::from_secs(30),
            "every node sees the cluster ok",
            || {
                cluster.nodes.iter().all(|node| {
                    let info = node.query(&["CLUSTER", "INFO"]);
                    info.contains("cluster_state:ok")
                        && info.contains(&format!("cluster_known_nodes:{count}"))
                })
            },
        );
        cluster
    }

    /// The ports of the nodes.
    pub(crate) fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|node| node.port).collect()
    }

    /// Puts a [`Proxy`] in front of every node and has each node announce its proxy's port
    /// (`cluster-announce-port`), so that a client that follows the slot map connects
    /// through the proxies only; ready once every node's slot map names only proxies. The
    /// nodes still talk to one another directly, on their bus ports.
    pub(crate) async fn behind_proxies(&self) -> Vec<Proxy> {
        let mut proxies = Vec::new();
        for node in &self.nodes {
            let proxy = Proxy::start(node.port).await;
            let port = proxy.port.to_string();
            let set = node.query(&["CONFIG", "SET", "cluster-announce-port", &port]);
            assert!(
                set.starts_with("+OK"),
                "CONFIG SET cluster-announce-port: {set}"
            );
            proxies.push(proxy);
        }
        let node_ports = self.ports();
        wait_until(
            Duration::from_secs(30),
            "every node announces its proxy",
            || {
                self.nodes.iter().all(|node| {
                    let slots = node.query(&["CLUSTER", "SLOTS"]);
                    let proxied = proxies
                        .iter()
                        .all(|proxy| slots.contains(&format!(":{}\r\n", proxy.port)));
                    let direct = node_ports
                        .iter()
                        .any(|port| slots.contains(&format!(":{port}\r\n")));
                    proxied && !direct
                })
            },
        );
        proxies
    }

    /// The seed addresses a client is given: every node.
    pub(crate) fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| format!("redis://127.0.0.1:{}", node.port))
            .collect()
    }
}

/// A real `redis-server`, with append-only persistence, on a free port.
pub(crate) struct Redis {
    pub(crate) port: u16,
    dir: Scratch,
    child: Option<Child>,
    /// Arguments beyond the defaults (`--cluster-enabled yes`, ...).
    extra: Vec<String>,
}

impl Redis {
    /// A Redis on `port` (which nobody may listen on yet).
    pub(crate) fn start_on(port: u16) -> Self {
        let mut redis = Self {
            port,
            dir: Scratch::new("redis"),
            child: None,
            extra: Vec::new(),
        };
        assert!(redis.spawn(), "redis-server starts on port {port}");
        redis
    }

    pub(crate) fn start() -> Self {
        Self::start_with(Vec::new())
    }

    /// A Redis Cluster of this one node, serving every slot: Redis then refuses a script
    /// that touches keys of more than one slot, as every node of a real cluster does.
    pub(crate) fn start_cluster_node() -> Self {
        let redis = Self::start_with(
            [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ]
            .map(str::to_owned)
            .to_vec(),
        );
        let added = redis.query(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
        assert!(added.starts_with("+OK"), "CLUSTER ADDSLOTSRANGE: {added}");
        wait_until(Duration::from_secs(10), "cluster_state:ok", || {
            redis
                .query(&["CLUSTER", "INFO"])
                .contains("cluster_state:ok")
        });
        redis
    }

    pub(crate) fn start_with(extra: Vec<String>) -> Self {
        let dir = Scratch::new("redis");
        let mut redis = Self {
            port: 0,
            dir,
            child: None,
            extra,
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
            .args(["--enable-debug-command", "yes"])
            .args(&self.extra)
            .arg("--dir")
            .arg(self.dir.path())
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
        self.start_again();
    }

    /// Starts the killed server again on the same port with the same data directory.
    pub(crate) fn start_again(&mut self) {
        assert!(self.spawn(), "redis-server restarts on port {}", self.port);
    }

    /// Sends a signal (`STOP`, `CONT`, ...) to the process.
    pub(crate) fn signal(&self, signal: &str) {
        let pid = self
            .child
            .as_ref()
            .expect("redis-server runs")
            .id()
            .to_string();
        let status = Command::new("kill")
            .args([format!("-{signal}"), pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} redis-server");
    }

    /// Runs one command and returns its answer as RESP text (`+OK\r\n`, `:3\r\n`, ...).
    pub(crate) fn query(&self, words: &[&str]) -> String {
        use std::io::{Read, Write};
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        stream
            .write_all(resp(words).as_bytes())
            .expect("send to redis");
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut answer = vec![0u8; 64 * 1024];
        let n = stream.read(&mut answer).expect("redis answers");
        String::from_utf8_lossy(&answer[..n]).into_owned()
    }

    /// A field of `INFO` as a number.
    pub(crate) fn info(&self, field: &str) -> u64 {
        let info = self.query(&["INFO"]);
        info.lines()
            .find_map(|line| line.strip_prefix(&format!("{field}:")))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("INFO has {field}"))
    }

    /// Sends one command and returns without waiting for its answer (`DEBUG SLEEP 3`
    /// answers after three seconds); the connection is read and closed in the background.
    pub(crate) fn send(&self, words: &[&str]) {
        use std::io::{Read, Write};
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        stream
            .write_all(resp(words).as_bytes())
            .expect("send to redis");
        std::thread::spawn(move || {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
            let mut answer = [0u8; 64];
            let _ = stream.read(&mut answer);
        });
    }
}

/// A command in the Redis protocol.
fn resp(words: &[&str]) -> String {
    let mut command = format!("*{}\r\n", words.len());
    for word in words {
        command.push_str(&format!("${}\r\n{word}\r\n", word.len()));
    }
    command
}

/// A TCP proxy in front of a port that can stop forwarding on its open connections without
/// closing them: a half-open connection, as a node that vanishes or a failover without a
/// reset leaves it. Connections made after that are forwarded normally.
pub(crate) struct Proxy {
    pub(crate) port: u16,
    generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
    frozen_below: std::sync::Arc<std::sync::atomic::AtomicU64>,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    /// A proxy on a free loopback port forwarding to `127.0.0.1:target`.
    pub(crate) async fn start(target: u16) -> Self {
        use std::sync::Arc;
        use std::sync::atomic::AtomicU64;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let frozen_below = Arc::new(AtomicU64::new(0));
        let generations = Arc::new(AtomicU64::new(0));
        let tasks = Arc::new(std::sync::Mutex::new(Vec::new()));
        let accept = {
            let frozen_below = frozen_below.clone();
            let generations = generations.clone();
            let tasks = tasks.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let generation =
                        generations.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    let Ok(upstream) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    else {
                        continue;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (upstream_read, upstream_write) = upstream.into_split();
                    for (from, to) in [(client_read, upstream_write), (upstream_read, client_write)]
                    {
                        let handle = tokio::spawn(pipe(from, to, generation, frozen_below.clone()));
                        tasks
                            .lock()
                            .expect("proxy tasks")
                            .push(handle.abort_handle());
                    }
                }
            })
        };
        tasks
            .lock()
            .expect("proxy tasks")
            .push(accept.abort_handle());
        Self {
            port,
            generation: generations,
            frozen_below,
            tasks,
        }
    }

    /// Stops forwarding on every connection open now, for good, without closing them;
    /// connections made later are forwarded.
    pub(crate) fn black_hole_open_connections(&self) {
        use std::sync::atomic::Ordering;
        let newest = self.generation.load(Ordering::SeqCst);
        self.frozen_below.store(newest + 1, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` until either closes; a connection older than `frozen_below` reads
/// and drops nothing: it just stops, holding both sockets open.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    generation: u64,
    frozen_below: std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        if generation < frozen_below.load(std::sync::atomic::Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if generation < frozen_below.load(std::sync::atomic::Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for task in self.tasks.lock().expect("proxy tasks").drain(..) {
            task.abort();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `--set` overrides for a server talking to `redis` with fast timings.
pub(crate) fn fast_sets(redis: &Redis) -> Vec<String> {
    fast_sets_for(redis.port)
}

fn fast_sets_for(port: u16) -> Vec<String> {
    vec![
        "redis.mode=external".into(),
        "redis.host=127.0.0.1".into(),
        format!("redis.port={port}"),
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

/// `--set` overrides for a server on the Redis Cluster seeded by `ports` (the nodes, or
/// proxies the nodes announce), its queue in `shards` shards, with fast timings.
pub(crate) fn fast_cluster_sets(ports: &[u16], shards: u32) -> Vec<String> {
    let nodes: Vec<String> = ports
        .iter()
        .map(|port| format!("127.0.0.1:{port}"))
        .collect();
    let mut sets: Vec<String> = fast_sets_for(0)
        .into_iter()
        .filter(|set| !set.starts_with("redis.mode=") && !set.starts_with("redis.host="))
        .filter(|set| !set.starts_with("redis.port="))
        .collect();
    sets.extend([
        "redis.mode=cluster".to_owned(),
        format!("redis.cluster.nodes=[{}]", nodes.join(", ")),
        format!("redis.cluster.shards={shards}"),
    ]);
    sets
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
/// `GET path` on `addr` over HTTP/1.1: the status code and the body, or `None` when the
/// server does not answer within 2 s.
pub(crate) fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split(' ').nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())?;
    Some((code, body))
}

pub(crate) fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// A `taskmanager-server` process.
pub(crate) struct ServerProcess {
    pub(crate) addr: SocketAddr,
    /// Its metrics endpoint (`/metrics`, `/healthz`, `/readyz`).
    pub(crate) metrics_addr: SocketAddr,
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
        let config = scratch.join("stack.yaml");
        std::fs::write(&config, "# settings come from --set\n").expect("write stack file");
        let mut command =
            taskmanager_test_support::isolated(env!("CARGO_BIN_EXE_taskmanager-server"));
        let metrics_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        command.arg("--config").arg(&config).args([
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            &metrics_addr.to_string(),
        ]);
        for set in sets {
            command.args(["--set", set]);
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
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let Ok(line) = receiver.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            panic!("the server did not print its address within 30 s");
        };
        let addr = line
            .trim()
            .rsplit(' ')
            .next()
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("the server printed its address, got {line:?}"));
        Self {
            addr,
            metrics_addr,
            child: Some(child),
            _scratch: scratch,
        }
    }

    /// Waits up to `timeout` for the process to exit by itself; its exit status, or `None`
    /// when it still runs.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server runs").id()
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
