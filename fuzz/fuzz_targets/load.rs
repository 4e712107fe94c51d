//! Any bytes as `stack.yaml`: loading, every environment overlay and validation must end in a
//! stack or in diagnostics, never in a panic, a crash or unbounded work.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stack_config::Loader;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("stack-fuzz-load-{}.yaml", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let loader = Loader::new().file(&path);
    let _ = loader.load();
    for environment in loader.environments().into_iter().take(4) {
        let _ = Loader::new().file(&path).environment(Some(environment)).load();
    }
});
