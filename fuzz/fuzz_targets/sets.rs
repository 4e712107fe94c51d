//! Any `--set KEY=VALUE` arguments (one per line) and environment variables over the
//! built-in defaults: loading and validation must not panic, and a stack that validates must
//! render, or fail with an error, without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stack_config::Loader;
use stack_render::Templates;

fuzz_target!(|data: &str| {
    let mut sets = Vec::new();
    let mut vars = Vec::new();
    for line in data.lines().take(16) {
        match line.strip_prefix("TASKMANAGER__") {
            Some(rest) => {
                let (name, value) = rest.split_once('=').unwrap_or((rest, ""));
                vars.push((format!("TASKMANAGER__{name}"), value.to_owned()));
            }
            None => sets.push(line.to_owned()),
        }
    }
    if let Ok(loaded) = Loader::new().env_vars(vars).sets(sets).load() {
        let _ = stack_render::render(&loaded.stack, &Templates::embedded());
    }
});
