//! Writing rendered files: all or nothing, and comparing with what is on disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::Rendered;

/// Replaces `out` with exactly the rendered files. Everything is written to a sibling
/// directory first; only then is the old directory swapped out and removed, so a failure
/// leaves the previous output in place.
pub fn write_atomically(out: &Path, rendered: &Rendered) -> std::io::Result<()> {
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let name = out
        .file_name()
        .map_or_else(|| "rendered".into(), |n| n.to_string_lossy().into_owned());
    let staging = parent.join(format!(".{name}.new-{}", std::process::id()));
    let retired = parent.join(format!(".{name}.old-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let written = (|| {
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
        return Err(error);
    }
    let had_previous = out.exists();
    if had_previous {
        std::fs::rename(out, &retired)?;
    }
    if let Err(error) = std::fs::rename(&staging, out) {
        if had_previous {
            let _ = std::fs::rename(&retired, out);
        }
        let _ = std::fs::remove_dir_all(&staging);
        return Err(error);
    }
    if had_previous {
        std::fs::remove_dir_all(&retired)?;
    }
    Ok(())
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

/// Compares a fresh render with `out` on disk.
pub fn diff(out: &Path, rendered: &Rendered) -> std::io::Result<Vec<Diff>> {
    let on_disk = if out.exists() {
        files_under(out)?
    } else {
        BTreeMap::new()
    };
    let mut diffs = Vec::new();
    for (path, fresh) in &rendered.files {
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
        if !rendered.files.contains_key(path) {
            diffs.push(Diff::Extra(path.clone()));
        }
    }
    Ok(diffs)
}
