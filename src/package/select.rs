//! Which files of a prefix go into a package: the files the build added
//! (prefix after minus prefix before), minus files of installed packages
//! (`conda-meta/*.json`) and junk, filtered by `build.files`.

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
    for entry in walkdir::WalkDir::new(prefix).min_depth(1).follow_links(false) {
        let entry = entry.into_diagnostic()?;
        // Directories count only when empty (a package keeps those).
        if entry.file_type().is_dir() && fs_err::read_dir(entry.path()).into_diagnostic()?.next().is_some() {
            continue;
        }
        out.insert(entry.path().strip_prefix(prefix).into_diagnostic()?.to_path_buf());
    }
    Ok(out)
}

/// Paths in `after` that are not in `before`, not owned by a package
/// installed in `prefix`, and not junk.
pub fn new_files(prefix: &Path, before: &Snapshot, after: &Snapshot) -> Result<Vec<PathBuf>> {
    let owned = installed_files(prefix)?;
    Ok(after
        .iter()
        .filter(|p| !before.contains(*p) && !owned.contains(*p) && !is_junk(p))
        .cloned()
        .collect())
}

/// Files that belong to packages installed in `prefix`.
pub fn installed_files(prefix: &Path) -> Result<BTreeSet<PathBuf>> {
    Ok(installed(prefix)?.into_iter().flat_map(|(_, files)| files).collect())
}

/// Each package installed in `prefix` (by its `conda-meta` record): its
/// name and its files.
pub fn installed(prefix: &Path) -> Result<Vec<(String, Vec<PathBuf>)>> {
    let mut out = Vec::new();
    let meta = prefix.join("conda-meta");
    if !meta.is_dir() {
        return Ok(out);
    }
    for entry in fs_err::read_dir(&meta).into_diagnostic()? {
        let path = entry.into_diagnostic()?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let record = rattler_conda_types::PrefixRecord::from_path(&path)
                .map_err(|e| miette::miette!("cannot read {}: {e}", path.display()))?;
            let name = record.repodata_record.package_record.name.as_normalized().to_string();
            out.push((name, record.files));
        }
    }
    Ok(out)
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
