//! Which files of a prefix go into a package: the files the build added
//! (prefix after minus prefix before), minus junk, filtered by `build.files`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use miette::{IntoDiagnostic, Result};

/// Snapshot of the paths (files and symlinks) in a prefix.
pub type Snapshot = BTreeSet<PathBuf>;

/// All files and symlinks below `prefix`, relative to it (directories excluded).
pub fn snapshot(prefix: &Path) -> Result<Snapshot> {
    let mut out = BTreeSet::new();
    if !prefix.exists() {
        return Ok(out);
    }
    for entry in walkdir::WalkDir::new(prefix).follow_links(false) {
        let entry = entry.into_diagnostic()?;
        if entry.file_type().is_dir() {
            continue;
        }
        out.insert(entry.path().strip_prefix(prefix).into_diagnostic()?.to_path_buf());
    }
    Ok(out)
}

/// Paths in `after` that are not in `before` and are not junk.
pub fn new_files(before: &Snapshot, after: &Snapshot) -> Vec<PathBuf> {
    after
        .iter()
        .filter(|p| !before.contains(*p) && !is_junk(p))
        .cloned()
        .collect()
}

/// Files conda packages never carry.
fn is_junk(p: &Path) -> bool {
    let s = p.to_string_lossy();
    if s.ends_with(".pyo") || s.ends_with(".la") || s == "share/info/dir" {
        return true;
    }
    p.components().any(|c| {
        let c = c.as_os_str();
        c == ".DS_Store" || c == "conda-meta" || c == "CACHEDIR.TAG"
    })
}
