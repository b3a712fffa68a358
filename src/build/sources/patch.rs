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
    let mut changes: Vec<Change> = Vec::new();
    let locate = |name: &[u8]| -> Result<(PathBuf, PathBuf)> {
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
        Ok((rel, target))
    };
    for diff in &diffs {
        let from = diff.original().map(&locate).transpose()?;
        let to = diff.modified().map(&locate).transpose()?;
        let (rel, _) = to
            .as_ref()
            .or(from.as_ref())
            .ok_or_else(|| miette!("patch {shown} has a change without a file name"))?;
        // The old content (a rename reads the old name); earlier changes
        // in this patch count.
        let base = match &from {
            None => Vec::new(),
            Some((from_rel, from_path)) => match changes.iter().rev().find(|c| c.path == *from_path) {
                Some(Change { content: Some(c), .. }) => c.clone(),
                Some(Change { content: None, .. }) => {
                    return Err(miette!(
                        "patch {shown}: {} was deleted earlier in the patch",
                        from_rel.display()
                    ))
                }
                None => std::fs::read(from_path)
                    .map_err(|e| miette!("patch {shown}: cannot read {}: {e}", from_rel.display()))?,
            },
        };
        let (patched, _) = flickzeug::apply_bytes_with_config(&base, diff, &exact()).map_err(|e| {
            miette!(
                help = "the patch does not match this version of the source; refresh it against the new release",
                "patch {shown} does not apply to {}: {e}",
                rel.display()
            )
        })?;
        let mode = from
            .as_ref()
            .and_then(|(_, p)| std::fs::metadata(p).ok())
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777);
        match (&from, &to) {
            (_, Some((_, to_path))) => {
                changes.push(Change {
                    path: to_path.clone(),
                    content: Some(patched),
                    mode,
                });
                if let Some((_, from_path)) = from.filter(|(_, p)| p != to_path) {
                    changes.push(Change {
                        path: from_path,
                        content: None,
                        mode: None,
                    });
                }
            }
            (Some((_, from_path)), None) => changes.push(Change {
                path: from_path.clone(),
                content: None,
                mode: None,
            }),
            (None, None) => unreachable!("checked above"),
        }
    }
    for change in changes {
        match change.content {
            Some(bytes) => write_replacing(&change.path, &bytes, change.mode)?,
            None => {
                if change.path.symlink_metadata().is_ok() {
                    fs_err::remove_file(&change.path).into_diagnostic()?;
                }
            }
        }
    }
    Ok(())
}

/// One file's new content (`None`: delete it) and the mode to keep.
struct Change {
    path: PathBuf,
    content: Option<Vec<u8>>,
    mode: Option<u32>,
}

/// Write `bytes` to `path` as a new file (so a read-only file is patched
/// too and a hard-linked sibling is left alone), with the old file's mode,
/// or `mode` for a renamed file.
fn write_replacing(path: &Path, bytes: &[u8], mode: Option<u32>) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs_err::create_dir_all(path.parent().expect("a patched file has a parent")).into_diagnostic()?;
    crate::disk::replace_file(path, bytes)?;
    if let Some(m) = mode {
        fs_err::set_permissions(path, std::fs::Permissions::from_mode(m)).into_diagnostic()?;
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
