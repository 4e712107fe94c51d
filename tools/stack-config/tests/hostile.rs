//! Hostile input: loading ends, for any file, variable or argument, in a stack or in located
//! errors, with bounded work. Each case asserts the error that the limit raises — and that it
//! is the only one, so that nothing past the limit was built or checked.
//!
//! One concept: the loader's bounds on hostile input.

mod support;

use std::path::Path;

use stack_config::{Diagnostic, Loader, Origin, Report};
use support::{TempDir, shipped};

/// Loads `path` the way the server and the client do.
fn load_like_a_server(path: &Path) -> Result<stack_config::Loaded, Report> {
    Loader::new()
        .file(path)
        .environment(None::<String>)
        .process_env()
        .sets(Vec::<String>::new())
        .load()
}

/// The report of loading `text` as a stack file.
fn report_of(text: &str) -> Report {
    let dir = TempDir::new();
    let path = dir.write("stack.yaml", text);
    load_like_a_server(&path).expect_err("invalid")
}

/// (rule, path, "line:column") of a diagnostic.
fn summary(diagnostic: &Diagnostic) -> (&'static str, String, String) {
    let location = match &diagnostic.origin {
        Origin::File { line, column, .. } => format!("{line}:{column}"),
        Origin::Env { var } => format!("env {var}"),
        Origin::Set { arg } => format!("--set {arg}"),
        Origin::Argument { arg } => format!("arg {arg}"),
        Origin::Default => "default".to_owned(),
    };
    (diagnostic.rule, diagnostic.path.clone(), location)
}

/// The single diagnostic of `report`, which must have exactly one.
fn only(report: &Report) -> &Diagnostic {
    assert_eq!(report.diagnostics.len(), 1, "{report}");
    &report.diagnostics[0]
}

fn s(text: &str) -> String {
    text.to_owned()
}

/// `levels` of anchors, each a list of nine aliases of the one before: 9^levels values.
fn billion_laughs(levels: usize) -> String {
    let mut text = s("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for level in 1..=levels {
        let items = vec![format!("*a{}", level - 1); 9].join(", ");
        text.push_str(&format!("a{level}: &a{level} [{items}]\n"));
    }
    text
}

#[test]
fn a_billion_laughs_stops_at_the_alias_limit() {
    for levels in [6, 7, 9] {
        let report = report_of(&billion_laughs(levels));
        let error = only(&report);
        // Anchors a0..a2 keep 10 + 91 + 820 values and their aliases copy 9 times as many;
        // keeping a3 (7,381 values) passes 10,000.
        assert_eq!(summary(error), ("alias-expansion", s("a3"), s("4:9")));
        assert_eq!(
            error.message,
            "anchors and aliases copy more than 10000 values or 1048576 bytes of text in all; a \
             stack's anchors need far less (is this an alias bomb?)"
        );
    }
}

#[test]
fn aliases_of_long_text_stop_at_the_alias_limit() {
    let text = format!(
        "a: &a {}\nb: [{}]\n",
        "y".repeat(200_000),
        vec!["*a"; 100].join(", ")
    );
    let report = report_of(&text);
    // The anchor and four aliases keep 5 * 200,000 bytes, within 1 MiB; the fifth does not.
    assert_eq!(
        summary(only(&report)),
        ("alias-expansion", s("b.4"), s("2:21"))
    );
}

#[test]
fn nested_anchors_count_what_they_keep() {
    // Every level keeps a copy of all the levels below: 60 copies of 900 values and more.
    let mut text = "a: ".to_owned();
    for level in 0..60 {
        text.push_str(&format!("&l{level} ["));
    }
    text.push_str(&vec!["x"; 900].join(", "));
    text.push_str(&"]".repeat(60));
    let report = report_of(&format!("{text}\n"));
    let error = only(&report);
    // The innermost eleven levels keep 901 + 902 + ... + 911 = 9,966 values; the twelfth
    // (level 48, its `[` at column 287) passes 10,000.
    let path = format!("a{}", ".0".repeat(48));
    assert_eq!(summary(error), ("alias-expansion", path, s("1:287")));
}

#[test]
fn aliases_within_the_limits_resolve() {
    let dir = TempDir::new();
    let text = format!(
        "images:\n  pull_secrets: &secrets [a, b]\nenvironments:\n{}",
        (0..50)
            .map(|i| format!("  e{i}: {{images: {{pull_secrets: *secrets}}}}\n"))
            .collect::<String>()
    );
    let path = dir.write("stack.yaml", &text);
    let loaded = load_like_a_server(&path).expect("valid");
    assert_eq!(loaded.stack.environments.len(), 50);
}

#[test]
fn an_alias_inside_its_own_anchor_is_an_error() {
    let report = report_of("a: &a [*a]\n");
    let error = only(&report);
    assert_eq!(summary(error), ("yaml-syntax", s(""), s("1:8")));
    assert_eq!(
        error.message,
        "an alias cannot refer to the node that contains it"
    );
}

#[test]
fn deep_block_nesting_stops_at_the_depth_limit() {
    let text = format!("a:\n{}1\n", "- ".repeat(10_000));
    let report = report_of(&text);
    let error = only(&report);
    // The mapping is level 1, so the 64th `-` opens level 65.
    let path = format!("a{}", ".0".repeat(63));
    assert_eq!(summary(error), ("nesting-depth", path, s("2:127")));
    assert_eq!(
        error.message,
        "values nest more than 64 levels deep; a stack nests fewer than 10"
    );
    // The snippet is cut, the caret still lines up.
    let Origin::File { snippet, .. } = &error.origin else {
        panic!("located in the file");
    };
    assert_eq!(snippet.chars().count(), 127 + 1 + 60 + 1);
    assert!(snippet.ends_with('…'));

    // 64 levels are fine (as YAML; the model then has its own say).
    let text = format!("a:\n{}1\n", "- ".repeat(63));
    let report = report_of(&text);
    assert_eq!(summary(only(&report)).0, "unknown-key");
}

#[test]
fn deep_flow_nesting_stops_at_the_depth_limit() {
    let report = report_of(&format!("a: {}{}\n", "[".repeat(100), "]".repeat(100)));
    assert_eq!(
        summary(only(&report)),
        ("nesting-depth", format!("a{}", ".0".repeat(63)), s("1:67"))
    );
    // Past 255 flow levels the parser itself stops, before the events reach the builder.
    let report = report_of(&format!(
        "a: {}{}\n",
        "[".repeat(10_000),
        "]".repeat(10_000)
    ));
    let error = only(&report);
    assert_eq!(summary(error), ("nesting-depth", s(""), s("1:259")));
    assert_eq!(
        error.message,
        "values nest more than 64 levels deep; a stack nests fewer than 10"
    );
}

#[test]
fn an_alias_that_nests_too_deep_is_an_error() {
    let deep = |depth: usize| format!("{}x{}", "[".repeat(depth), "]".repeat(depth));
    let text = format!(
        "a: &a {}\nb: {}*a{}\n",
        deep(40),
        "[".repeat(30),
        "]".repeat(30)
    );
    let report = report_of(&text);
    assert_eq!(
        summary(only(&report)),
        ("nesting-depth", format!("b{}", ".0".repeat(30)), s("2:34"))
    );
}

#[test]
fn duplicate_keys_are_reported_up_to_the_error_limit() {
    let report = report_of(&"namespace: a\n".repeat(20_000));
    assert_eq!(report.diagnostics.len(), 101);
    for (index, error) in report.diagnostics[..100].iter().enumerate() {
        let line = index + 2;
        assert_eq!(
            summary(error),
            ("duplicate-key", s(""), format!("{line}:1"))
        );
        assert_eq!(
            error.message,
            "key `namespace` appears more than once in the same mapping"
        );
    }
    let more = &report.diagnostics[100];
    assert_eq!(summary(more), ("error-limit", s(""), s("102:1")));
    assert_eq!(
        more.message,
        "19899 more errors not shown (at most 100 are reported at once); here is one"
    );
    assert!(report.to_string().ends_with("101 errors"), "{report}");
}

/// A file with `count` environments, each an overlay with one unknown key.
fn environments(count: usize) -> String {
    let overlays: String = (0..count)
        .map(|i| format!("  e{i:04}: {{a: 1}}\n"))
        .collect();
    format!("environments:\n{overlays}")
}

#[test]
fn too_many_environments_are_one_error() {
    let dir = TempDir::new();
    let path = dir.write("stack.yaml", &environments(2000));
    let report = load_like_a_server(&path).expect_err("invalid");
    let error = only(&report);
    assert_eq!(
        summary(error),
        ("environment-count", s("environments"), s("102:3"))
    );
    assert_eq!(
        error.message,
        "the file defines 2000 environments; a stack may define at most 100"
    );
    // No environment is offered for checking: the base file's error says why.
    assert_eq!(
        Loader::new().file(&path).environments(),
        Vec::<String>::new()
    );
    let report = Loader::new()
        .file(&path)
        .environment(Some("e0001"))
        .load()
        .expect_err("invalid");
    assert!(
        report
            .diagnostics
            .iter()
            .any(|d| d.rule == "environment-count")
    );
}

#[test]
fn every_environment_of_a_file_at_the_limit_loads() {
    let dir = TempDir::new();
    let path = dir.write("stack.yaml", &environments(100));
    let loader = Loader::new().file(&path);
    // The base file is valid: overlays are only checked when selected.
    assert_eq!(loader.load().expect("valid").stack.environments.len(), 100);
    let names = loader.environments();
    assert_eq!(names.len(), 100);
    for name in names {
        let report = loader
            .clone()
            .environment(Some(name.as_str()))
            .load()
            .expect_err("an unknown key");
        let error = only(&report);
        assert_eq!(summary(error).0, "unknown-key");
        assert_eq!(summary(error).1, "a");
    }
}

#[test]
fn a_file_over_the_size_limit_is_not_read() {
    let dir = TempDir::new();
    let line = format!("k0000000: {}\n", "x".repeat(70));
    let path = dir.write("stack.yaml", &line.repeat(580_000 / 10));
    let report = load_like_a_server(&path).expect_err("too large");
    let error = only(&report);
    let name = path.display().to_string();
    assert_eq!(summary(error), ("file-size", s(""), format!("arg {name}")));
    assert_eq!(
        error.message,
        format!(
            "{name} holds 4698000 bytes (4.5 MiB); a stack file may hold at most 1048576 bytes \
             (1 MiB)"
        )
    );

    // One byte over.
    let path = dir.write("big.yaml", &format!("#{}\n", "x".repeat(1 << 20)));
    assert_eq!(
        summary(only(&load_like_a_server(&path).expect_err("too large"))).0,
        "file-size"
    );
    // At the limit, it is read.
    let path = dir.write("limit.yaml", &format!("#{}\n", "x".repeat((1 << 20) - 2)));
    load_like_a_server(&path).expect("a comment is a valid stack");
}

#[cfg(unix)]
#[test]
fn an_endless_file_is_read_no_further_than_the_limit() {
    let report = load_like_a_server(Path::new("/dev/zero")).expect_err("too large");
    let error = only(&report);
    assert_eq!(error.rule, "file-size");
    assert_eq!(
        error.message,
        "/dev/zero holds more than 1048576 bytes; a stack file may hold at most 1048576 bytes \
         (1 MiB)"
    );
}

#[test]
fn unknown_keys_are_reported_up_to_the_error_limit() {
    let text: String = (0..24_000).map(|i| format!("k{i:06}: 1\n")).collect();
    let report = report_of(&text);
    assert_eq!(report.diagnostics.len(), 101);
    assert_eq!(
        summary(&report.diagnostics[0]),
        ("unknown-key", s("k000000"), s("1:1"))
    );
    assert_eq!(
        summary(&report.diagnostics[99]),
        ("unknown-key", s("k000099"), s("100:1"))
    );
    let more = &report.diagnostics[100];
    assert_eq!(summary(more).0, "error-limit");
    assert_eq!(
        more.message,
        "23900 more errors not shown (at most 100 are reported at once); here is one"
    );
}

#[test]
fn a_file_over_the_value_limit_stops_there() {
    let text: String = (0..30_000).map(|i| format!("k{i:06}: 1\n")).collect();
    let report = report_of(&text);
    let error = only(&report);
    // Two values per line: the key and its value.
    assert_eq!(
        summary(error),
        ("document-size", s("k024999"), s("25000:10"))
    );
    assert_eq!(
        error.message,
        "the document holds more than 50000 values (keys, scalars, lists and mappings, counting \
         what aliases copy); a stack needs a few hundred"
    );
}

#[test]
fn a_long_list_stops_at_the_list_limit() {
    let items: String = (0..5000).map(|i| format!("  - s{i}\n")).collect();
    let report = report_of(&format!("images:\n  pull_secrets:\n{items}"));
    let error = only(&report);
    assert_eq!(
        summary(error),
        ("list-size", s("images.pull_secrets"), s("1003:5"))
    );
    assert_eq!(
        error.message,
        "the list holds more than 1000 items; a stack's lists hold a few"
    );
}

#[test]
fn a_long_key_stops_at_the_key_limit() {
    let report = report_of(&format!("server:\n  ? {}\n  : 1\n", "k".repeat(500_000)));
    let error = only(&report);
    assert_eq!(summary(error), ("key-size", s("server"), s("2:5")));
    assert_eq!(
        error.message,
        "a key is longer than 1024 characters (YAML's limit on implicit keys)"
    );
    let Origin::File { snippet, .. } = &error.origin else {
        panic!("located in the file");
    };
    assert!(snippet.len() < 100, "{snippet}");
}

#[test]
fn a_nul_byte_is_an_error_where_it_stands() {
    // Before, the parser stopped at the NUL and `Bad_Name` went unchecked.
    let report = report_of("server:\n  port: 1\0\nname: Bad_Name\n");
    let error = only(&report);
    assert_eq!(summary(error), ("invalid-character", s(""), s("2:10")));
    assert_eq!(
        error.message,
        "the file contains a NUL character (U+0000), which YAML does not allow"
    );
    let report = report_of("\0");
    assert_eq!(
        summary(only(&report)),
        ("invalid-character", s(""), s("1:1"))
    );
    let report = report_of("a: \"é\"\r\nb: x\u{1b}[2J\0\0\n");
    let error = only(&report);
    assert_eq!(summary(error), ("invalid-character", s(""), s("2:5")));
    assert_eq!(
        error.message,
        "the file contains the control character U+001B, which YAML does not allow (3 in the \
         file)"
    );
}

#[test]
fn invalid_utf8_is_an_error_where_it_stands() {
    let dir = TempDir::new();
    let path = dir.path().join("stack.yaml");
    std::fs::write(&path, b"server:\n  port: 80\xff80\n").expect("write");
    let report = load_like_a_server(&path).expect_err("not UTF-8");
    let error = only(&report);
    assert_eq!(summary(error), ("invalid-character", s(""), s("2:11")));
    assert_eq!(
        error.message,
        "the file is not valid UTF-8: byte 0xFF cannot start or continue a character here"
    );
}

#[test]
fn a_byte_order_mark_is_skipped_and_positions_stay_right() {
    let report = report_of("\u{feff}name: Bad_Name\nserver:\n  prot: 1\n");
    let summaries: Vec<_> = report.diagnostics.iter().map(summary).collect();
    assert_eq!(
        summaries,
        vec![
            ("invalid-value", s("name"), s("1:7")),
            ("unknown-key", s("server.prot"), s("3:3")),
        ]
    );
    // The shipped stack saved with a byte-order mark is the same stack.
    let dir = TempDir::new();
    let text = std::fs::read_to_string(shipped()).expect("read the shipped stack");
    let path = dir.write("stack.yaml", &format!("\u{feff}{text}"));
    let stack = load_like_a_server(&path).expect("valid").stack;
    assert_eq!(stack, load_like_a_server(&shipped()).expect("valid").stack);
}

#[test]
fn oversized_variables_and_arguments_are_errors() {
    let huge = "x".repeat(70_000);
    let report = Loader::new()
        .env_vars([(s("TASKMANAGER__IMAGES__TAG"), huge.clone())])
        .sets([format!("images.registry={huge}")])
        .load()
        .expect_err("too large");
    let summaries: Vec<_> = report.diagnostics.iter().map(summary).collect();
    let shown = format!("images.registry={}…", "x".repeat(100 - 16));
    assert_eq!(
        summaries,
        vec![
            ("value-size", s(""), s("env TASKMANAGER__IMAGES__TAG")),
            ("value-size", s(""), format!("--set {shown}")),
        ]
    );
    assert_eq!(
        report.diagnostics[0].message,
        "the value holds 70000 bytes; a setting may hold at most 65536 bytes (64 KiB)"
    );
}

#[test]
fn deep_key_paths_of_variables_and_arguments_are_errors() {
    // Each would nest 10,000 mappings: enough to overflow the stack when merged or dropped.
    let var = format!("TASKMANAGER{}", "__A".repeat(10_000));
    let set = format!("{}=1", vec!["a"; 10_000].join("."));
    let report = Loader::new()
        .env_vars([(var, s("1"))])
        .sets([set])
        .load()
        .expect_err("too deep");
    let rules: Vec<_> = report
        .diagnostics
        .iter()
        .map(|d| (d.rule, d.message.as_str()))
        .collect();
    let message = "the key path has 10000 segments; a key path may have at most 64";
    assert_eq!(
        rules,
        vec![("nesting-depth", message), ("nesting-depth", message)]
    );
    assert!(report.to_string().len() < 2000, "{report}");
}

#[test]
fn bad_list_items_are_located_as_written() {
    let report = report_of("images:\n  pull_secrets: [Bad_1, ok, Bad_2, Bad_3]\n");
    let summaries: Vec<_> = report.diagnostics.iter().map(summary).collect();
    assert_eq!(
        summaries,
        vec![
            ("invalid-value", s("images.pull_secrets.0"), s("2:18")),
            ("invalid-value", s("images.pull_secrets.2"), s("2:29")),
            ("invalid-value", s("images.pull_secrets.3"), s("2:36")),
        ]
    );
}

#[test]
fn checking_stops_after_the_error_limit() {
    let items: String = (0..150).map(|i| format!("  - Bad_{i}\n")).collect();
    let report = report_of(&format!("images:\n  pull_secrets:\n{items}"));
    assert_eq!(report.diagnostics.len(), 101);
    assert!(
        report.diagnostics[..100]
            .iter()
            .all(|d| d.rule == "invalid-value")
    );
    let stopped = &report.diagnostics[100];
    assert_eq!(summary(stopped), ("error-limit", s(""), s("103:5")));
    assert_eq!(
        stopped.message,
        "there are more errors from here on: checking stopped after 100 (at most 100 are \
         reported, fewer from a very large file)"
    );
}
