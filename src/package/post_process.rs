//! `build.post_process`: regular-expression replacements over the files an
//! output packages, applied after the build (before run-path relocation),
//! before the files are hashed and scanned for the prefix.
//! Files are replaced with [`crate::disk::replace_file`] (new inode, same
//! mode), so a hard link into a cache is never written through.

use std::path::{Path, PathBuf};

use miette::{miette, IntoDiagnostic, Result};

use crate::recipe::model::PostProcess;
use crate::recipe::Recipe;

/// Apply `rules` to `files` (relative to `prefix`); returns how many files changed.
pub fn apply(recipe: &Recipe, prefix: &Path, files: &[PathBuf], rules: &[PostProcess]) -> Result<usize> {
    let mut changed = 0;
    for rule in rules {
        let set = crate::package::glob::GlobList::new(&rule.files)
            .map_err(|(msg, g)| miette!("{}: {msg}", recipe.file.location(&g.span)))?;
        let re = regex::bytes::Regex::new(&rule.regex)
            .map_err(|e| miette!("{}: invalid regular expression: {e}", recipe.file.location(&rule.span)))?;
        let mut matched = false;
        for rel in files.iter().filter(|f| set.is_match(&f.to_string_lossy())) {
            let path = prefix.join(rel);
            if !path.symlink_metadata().is_ok_and(|m| m.is_file()) {
                continue;
            }
            matched = true;
            let data = fs_err::read(&path).into_diagnostic()?;
            let out = re.replace_all(&data, rule.replacement.as_bytes());
            if out.as_ref() != data.as_slice() {
                crate::disk::replace_file(&path, &out)?;
                changed += 1;
            }
        }
        if !matched {
            tracing::warn!(
                "{}: post_process rule `{}` matched no packaged file",
                recipe.file.location(&rule.span),
                rule.regex
            );
        }
    }
    Ok(changed)
}
