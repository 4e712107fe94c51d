//! The marker file that says a folder is `stackctl render`'s output, and lists what it wrote.
//!
//! Rendering replaces the output folder whole, so that files no longer rendered do not linger.
//! The marker makes that safe: a folder is replaced only when every file in it is one the
//! marker lists (or the marker itself), so a render never deletes a file it did not write.

use std::collections::BTreeSet;
use std::io;
use std::path::Path;

use crate::Rendered;

/// The marker's file name, in the output folder.
pub const MARKER: &str = ".stackctl-render";

/// The marker for `rendered`: a comment, then the path of every file written, one a line.
pub(crate) fn text(rendered: &Rendered) -> String {
    let mut out = String::from(
        "# Written by `stackctl render`, which replaces this folder whole. It lists the files it\n\
         # wrote, and refuses to replace a folder that holds any other file (unless --force).\n",
    );
    for path in rendered.files.keys() {
        out.push_str(path);
        out.push('\n');
    }
    out
}

/// The files the marker in `dir` lists, or `None` when `dir` has no marker.
pub(crate) fn listed(dir: &Path) -> io::Result<Option<BTreeSet<String>>> {
    let text = match std::fs::read_to_string(dir.join(MARKER)) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    Ok(Some(
        text.lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(str::to_owned)
            .collect(),
    ))
}

/// Everything under `dir` that is not a folder (files, links and the like), and every empty
/// folder (with a trailing `/`), as sorted paths relative to `dir`. Links are not followed.
pub(crate) fn contents(dir: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let mut empty = true;
        for entry in std::fs::read_dir(&folder)? {
            let entry = entry?;
            empty = false;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                pending.push(path);
            } else if let Ok(relative) = path.strip_prefix(dir) {
                out.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
        if empty
            && folder != dir
            && let Ok(relative) = folder.strip_prefix(dir)
        {
            out.push(format!(
                "{}/",
                relative.to_string_lossy().replace('\\', "/")
            ));
        }
    }
    out.sort();
    Ok(out)
}
