//! `stackctl check` on hostile input, through the real binary: every case ends in exit code
//! 1 and a located error naming the rule and the limit — no crash, no runaway.

use std::path::Path;
use std::process::Output;
use taskmanager_test_support::Scratch;

/// Runs `stackctl check` in `dir` with `args` and `vars`, isolated from the caller's
/// environment.
fn check(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let args: Vec<&str> = std::iter::once("check")
        .chain(args.iter().copied())
        .collect();
    taskmanager_test_support::run_in(env!("CARGO_BIN_EXE_stackctl"), dir, &args, vars)
}

/// The stderr of a check that failed as it should: exit code 1 (not a signal), nothing on
/// stdout.
fn failed(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "");
    stderr
}

fn check_file(bytes: impl AsRef<[u8]>) -> String {
    let dir = Scratch::with_stack(bytes);
    failed(&check(dir.path(), &[], &[]))
}

fn billion_laughs(levels: usize) -> String {
    let mut text = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n".to_owned();
    for level in 1..=levels {
        let items = vec![format!("*a{}", level - 1); 9].join(", ");
        text.push_str(&format!("a{level}: &a{level} [{items}]\n"));
    }
    text
}

#[test]
fn a_billion_laughs() {
    for levels in [6, 7] {
        assert_eq!(
            check_file(billion_laughs(levels)),
            "\
error[alias-expansion]: a3: anchors and aliases copy more than 10000 values or 1048576 bytes of text in all; a stack's anchors need far less (is this an alias bomb?)
 --> stack.yaml:4:9
  |
4 | a3: &a3 [*a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2]
  |         ^

1 error
"
        );
    }
}

#[test]
fn deep_nesting() {
    let errors = check_file(format!("a:\n{}1\n", "- ".repeat(10_000)));
    assert!(
        errors.starts_with(&format!(
            "error[nesting-depth]: a{}: values nest more than 64 levels deep; a stack nests \
             fewer than 10\n --> stack.yaml:2:127\n",
            ".0".repeat(63)
        )),
        "{errors}"
    );
    assert!(errors.ends_with("\n1 error\n"), "{errors}");

    let errors = check_file(format!("a: {}{}\n", "[".repeat(10_000), "]".repeat(10_000)));
    assert!(
        errors.starts_with(
            "error[nesting-depth]: (document): values nest more than 64 levels deep; a stack \
             nests fewer than 10\n --> stack.yaml:1:259\n"
        ),
        "{errors}"
    );
}

#[test]
fn deep_key_paths_in_variables_and_arguments() {
    let dir = Scratch::with_stack("");
    let var = format!("TASKMANAGER{}", "__A".repeat(10_000));
    let set = format!("{}=1", vec!["a"; 10_000].join("."));
    let errors = failed(&check(dir.path(), &["--set", &set], &[(&var, "1")]));
    let message = "nesting-depth]: (document): the key path has 10000 segments; a key path may \
                   have at most 64";
    assert_eq!(errors.matches(message).count(), 2, "{errors}");
    assert!(errors.ends_with("\n2 errors\n"), "{errors}");
}

#[test]
fn many_duplicate_keys() {
    let errors = check_file("namespace: a\n".repeat(20_000));
    assert_eq!(
        errors
            .matches(
                "error[duplicate-key]: (document): key `namespace` appears more than once in \
                 the same mapping\n"
            )
            .count(),
        100
    );
    assert!(
        errors.ends_with(
            "\
error[error-limit]: (document): 19899 more errors not shown (at most 100 are reported at once); here is one
   --> stack.yaml:102:1
    |
102 | namespace: a
    | ^^^^^^^^^
  = help: fix the errors above and check again

101 errors
"
        ),
        "{errors}"
    );
}

#[test]
fn many_environments() {
    let overlays: String = (0..2000)
        .map(|i| format!("  e{i:04}: {{a: 1}}\n"))
        .collect();
    assert_eq!(
        check_file(format!("environments:\n{overlays}")),
        "\
error[environment-count]: environments: the file defines 2000 environments; a stack may define at most 100
   --> stack.yaml:102:3
    |
102 |   e0100: {a: 1}
    |   ^^^^^
  = help: keep one stack file per group of environments

1 error
"
    );
}

#[test]
fn a_huge_file() {
    let line = format!("k0000000: {}\n", "x".repeat(70));
    assert_eq!(
        check_file(line.repeat(580_000)),
        "\
error[file-size]: (document): stack.yaml holds 46980000 bytes (44.8 MiB); a stack file may hold at most 1048576 bytes (1 MiB)
  --> argument stack.yaml
  = help: a stack file is a few KiB: is this the right file?

1 error
"
    );
}

#[test]
fn many_unknown_keys() {
    let keys: String = (0..24_000).map(|i| format!("k{i:06}: 1\n")).collect();
    let errors = check_file(keys);
    assert_eq!(errors.matches("error[unknown-key]").count(), 100);
    assert!(
        errors.contains(
            "error[error-limit]: (document): 23900 more errors not shown (at most 100 are \
             reported at once); here is one\n"
        ),
        "{errors}"
    );
    assert!(errors.ends_with("\n101 errors\n"), "{errors}");
}

#[test]
fn a_nul_byte() {
    assert_eq!(
        check_file("server:\n  port: 1\0\nname: Bad_Name\n"),
        "\
error[invalid-character]: (document): the file contains a NUL character (U+0000), which YAML does not allow
 --> stack.yaml:2:10
  |
2 |   port: 1\\u{0}
  |          ^^^^^
  = help: write the value with an escape in a double-quoted string, such as \"\\t\"

1 error
"
    );
}

#[test]
fn a_byte_order_mark() {
    assert_eq!(
        check_file("\u{feff}name: Bad_Name\n"),
        "\
error[invalid-value]: name: \"Bad_Name\" is not a DNS-1123 label: use 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit
 --> stack.yaml:1:7
  |
1 | name: Bad_Name
  |       ^^^^^^^^

1 error
"
    );
    let dir = Scratch::with_stack("\u{feff}name: shop\n");
    let output = check(dir.path(), &[], &[]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "stack.yaml: valid (base)\n"
    );
}

#[test]
fn errors_across_environments_are_capped_too() {
    // 100 environments (the most allowed), each with 5 unknown keys: 500 problems.
    let mut file = "environments:\n".to_owned();
    for environment in 0..100 {
        file.push_str(&format!("  e{environment}:\n"));
        for key in 0..5 {
            file.push_str(&format!("    k{key}: 1\n"));
        }
    }
    let errors = check_file(file);
    assert_eq!(
        errors.matches("error[unknown-key]").count(),
        100,
        "{errors}"
    );
    assert!(
        errors.contains(
            "error[error-limit]: (document): 400 more problems across the environments are not \
             shown (at most 100 are reported at once)"
        ),
        "{errors}"
    );
    assert!(errors.ends_with("\n101 errors\n"), "{errors}");
}
