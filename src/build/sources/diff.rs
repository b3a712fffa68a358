//! The changes between two trees as a unified diff (`a/` and `b/` paths,
//! `/dev/null` for created and deleted files), the form [`super::patch`]
//! applies: for `kiln create-patch`. Binary files and symlinks are left
//! out and reported; `.git` directories are never compared.

use std::collections::BTreeSet;
use std::path::Path;

use miette::{IntoDiagnostic, Result};

use crate::package::glob::GlobList;

/// Which files count.
pub struct Filters {
    /// Only files matching these (all when empty).
    pub include: GlobList,
    /// Never files matching these.
    pub exclude: GlobList,
    /// New files only when matching these.
    pub add: GlobList,
}

/// The diff and what was left out of it.
#[derive(Default)]
pub struct Changes {
    /// The unified diff (empty when nothing changed).
    pub patch: String,
    /// Paths in the diff.
    pub files: Vec<String>,
    /// New files not matched by an `add` glob.
    pub new_not_added: Vec<String>,
    /// Changed binary files (and symlinks), left out.
    pub binary: Vec<String>,
}

/// The changes from `original` to `changed` under `filters`.
pub fn changes(original: &Path, changed: &Path, filters: &Filters) -> Result<Changes> {
    let before = files(original)?;
    let after = files(changed)?;
    let mut out = Changes::default();
    for rel in before.union(&after) {
        if (!filters.include.is_empty() && !filters.include.is_match(rel)) || filters.exclude.is_match(rel) {
            continue;
        }
        let old = before.contains(rel).then(|| original.join(rel));
        let new = after.contains(rel).then(|| changed.join(rel));
        if old.is_none() && !filters.add.is_match(rel) {
            out.new_not_added.push(rel.clone());
            continue;
        }
        let read = |p: &Option<std::path::PathBuf>| -> Result<Option<Vec<u8>>> {
            match p {
                None => Ok(None),
                Some(p) if p.symlink_metadata().into_diagnostic()?.file_type().is_symlink() => Ok(Some(
                    format!("\0symlink {}", std::fs::read_link(p).into_diagnostic()?.display()).into_bytes(),
                )),
                Some(p) => Ok(Some(fs_err::read(p).into_diagnostic()?)),
            }
        };
        let (a, b) = (read(&old)?, read(&new)?);
        if a == b {
            continue;
        }
        let text = |bytes: &Option<Vec<u8>>| match bytes {
            None => Some(String::new()),
            Some(b) if b.contains(&0) => None,
            Some(b) => String::from_utf8(b.clone()).ok(),
        };
        let (Some(a_text), Some(b_text)) = (text(&a), text(&b)) else {
            out.binary.push(rel.clone());
            continue;
        };
        let mut options = flickzeug::DiffOptions::new();
        options.set_original_filename(if a.is_some() {
            format!("a/{rel}")
        } else {
            "/dev/null".into()
        });
        options.set_modified_filename(if b.is_some() {
            format!("b/{rel}")
        } else {
            "/dev/null".into()
        });
        let diff = options.create_patch(&a_text, &b_text);
        out.patch.push_str(&diff.to_string());
        if !out.patch.ends_with('\n') {
            out.patch.push('\n');
        }
        out.files.push(rel.clone());
    }
    Ok(out)
}

/// The files (and symlinks) below `root`, relative, `/`-separated; `.git`
/// directories left out.
fn files(root: &Path) -> Result<BTreeSet<String>> {
    let mut set = BTreeSet::new();
    let walker = walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| e.file_name() != ".git");
    for entry in walker {
        let entry = entry.into_diagnostic()?;
        if entry.file_type().is_dir() {
            continue;
        }
        let rel = entry.path().strip_prefix(root).into_diagnostic()?;
        set.insert(rel.to_string_lossy().replace('\\', "/"));
    }
    Ok(set)
}
