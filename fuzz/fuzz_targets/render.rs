//! Any text through every quoting rule of the renderer (JSON/YAML/Alloy strings, nested
//! YAML keys and values, block scalars, shell words): it must read back exactly with libyaml,
//! yaml-rust2 and serde_json and leave the document's structure alone.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Err(problem) = stack_render::fuzzing::check_quoting(text) {
        panic!("{problem}");
    }
});
