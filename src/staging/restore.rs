//! Putting a cache entry into an inheriting output's build: the whole
//! entry for an output with a script (which may change any file), or only
//! the files an output without a script packages.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use miette::Result;

use super::store::{Entry, FileKind};
use super::transfer::{self, Placement, Selection};
use crate::build::dirs::BuildDirs;
use crate::ui;

/// Restore a cache entry into a build's directories (everything, copied:
/// a script may change it) and log how long it took.
pub fn restore_into(entry: &Entry, dirs: &BuildDirs, label: &str) -> Result<()> {
    ui::step(label, &format!("restoring staging {}", entry.meta.name));
    let started = Instant::now();
    let stats = transfer::restore(entry, &dirs.host_prefix, &dirs.work_dir, Selection::ALL)?;
    tracing::info!(
        "{label}: restored staging {} ({} entries, {:.1} MB, {} reflinked, {} relocated) in {:.2} s",
        entry.meta.name,
        stats.entries,
        stats.bytes as f64 / 1e6,
        stats.reflinked,
        stats.relocated,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Place `paths` of a cache entry into the host prefix for an output
/// without a script, which packages them as they are: hard-linked, or
/// copied when `copy` (a kept build directory must not share files with
/// the cache). The targets of selected symlinks inside the entry are
/// placed too (not packaged), so that links resolve as after a full
/// restore. The work directory is copied when `work_dir` (the output has
/// sources of its own to layer on it).
pub fn place_selected(
    entry: &Entry,
    dirs: &BuildDirs,
    paths: &BTreeSet<String>,
    work_dir: bool,
    copy: bool,
    label: &str,
) -> Result<()> {
    let started = Instant::now();
    let mut all = with_link_targets(entry, paths);
    // A link target a package installed in the prefix provides stays theirs.
    all.retain(|p| paths.contains(p) || dirs.host_prefix.join(p).symlink_metadata().is_err());
    let paths = all;
    let what = Selection {
        paths: Some(&paths),
        work_dir,
        placement: if copy { Placement::Copy } else { Placement::Link },
    };
    let stats = transfer::restore(entry, &dirs.host_prefix, &dirs.work_dir, what)?;
    tracing::info!(
        "{label}: placed {} of the {} paths of staging {} ({:.1} MB: {} hard links, {} reflinked, {} relocated{}) in {:.2} s; nothing else restored",
        paths.len(),
        entry.meta.files.len(),
        entry.meta.name,
        stats.bytes as f64 / 1e6,
        stats.linked,
        stats.reflinked,
        stats.relocated,
        if work_dir { "; work directory copied" } else { "" },
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `paths` and, transitively, the entry paths their symlinks point to.
fn with_link_targets(entry: &Entry, paths: &BTreeSet<String>) -> BTreeSet<String> {
    let links: std::collections::HashMap<&str, &str> = entry
        .meta
        .files
        .iter()
        .filter(|f| f.kind == FileKind::Symlink)
        .filter_map(|f| Some((f.path.as_str(), f.target.as_deref()?)))
        .collect();
    let known: BTreeSet<&str> = entry.meta.files.iter().map(|f| f.path.as_str()).collect();
    let mut out = paths.clone();
    let mut todo: Vec<String> = paths.iter().cloned().collect();
    while let Some(path) = todo.pop() {
        let Some(target) = links.get(path.as_str()) else {
            continue;
        };
        // Absolute targets are relocated on placement; only relative ones
        // name a path of the entry directly.
        let dir = Path::new(&path).parent().unwrap_or(Path::new(""));
        let Some(resolved) = lexical_join(dir, Path::new(target)) else {
            continue;
        };
        let resolved = resolved.to_string_lossy().into_owned();
        if known.contains(resolved.as_str()) && out.insert(resolved.clone()) {
            todo.push(resolved);
        }
    }
    out
}

/// `dir/rel` with `.` and `..` resolved lexically; `None` when it is
/// absolute or climbs above the root.
fn lexical_join(dir: &Path, rel: &Path) -> Option<PathBuf> {
    if rel.is_absolute() {
        return None;
    }
    crate::package::contents::normalize(&dir.join(rel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_targets_resolve_inside_the_entry() {
        assert_eq!(
            lexical_join(Path::new("lib"), Path::new("libfoo.so.1")),
            Some(PathBuf::from("lib/libfoo.so.1"))
        );
        assert_eq!(
            lexical_join(Path::new("bin"), Path::new("../lib/./x")),
            Some(PathBuf::from("lib/x"))
        );
        assert_eq!(lexical_join(Path::new(""), Path::new("../x")), None);
        assert_eq!(lexical_join(Path::new("lib"), Path::new("/abs")), None);
    }
}
