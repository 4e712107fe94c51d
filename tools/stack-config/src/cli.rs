//! The command-line arguments with which every binary (server, client, `stackctl`) selects
//! its settings, declared once (feature `cli`).

use crate::Loader;

/// Where the settings come from: the file, an environment overlay of it, `--set` overrides
/// (and, always, `TASKMANAGER__*` variables between the overlay and `--set`).
#[derive(Clone, Debug, clap::Args)]
pub struct StackArgs {
    /// The stack file.
    #[arg(
        long,
        short = 'c',
        global = true,
        default_value = "stack.yaml",
        env = "STACK_FILE"
    )]
    pub config: String,
    /// Merge the overlay `environments.<ENV>` of the file.
    #[arg(long, short = 'e', global = true, env = "STACK_ENV")]
    pub env: Option<String>,
    /// Override one setting, as a dotted key and a value, e.g. `--set server.port=50052`
    /// (repeatable; applied last).
    #[arg(long = "set", short = 's', global = true, value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

impl StackArgs {
    /// The loader of these arguments, with the selected environment.
    pub fn loader(&self) -> Loader {
        self.loader_for(self.env.as_deref())
    }

    /// The loader of these arguments with environment `env` instead (`stackctl check` loads
    /// every environment).
    pub fn loader_for(&self, env: Option<&str>) -> Loader {
        Loader::new()
            .file(&self.config)
            .environment(env)
            .process_env()
            .sets(self.sets.iter().cloned())
    }
}
