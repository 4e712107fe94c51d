//! `taskmanager-client`: submit tasks and watch them live, run the demo, generate load. The
//! commands live in the library (`taskmanager_client::commands`).

use std::process::ExitCode;

use clap::Parser;
use taskmanager_client::EXIT_USAGE;
use taskmanager_client::commands::{Args, run};

/// mimalloc, as the server: `load` keeps thousands of streams and tasks in flight.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    no_transparent_huge_pages();
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

/// Turns transparent huge pages off for this process. mimalloc asks the kernel for them, and
/// where it grants them (THP `madvise` or `always`) the first touch of each 2 MiB page zeroes
/// all of it while the thread waits: a fifth of the load client's CPU, and a stall of a
/// fraction of a millisecond on each fault (docs/benchmarks.md). Redis advises the same.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
}
