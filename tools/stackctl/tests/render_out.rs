//! `stackctl render --out DIR` never deletes what it did not write: it marks its output, and
//! refuses to replace a folder holding anything else unless `--force`.

use std::path::Path;
use std::process::Output;

use taskmanager_test_support::{Scratch, stderr, stdout};

/// A scratch directory holding a copy of the shipped stack.yaml.
fn scratch() -> Scratch {
    let scratch = Scratch::new("render-out");
    let stack = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../stack.yaml");
    std::fs::copy(stack, scratch.join("stack.yaml")).expect("copy stack.yaml");
    scratch
}

/// Runs `stackctl` in `dir` with `args`, isolated from the caller's environment.
fn run(dir: &Path, args: &[&str]) -> Output {
    taskmanager_test_support::run_in(env!("CARGO_BIN_EXE_stackctl"), dir, args, &[])
}

#[test]
fn a_folder_with_unrelated_files_is_refused_and_kept_unless_forced() {
    let dir = scratch();
    dir.write("project/README.md", "mine\n");
    dir.write("project/src/lib.rs", "mine\n");

    let output = run(dir.path(), &["render", "--out", "project"]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert_eq!(stdout(&output), "");
    assert_eq!(
        stderr(&output),
        "error: project is not empty and has no .stackctl-render marker, so stackctl did not \
         render it: it holds README.md, src/lib.rs. `stackctl render` replaces the whole folder, \
         so it leaves this one alone: move those files elsewhere, render into another folder, or \
         pass --force to replace it anyway\n"
    );
    assert_eq!(dir.read("project/README.md"), "mine\n");
    assert_eq!(dir.read("project/src/lib.rs"), "mine\n");
    assert!(!dir.join("project/k8s").exists(), "nothing was written");

    let output = run(dir.path(), &["render", "--out", "project", "--force"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        !dir.join("project/README.md").exists(),
        "--force replaces it"
    );
    assert!(
        dir.read("project/.stackctl-render")
            .contains("\nk8s/server.yaml\n")
    );
}

#[test]
fn a_render_replaces_its_own_output_but_not_a_file_added_to_it() {
    let dir = scratch();
    let output = run(dir.path(), &["render", "--out", "out"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let marker = dir.read("out/.stackctl-render");
    assert!(
        marker.starts_with("# Written by `stackctl render`"),
        "{marker}"
    );
    assert!(marker.contains("\nlocal/docker-run.sh\n"), "{marker}");

    // Its own output it replaces, dropping what is no longer rendered.
    let output = run(
        dir.path(),
        &[
            "render",
            "--out",
            "out",
            "--set",
            "redis.mode=external",
            "--set",
            "redis.host=redis.example.internal",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(!dir.join("out/k8s/redis.yaml").exists());
    let output = run(
        dir.path(),
        &[
            "render",
            "--out",
            "out",
            "--check",
            "--set",
            "redis.mode=external",
            "--set",
            "redis.host=redis.example.internal",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));

    // A file someone added it does not delete.
    dir.write("out/k8s/extra.yaml", "kind: ConfigMap\n");
    let output = run(dir.path(), &["render", "--out", "out"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with(
            "error: out holds files stackctl did not write (its .stackctl-render marker does not \
             list them): it holds k8s/extra.yaml."
        ),
        "{}",
        stderr(&output)
    );
    assert_eq!(dir.read("out/k8s/extra.yaml"), "kind: ConfigMap\n");

    // --check reports it without touching anything; --force and --check do not mix.
    let output = run(dir.path(), &["render", "--out", "out", "--check"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("no longer rendered: k8s/extra.yaml"));
    let output = run(
        dir.path(),
        &["render", "--out", "out", "--check", "--force"],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}

#[test]
fn the_committed_output_carries_the_marker() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let marker = std::fs::read_to_string(repo.join("rendered/.stackctl-render"))
        .expect("rendered/ has the marker: run `just render`");
    assert!(marker.contains("\nk8s/kustomization.yaml\n"), "{marker}");
}
