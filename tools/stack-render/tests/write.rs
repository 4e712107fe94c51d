//! Writing the output folder: it is replaced whole, but only when it holds nothing the
//! renderer did not write; the marker lists what it wrote, and `--check` sees the marker too.

use std::path::Path;
use taskmanager_test_support::Scratch;

use stack_render::{Diff, MARKER, Rendered, WriteError, diff, write_atomically};

fn rendered(files: &[(&str, &str)]) -> Rendered {
    Rendered {
        files: files
            .iter()
            .map(|(path, text)| ((*path).to_owned(), (*text).to_owned()))
            .collect(),
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("dir");
    std::fs::write(path, text).expect("write");
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).expect("read")
}

#[test]
fn a_new_or_empty_folder_is_written_with_the_marker() {
    let scratch = Scratch::new("test");
    let first = rendered(&[("k8s/a.yaml", "a: 1\n"), ("configs/b.yaml", "b: 2\n")]);
    let out = scratch.join("out");
    write_atomically(&out, &first, false).expect("a new folder");
    assert_eq!(
        read(&out.join(MARKER)),
        "# Written by `stackctl render`, which replaces this folder whole. It lists the files it\n\
         # wrote, and refuses to replace a folder that holds any other file (unless --force).\n\
         configs/b.yaml\nk8s/a.yaml\n"
    );
    assert_eq!(read(&out.join("k8s/a.yaml")), "a: 1\n");
    assert_eq!(diff(&out, &first).expect("diff"), []);

    let empty = scratch.join("empty");
    std::fs::create_dir_all(&empty).expect("dir");
    write_atomically(&empty, &first, false).expect("an empty folder");
    assert_eq!(read(&empty.join("configs/b.yaml")), "b: 2\n");
}

#[test]
fn an_earlier_render_is_replaced_and_files_no_longer_rendered_go() {
    let scratch = Scratch::new("test");
    let out = scratch.join("out");
    write_atomically(
        &out,
        &rendered(&[("k8s/a.yaml", "1\n"), ("k8s/old.yaml", "2\n")]),
        false,
    )
    .expect("writes");
    // A hand edit to a rendered file does not make it someone else's.
    write(&out.join("k8s/a.yaml"), "edited\n");
    let second = rendered(&[("k8s/a.yaml", "3\n")]);
    write_atomically(&out, &second, false).expect("replaces its own output");
    assert_eq!(read(&out.join("k8s/a.yaml")), "3\n");
    assert!(!out.join("k8s/old.yaml").exists(), "no longer rendered");
    assert_eq!(diff(&out, &second).expect("diff"), []);
}

#[test]
fn a_folder_without_the_marker_is_refused_and_kept() {
    let scratch = Scratch::new("test");
    let out = scratch.join("project");
    for name in ["notes.txt", "src/main.rs", "a", "b", "c", "d"] {
        write(&out.join(name), "mine\n");
    }
    let error = write_atomically(&out, &rendered(&[("k8s/a.yaml", "1\n")]), false)
        .expect_err("not a render's output");
    let dir = out.display().to_string();
    assert!(
        matches!(&error, WriteError::Foreign { dir: d, marked: false, files }
            if *d == dir && files.len() == 6),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "{dir} is not empty and has no .stackctl-render marker, so stackctl did not render \
             it: it holds a, b, c, d, notes.txt and 1 more. `stackctl render` replaces the whole \
             folder, so it leaves this one alone: move those files elsewhere, render into another \
             folder, or pass --force to replace it anyway"
        )
    );
    assert_eq!(
        read(&out.join("src/main.rs")),
        "mine\n",
        "nothing was deleted"
    );
    assert!(!out.join("k8s").exists(), "nothing was written");
    let leftovers: Vec<_> = std::fs::read_dir(scratch.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(leftovers, ["project"], "no staging folder is left behind");

    // --force replaces it.
    write_atomically(&out, &rendered(&[("k8s/a.yaml", "1\n")]), true).expect("forced");
    assert!(!out.join("notes.txt").exists());
    assert_eq!(read(&out.join("k8s/a.yaml")), "1\n");
}

#[test]
fn a_file_added_to_a_render_is_refused() {
    let scratch = Scratch::new("test");
    let out = scratch.join("out");
    let files = rendered(&[("k8s/a.yaml", "1\n")]);
    write_atomically(&out, &files, false).expect("writes");
    write(&out.join("k8s/mine.yaml"), "mine\n");
    let error = write_atomically(&out, &files, false).expect_err("holds a file it did not write");
    assert_eq!(
        error.to_string(),
        format!(
            "{} holds files stackctl did not write (its .stackctl-render marker does not list \
             them): it holds k8s/mine.yaml. `stackctl render` replaces the whole folder, so it \
             leaves this one alone: move those files elsewhere, render into another folder, or \
             pass --force to replace it anyway",
            out.display()
        )
    );
    assert_eq!(read(&out.join("k8s/mine.yaml")), "mine\n");
}

#[test]
fn a_file_in_the_way_is_refused_and_odd_paths_are_named() {
    let scratch = Scratch::new("test");
    let out = scratch.join("out");
    write(&out, "a file\n");
    let error = write_atomically(&out, &rendered(&[("a", "1\n")]), false).expect_err("a file");
    assert!(matches!(error, WriteError::NotAFolder { .. }), "{error:?}");
    assert_eq!(read(&out), "a file\n");
    write_atomically(&out, &rendered(&[("a", "1\n")]), true).expect("forced");
    assert_eq!(read(&out.join("a")), "1\n");

    let error = write_atomically(Path::new("."), &rendered(&[("a", "1\n")]), true)
        .expect_err("no folder of its own");
    assert_eq!(
        error.to_string(),
        "cannot render into .: name a folder of its own, such as rendered"
    );
}

#[test]
fn check_mode_wants_the_marker() {
    let scratch = Scratch::new("test");
    let out = scratch.join("out");
    let files = rendered(&[("k8s/a.yaml", "1\n")]);
    write_atomically(&out, &files, false).expect("writes");
    std::fs::remove_file(out.join(MARKER)).expect("remove");
    assert_eq!(
        diff(&out, &files).expect("diff"),
        [Diff::Missing(MARKER.to_owned())]
    );
}
