//! Helpers for the tests of every crate (a dev-dependency only): scratch directories that
//! remove themselves, and commands for this workspace's binaries that do not see the
//! caller's `TASKMANAGER__*` and `STACK_*` settings.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A scratch directory under the system's temporary directory, removed on drop.
#[derive(Debug)]
pub struct Scratch(tempfile::TempDir);

impl Scratch {
    /// A new, empty directory; `label` goes into its name, to tell leftovers apart.
    ///
    /// # Panics
    ///
    /// When the directory cannot be created.
    pub fn new(label: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("taskmanager-{label}-"))
            .tempdir()
            .expect("create a scratch directory");
        Self(dir)
    }

    /// A directory holding `stack.yaml` with these bytes.
    pub fn with_stack(bytes: impl AsRef<[u8]>) -> Self {
        let scratch = Self::new("stack");
        scratch.write("stack.yaml", bytes);
        scratch
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// The path of `name` inside it.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path().join(name)
    }

    /// Writes `name` (creating its parent directories).
    ///
    /// # Panics
    ///
    /// When the file cannot be written.
    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> &Self {
        let path = self.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create the parent directory");
        }
        std::fs::write(&path, bytes).expect("write the file");
        self
    }

    /// The text of `name`.
    ///
    /// # Panics
    ///
    /// When it cannot be read.
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.join(name)).expect("read the file")
    }
}

/// A command for `program` (one of this workspace's binaries) that does not inherit the
/// caller's stack settings: `TASKMANAGER__*` and `STACK_*` variables are removed.
pub fn isolated(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if text.starts_with("TASKMANAGER__") || text.starts_with("STACK_") {
            command.env_remove(&name);
        }
    }
    command
}

/// Runs `program` in `dir` with `args` and the variables `vars`, [`isolated`]; its output.
///
/// # Panics
///
/// When the program cannot be started.
pub fn run_in(
    program: impl AsRef<OsStr>,
    dir: &Path,
    args: &[&str],
    vars: &[(&str, &str)],
) -> Output {
    let mut command = isolated(program);
    command
        .current_dir(dir)
        .args(args)
        .envs(vars.iter().copied());
    command.output().expect("the program runs")
}

/// What a program wrote on stdout, as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What a program wrote on stderr, as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_directories_hold_files_and_go_away() {
        let scratch = Scratch::with_stack("name: shop\n");
        scratch.write("a/b.txt", "x");
        assert_eq!(scratch.read("stack.yaml"), "name: shop\n");
        assert_eq!(scratch.read("a/b.txt"), "x");
        let path = scratch.path().to_owned();
        drop(scratch);
        assert!(!path.exists());
    }
}
