//! `taskmanager-server`: reads its settings from `stack.yaml` and serves the TaskManager API.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use stack_config::cli::StackArgs;
use taskmanager_server::{Settings, open_store, serve};
use tokio_util::sync::CancellationToken;

/// mimalloc: with glibc's allocator, malloc and free took about a fifth of the server's CPU
/// under load (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The TaskManager gRPC server.
#[derive(Debug, Parser)]
#[command(name = "taskmanager-server", version, about)]
struct Args {
    #[command(flatten)]
    stack: StackArgs,
    /// Listen on this address instead of 0.0.0.0:<server.port> (port 0 picks a free one).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Serve metrics on this address instead of 0.0.0.0:<server.metrics_port>.
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Exit 0 when `GET URL` answers 200 (a container health check without a shell).
    Probe {
        /// The URL, such as http://127.0.0.1:9090/healthz.
        #[arg(long)]
        url: String,
    },
}

/// `GET url` over plain HTTP/1.1; true on a 200 answer within two seconds.
fn probe(url: &str) -> bool {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let Some(addr) = authority.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        return false;
    };
    let timeout = std::time::Duration::from_secs(2);
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let request = format!("GET /{path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    let mut response = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut response).is_ok()
        && response.starts_with("HTTP/1.1 200")
}

fn main() -> ExitCode {
    no_transparent_huge_pages();
    let args = Args::parse();
    if let Some(Command::Probe { url }) = &args.command {
        return if probe(url) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let loaded = match args.stack.loader().load() {
        Ok(loaded) => loaded,
        Err(report) => {
            eprintln!("{report}");
            return ExitCode::FAILURE;
        }
    };
    for warning in &loaded.warnings {
        eprintln!("{warning}");
    }
    let mut settings = match Settings::new(&loaded.stack, &loaded.topology) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(listen) = args.listen {
        settings.listen = listen;
    }
    if let Some(listen) = args.metrics_listen {
        settings.metrics_listen = listen;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "The server failed.");
            ExitCode::FAILURE
        }
    }
}

async fn run(settings: Settings) -> Result<(), Box<dyn std::error::Error>> {
    let telemetry = taskmanager_server::telemetry::init(
        taskmanager_server::telemetry::SERVER_SERVICE,
        settings.log_level,
        settings.log_format,
        settings.traces.as_ref(),
    )?;
    let result = serve_until_stopped(settings).await;
    telemetry.shutdown();
    result
}

async fn serve_until_stopped(settings: Settings) -> Result<(), Box<dyn std::error::Error>> {
    let shutdown = CancellationToken::new();
    tokio::spawn(signals(shutdown.clone()));
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", settings.listen))?;
    let addr = listener.local_addr()?;
    let metrics = tokio::net::TcpListener::bind(settings.metrics_listen)
        .await
        .map_err(|error| {
            format!(
                "cannot serve metrics on {}: {error}",
                settings.metrics_listen
            )
        })?;
    let metrics_addr = metrics.local_addr()?;
    let store = open_store(&settings)?;
    // One plain line on stdout, for people and for scripts that wait for readiness.
    println!("taskmanager-server listening on {addr}");
    std::io::stdout().flush()?;
    tracing::info!(%addr, %metrics_addr, store = ?settings.store, "Serving.");
    serve(settings, store, listener, Some(metrics), shutdown).await?;
    Ok(())
}

/// Fires `shutdown` on SIGTERM or SIGINT.
async fn signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("Cannot install signal handlers.");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    shutdown.cancel();
}

/// Turns transparent huge pages off for this process. mimalloc asks the kernel for them, and
/// where it grants them (THP `madvise` or `always`) the first touch of each 2 MiB page zeroes
/// all of it while the thread waits: a stall of a fraction of a millisecond on each fault
/// (docs/benchmarks.md). Redis advises the same for itself.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
}
