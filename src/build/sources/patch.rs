//! Applying a source's `patches` (unified diffs, as `diff -u` and `git
//! diff` write them) without a `patch` binary, using flickzeug (the patch
//! library rattler-build uses). A hunk must match exactly, though it may
//! sit at another line than it says: flickzeug's fuzzy matching compares
//! lines by similarity, removed lines included, which would let a patch
//! written for other code apply and silently change the wrong lines.
//!
//! The strip level is chosen per patch, as rattler-build does: the
//! smallest number of leading path components to drop so that every file
//! the patch changes or deletes exists. Files are created and deleted as
//! the patch says. Every path, after following symlinks, must stay inside
//! the source's directory; a hunk that does not apply fails with the patch
//! file, the target file and the hunk. Changes are written only after the
//! whole patch applied, so a failed patch changes nothing.

use std::path::{Path, PathBuf};

use flickzeug::{ApplyConfig, Diff};
use miette::{miette, IntoDiagnostic, Result};

/// The most leading components a patch path may carry above the source.
const MAX_STRIP: usize = 6;

/// Apply the patch file `patch` to the tree at `dir`; `shown` names the
/// patch in messages.
pub fn apply(patch: &Path, shown: &str, dir: &Path) -> Result<()> {
    let bytes = fs_err::read(patch).into_diagnostic()?;
    let diffs = flickzeug::patch_from_bytes(&bytes)
        .map_err(|e| miette!("patch {shown} cannot be read as a unified diff: {e}"))?;
    if diffs.is_empty() {
        return Err(miette!("patch {shown} contains no changes"));
    }
    let strip = strip_level(&diffs, dir).ok_or_else(|| {
        let names: Vec<String> = diffs
            .iter()
            .filter_map(|d| d.original().map(|n| String::from_utf8_lossy(n).into_owned()))
            .collect();
        miette!(
            help = "a patch's paths are taken relative to the source's directory (its `target_directory`), after removing leading components",
            "patch {shown}: none of the files it changes exist in {} ({})",
            dir.display(),
            names.join(", ")
        )
    })?;
    tracing::debug!("applying {shown} with strip level {strip}");
    // Compute every result first: a failing hunk leaves the tree untouched.
    let mut changes: Vec<(PathBuf, Option<Vec<u8>>)> = Vec::new();
    for diff in &diffs {
        let (from, to) = (diff.original(), diff.modified());
        let name = to
            .or(from)
            .ok_or_else(|| miette!("patch {shown} has a change without a file name"))?;
        let rel = stripped(name, strip).ok_or_else(|| {
            miette!(
                "patch {shown} names `{}`, which has fewer than {strip} leading components",
                String::from_utf8_lossy(name)
            )
        })?;
        let target = inside(dir, &rel).ok_or_else(|| {
            miette!(
                "patch {shown} touches `{}`, which is outside the source directory; refusing it",
                rel.display()
            )
        })?;
        // Earlier changes in this patch to the same file count.
        let current = match changes.iter().rev().find(|(p, _)| *p == target) {
            Some((_, content)) => content.clone(),
            None => std::fs::read(&target).ok(),
        };
        let base = match (from, &current) {
            (None, _) => Vec::new(),
            (Some(_), Some(c)) => c.clone(),
            (Some(_), None) => return Err(miette!("patch {shown}: {} does not exist", rel.display())),
        };
        let patched = flickzeug::apply_bytes_with_config(&base, diff, &exact()).map_err(|e| {
            miette!(
                help = "the patch does not match this version of the source; refresh it against the new release",
                "patch {shown} does not apply to {}: {e}",
                rel.display()
            )
        })?;
        changes.push((target, to.is_some().then_some(patched.0)));
    }
    for (target, content) in changes {
        match content {
            Some(bytes) => {
                if let Some(parent) = target.parent() {
                    fs_err::create_dir_all(parent).into_diagnostic()?;
                }
                // Writing in place keeps the file's mode.
                fs_err::write(&target, bytes).into_diagnostic()?;
            }
            None => {
                if target.symlink_metadata().is_ok() {
                    fs_err::remove_file(&target).into_diagnostic()?;
                }
            }
        }
    }
    Ok(())
}

/// Exact matching (any offset, no fuzz).
fn exact() -> ApplyConfig {
    let mut config = ApplyConfig::default();
    config.fuzzy_config.max_fuzz = 0;
    config
}

/// The smallest strip level under which every changed or deleted file
/// exists; for a patch that only creates files, 1 when its paths carry git's
/// `a/`/`b/` prefixes, else 0.
fn strip_level(diffs: &[Diff<'_, [u8]>], dir: &Path) -> Option<usize> {
    let existing: Vec<&[u8]> = diffs.iter().filter_map(|d| d.original()).collect();
    if existing.is_empty() {
        let git_style = diffs.iter().filter_map(|d| d.modified()).all(|n| n.starts_with(b"b/"));
        return Some(usize::from(git_style));
    }
    (0..=MAX_STRIP).find(|&n| {
        existing
            .iter()
            .all(|name| stripped(name, n).is_some_and(|rel| inside(dir, &rel).is_some_and(|p| p.is_file())))
    })
}

/// `name` without its first `n` components.
fn stripped(name: &[u8], n: usize) -> Option<PathBuf> {
    let text = String::from_utf8_lossy(name);
    let parts: Vec<&str> = text.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    (parts.len() > n).then(|| parts[n..].iter().collect())
}

/// `dir/rel`, when it stays inside `dir` after following symlinks.
fn inside(dir: &Path, rel: &Path) -> Option<PathBuf> {
    crate::disk::safe_join(dir, rel)?;
    crate::disk::resolve_within(dir, rel).map(|r| dir.join(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_components() {
        assert_eq!(stripped(b"a/src/x.c", 1), Some(PathBuf::from("src/x.c")));
        assert_eq!(stripped(b"x.c", 0), Some(PathBuf::from("x.c")));
        assert_eq!(stripped(b"x.c", 1), None);
        assert_eq!(stripped(b"./src//x.c", 0), Some(PathBuf::from("src/x.c")));
    }
}
