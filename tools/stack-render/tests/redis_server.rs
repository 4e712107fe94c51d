//! The real `redis-server` accepts the command line the managed Redis manifest renders, and
//! reads each option as meant: above all the memory cap (`maxmemory` in plain bytes,
//! `maxmemory-policy noeviction`).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use stack_config::{Loader, Stack};
use stack_render::{Templates, render};
use yaml_rust2::{Yaml, YamlLoader};

const PASSWORD: &str = "redis-server-test";

fn shipped(sets: &[&str]) -> Stack {
    Loader::new()
        .file(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../stack.yaml"))
        .sets(sets.iter().copied())
        .load()
        .unwrap_or_else(|report| panic!("valid stack:\n{report}"))
        .stack
}

/// `command` and `args` of the Redis container in the rendered StatefulSet.
fn rendered_command_line(stack: &Stack) -> Vec<String> {
    let rendered = render(stack, &Templates::embedded()).expect("renders");
    let docs = YamlLoader::load_from_str(&rendered.files["k8s/redis.yaml"]).expect("parses");
    let statefulset = docs
        .iter()
        .find(|doc| doc["kind"].as_str() == Some("StatefulSet"))
        .expect("a StatefulSet");
    let container = &statefulset["spec"]["template"]["spec"]["containers"][0];
    let strings = |list: &Yaml| -> Vec<String> {
        list.as_vec()
            .expect("a list")
            .iter()
            .map(|item| item.as_str().expect("a string").to_owned())
            .collect()
    };
    let mut line = strings(&container["command"]);
    line.extend(strings(&container["args"]));
    line
}

/// The `--name value` pairs of a redis-server command line.
fn options(args: &[String]) -> Vec<(String, String)> {
    assert_eq!(args.len() % 2, 0, "every option has one value: {args:?}");
    args.chunks(2)
        .map(|pair| {
            let name = pair[0].strip_prefix("--").expect("an option");
            (name.to_owned(), pair[1].clone())
        })
        .collect()
}

/// A redis-server started from a command line, killed on drop.
struct RedisServer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// Runs the rendered command line with what Kubernetes and the pod would supply instead:
    /// the password the kubelet expands into `$(REDIS_PASSWORD)`, a scratch directory for
    /// the volume at `/data`, a free port, and a loopback bind.
    fn start(command_line: &[String]) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .expect("a free port")
                .port();
            let dir = std::env::temp_dir().join(format!(
                "stack-render-redis-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).expect("scratch dir");
            let mut args: Vec<String> = command_line[1..].to_vec();
            for i in 1..args.len() {
                match args[i - 1].as_str() {
                    "--port" => args[i] = port.to_string(),
                    "--dir" => args[i] = dir.display().to_string(),
                    "--requirepass" => {
                        assert_eq!(args[i], "$(REDIS_PASSWORD)");
                        args[i] = PASSWORD.to_owned();
                    }
                    _ => {}
                }
            }
            args.extend(["--bind", "127.0.0.1"].map(str::to_owned));
            let child = Command::new(&command_line[0])
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|error| {
                    panic!(
                        "cannot run {} ({error}); scripts/test installs it (apt-get install \
                         redis-server)",
                        command_line[0]
                    )
                });
            let mut server = Self { child, port, dir };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = server.child.try_wait() {
                    // The port was taken meanwhile, or the command line is wrong: try again,
                    // and fail below if it never starts.
                    let mut said = String::new();
                    if let Some(stderr) = server.child.stderr.as_mut() {
                        let _ = std::io::Read::read_to_string(stderr, &mut said);
                    }
                    eprintln!("redis-server {args:?} exited with {status}:\n{said}");
                    break;
                }
                if server.connect().is_some() {
                    return server;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("redis-server did not start with the rendered command line {command_line:?}");
    }

    /// An authenticated connection, once the server answers.
    fn connect(&self) -> Option<Connection> {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut connection = Connection {
            reader: BufReader::new(stream.try_clone().ok()?),
            writer: stream,
        };
        match connection.call(&["AUTH", PASSWORD]).ok()? {
            Reply::Simple(ok) if ok == "OK" => Some(connection),
            _ => None,
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A RESP reply.
#[derive(Debug, PartialEq)]
enum Reply {
    Simple(String),
    Error(String),
    Bulk(Option<String>),
    Array(Vec<Reply>),
}

/// A minimal RESP2 client: enough for AUTH and CONFIG GET (the shipped stack sets a
/// password, so the rendered command line has `--requirepass`).
struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Connection {
    fn call(&mut self, args: &[&str]) -> std::io::Result<Reply> {
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        self.writer.write_all(request.as_bytes())?;
        self.read()
    }

    fn read(&mut self) -> std::io::Result<Reply> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end_matches("\r\n");
        let (kind, rest) = line.split_at(1.min(line.len()));
        let number = || rest.parse::<i64>().expect("a number in the reply");
        Ok(match kind {
            "+" => Reply::Simple(rest.to_owned()),
            "-" => Reply::Error(rest.to_owned()),
            "$" if number() < 0 => Reply::Bulk(None),
            "$" => {
                let mut data = vec![0; usize::try_from(number()).expect("a length") + 2];
                std::io::Read::read_exact(&mut self.reader, &mut data)?;
                data.truncate(data.len() - 2);
                Reply::Bulk(Some(String::from_utf8(data).expect("UTF-8")))
            }
            "*" => Reply::Array(
                (0..number())
                    .map(|_| self.read())
                    .collect::<std::io::Result<_>>()?,
            ),
            _ => panic!("not a RESP reply: {line:?}"),
        })
    }

    /// `CONFIG GET name`: the value Redis holds.
    fn config_get(&mut self, name: &str) -> String {
        match self.call(&["CONFIG", "GET", name]).expect("CONFIG GET") {
            Reply::Array(items) => match items.as_slice() {
                [Reply::Bulk(Some(key)), Reply::Bulk(Some(value))] if key == name => value.clone(),
                other => panic!("CONFIG GET {name}: unexpected reply {other:?}"),
            },
            Reply::Error(error) => panic!("CONFIG GET {name}: {error}"),
            other => panic!("CONFIG GET {name}: unexpected reply {other:?}"),
        }
    }
}

#[test]
fn redis_server_reads_the_rendered_command_line_as_meant() {
    let stack = shipped(&[]);
    let command_line = rendered_command_line(&stack);
    assert_eq!(command_line[0], "redis-server");
    let rendered = options(&command_line[1..]);
    let server = RedisServer::start(&command_line);
    let mut redis = server.connect().expect("connects");

    // The memory cap: 70% of the 512Mi limit, in plain bytes, and no eviction.
    let maxmemory = stack.redis.maxmemory_bytes();
    assert_eq!(maxmemory, 375_809_638);
    assert_eq!(redis.config_get("maxmemory"), maxmemory.to_string());
    assert_eq!(redis.config_get("maxmemory-policy"), "noeviction");

    // Every other option reads back as rendered (the port and directory were replaced, the
    // password is not readable back as such).
    for (name, value) in &rendered {
        if ["port", "dir", "requirepass"].contains(&name.as_str()) {
            continue;
        }
        assert_eq!(&redis.config_get(name), value, "--{name}");
    }
}

#[test]
fn an_explicit_maxmemory_reaches_redis_server() {
    let stack = shipped(&["redis.maxmemory=300Mi"]);
    let command_line = rendered_command_line(&stack);
    let server = RedisServer::start(&command_line);
    let mut redis = server.connect().expect("connects");
    assert_eq!(redis.config_get("maxmemory"), "314572800");
    assert_eq!(redis.config_get("maxmemory-policy"), "noeviction");
}
