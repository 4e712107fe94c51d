//! Writing rendered files: all or nothing, only over a folder the renderer owns, and
//! comparing with what is on disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::Rendered;
use crate::marker::{self, MARKER};

/// How many unrelated files an error names before it says "and N more".
const NAMED: usize = 5;

/// Why the rendered files were not written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The output folder holds files no render wrote; replacing it would delete them.
    #[error(
        "{dir} {} it holds {}. `stackctl render` replaces the whole folder, so it leaves this \
         one alone: move those files elsewhere, render into another folder, or pass --force to \
         replace it anyway",
        if *.marked {
            format!("holds files stackctl did not write (its {MARKER} marker does not list them):")
        } else {
            format!("is not empty and has no {MARKER} marker, so stackctl did not render it:")
        },
        named(.files)
    )]
    Foreign {
        /// The output folder.
        dir: String,
        /// Whether the folder has the marker (then `files` are those it does not list).
        marked: bool,
        /// The files that would be lost, sorted.
        files: Vec<String>,
    },
    /// The output path exists and is not a folder (a file, or a link).
    #[error(
        "{path} exists and is not a folder; pass --force to replace it with the rendered folder"
    )]
    NotAFolder {
        /// The output path.
        path: String,
    },
    /// The output path names no folder of its own, such as `.` or `/`.
    #[error("cannot render into {path}: name a folder of its own, such as rendered")]
    NoName {
        /// The output path.
        path: String,
    },
    /// Reading or writing failed.
    #[error("cannot write {path}: {error}")]
    Io {
        /// The path being read or written.
        path: String,
        /// The error.
        error: std::io::Error,
    },
}

fn named(files: &[String]) -> String {
    let shown: Vec<&str> = files.iter().take(NAMED).map(String::as_str).collect();
    match files.len().saturating_sub(NAMED) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError + '_ {
    move |error| WriteError::Io {
        path: path.display().to_string(),
        error,
    }
}

/// Refuses to replace `out` unless it is absent, empty, or holds only files its marker lists.
fn check_owned(out: &Path) -> Result<(), WriteError> {
    let metadata = match std::fs::symlink_metadata(out) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(io_error(out)(error)),
    };
    if !metadata.is_dir() {
        return Err(WriteError::NotAFolder {
            path: out.display().to_string(),
        });
    }
    let contents = marker::contents(out).map_err(io_error(out))?;
    let listed = marker::listed(out).map_err(io_error(out))?;
    let marked = listed.is_some();
    let files: Vec<String> = match listed {
        None => contents,
        Some(listed) => contents
            .into_iter()
            .filter(|path| path != MARKER && !path.ends_with('/') && !listed.contains(path))
            .collect(),
    };
    if files.is_empty() {
        Ok(())
    } else {
        Err(WriteError::Foreign {
            dir: out.display().to_string(),
            marked,
            files,
        })
    }
}

/// Replaces `out` with exactly the rendered files and the [`MARKER`] that lists them.
/// Everything is written to a sibling folder first; only then is the old folder swapped out
/// and removed, so a failure leaves the previous output in place.
///
/// `out` is replaced only when it does not exist, is empty, or holds nothing but files its
/// marker lists (an earlier render's output): anything else is refused with
/// [`WriteError::Foreign`] naming the files, unless `force`, which replaces it regardless.
pub fn write_atomically(out: &Path, rendered: &Rendered, force: bool) -> Result<(), WriteError> {
    let Some(name) = out.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Err(WriteError::NoName {
            path: out.display().to_string(),
        });
    };
    if !force {
        check_owned(out)?;
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io_error(parent))?;
    let staging = parent.join(format!(".{name}.new-{}", std::process::id()));
    let retired = parent.join(format!(".{name}.old-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let marker_text = marker::text(rendered);
    let written = (|| {
        std::fs::create_dir_all(&staging)?;
        std::fs::write(staging.join(MARKER), &marker_text)?;
        for (path, text) in &rendered.files {
            let target = staging.join(path);
            if let Some(dir) = target.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&target, text)?;
            if path.ends_with(".sh") {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))?;
            }
        }
        Ok::<_, std::io::Error>(())
    })();
    if let Err(error) = written {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(io_error(&staging)(error));
    }
    let previous = std::fs::symlink_metadata(out).ok();
    if previous.is_some()
        && let Err(error) = std::fs::rename(out, &retired)
    {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(io_error(out)(error));
    }
    if let Err(error) = std::fs::rename(&staging, out) {
        if previous.is_some() {
            let _ = std::fs::rename(&retired, out);
        }
        let _ = std::fs::remove_dir_all(&staging);
        return Err(io_error(out)(error));
    }
    match previous {
        Some(metadata) if metadata.is_dir() => std::fs::remove_dir_all(&retired),
        Some(_) => std::fs::remove_file(&retired),
        None => Ok(()),
    }
    .map_err(io_error(&retired))
}

/// One difference between a fresh render and the files on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Diff {
    /// Rendered, but missing on disk.
    Missing(String),
    /// On disk, but no longer rendered.
    Extra(String),
    /// Different content: the unified diff from disk to fresh.
    Changed(String, String),
}

fn files_under(root: &Path) -> std::io::Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(relative) = path.strip_prefix(root) {
                out.insert(relative.to_string_lossy().replace('\\', "/"), path);
            }
        }
    }
    Ok(out)
}

/// Compares a fresh render (and the [`MARKER`] listing it) with `out` on disk.
pub fn diff(out: &Path, rendered: &Rendered) -> std::io::Result<Vec<Diff>> {
    let on_disk = if out.exists() {
        files_under(out)?
    } else {
        BTreeMap::new()
    };
    let mut expected: BTreeMap<String, String> = rendered.files.clone();
    expected.insert(MARKER.to_owned(), marker::text(rendered));
    let mut diffs = Vec::new();
    for (path, fresh) in &expected {
        match on_disk.get(path) {
            None => diffs.push(Diff::Missing(path.clone())),
            Some(file) => {
                let old = std::fs::read_to_string(file).unwrap_or_default();
                if &old != fresh {
                    let unified = similar::TextDiff::from_lines(old.as_str(), fresh.as_str())
                        .unified_diff()
                        .context_radius(3)
                        .header(&format!("a/{path}"), &format!("b/{path}"))
                        .to_string();
                    diffs.push(Diff::Changed(path.clone(), unified));
                }
            }
        }
    }
    for path in on_disk.keys() {
        if !expected.contains_key(path) {
            diffs.push(Diff::Extra(path.clone()));
        }
    }
    Ok(diffs)
}
