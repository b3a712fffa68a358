//! Prefix → package: choose the files, lay them out with `info/`, archive.

pub mod archive;
pub mod codesign;
pub mod contents;
pub mod elf;
pub mod glob;
pub mod linking;
pub mod macho;
pub mod metadata;
pub mod post_process;
pub mod python;
pub mod relink;
pub mod select;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use miette::{miette, IntoDiagnostic, Result};

use crate::recipe::model::{FileFilter, Output};
use crate::recipe::Recipe;

/// How packages are written.
pub struct PackOptions {
    /// `.conda` or `.tar.bz2`, level and threads.
    pub compression: archive::Compression,
    /// Fail when a binary file contains the build prefix.
    pub error_prefix_in_binary: bool,
}

/// Apply `build.files` to the new files of an output; warns about globs
/// that matched nothing, with their location in the recipe.
pub fn select_files(recipe: &Recipe, output: &Output, new_files: &[PathBuf]) -> Result<Vec<PathBuf>> {
    select(recipe, output, &output.build.files, "files", new_files.iter())
}

/// `build.always_include_files`: every file in the prefix (`all`, relative
/// paths) matching one of its globs, new or not (a file a dependency
/// installed included); warns about globs that matched nothing.
pub fn always_included(recipe: &Recipe, output: &Output, all: &BTreeSet<PathBuf>) -> Result<Vec<PathBuf>> {
    let globs = &output.build.always_include_files;
    if globs.is_empty() {
        return Ok(Vec::new());
    }
    let filter = FileFilter {
        include: globs.clone(),
        exclude: Vec::new(),
    };
    let candidates = all.iter().filter(|p| !p.starts_with("conda-meta"));
    select(recipe, output, &filter, "always_include_files", candidates)
}

/// The paths `filter` selects, warning (at their lines) about include
/// globs of the recipe key `what` that matched nothing.
fn select<'p>(
    recipe: &Recipe,
    output: &Output,
    filter: &FileFilter,
    what: &str,
    paths: impl Iterator<Item = &'p PathBuf>,
) -> Result<Vec<PathBuf>> {
    let mut selector =
        glob::Selector::new(filter).map_err(|(msg, g)| miette!("{}: {msg}", recipe.file.location(&g.span)))?;
    let chosen: Vec<PathBuf> = paths
        .filter(|p| selector.select(&p.to_string_lossy().replace('\\', "/")))
        .cloned()
        .collect();
    for g in selector.unmatched() {
        tracing::warn!(
            "{}: `{what}` glob `{}` of {} matched no files",
            recipe.file.location(&g.span),
            g.pattern,
            output.package.name.as_source()
        );
    }
    Ok(chosen)
}

/// A package directory with its files and `info/`, ready to be archived.
/// It lives outside the build directory (the next output's build may
/// start, and wipe that, while this one is compressed) and holds hard
/// links, so it stays valid after the build directory is gone.
pub struct Prepared {
    pkg_dir: PathBuf,
    dest_dir: PathBuf,
    stem: String,
    compression: archive::Compression,
    timestamp: i64,
}

impl Prepared {
    /// The package file [`Prepared::archive`] writes.
    pub fn path(&self) -> PathBuf {
        self.dest_dir
            .join(format!("{}{}", self.stem, self.compression.format.format.extension()))
    }

    /// Write the archive (renamed into place when complete) and remove the
    /// package directory.
    pub fn archive(self) -> Result<PathBuf> {
        let path = archive::write(
            &self.pkg_dir,
            &self.dest_dir,
            &self.stem,
            self.compression,
            self.timestamp,
        );
        let _ = fs_err::remove_dir_all(&self.pkg_dir);
        path
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        // Already gone after `archive`; left over when the build failed.
        let _ = std::fs::remove_dir_all(&self.pkg_dir);
    }
}

/// Lay out the package directory for `files` (hard links from `prefix`,
/// described in `info/paths.json`) in `pkg_dir`, with `info/`, for
/// [`Prepared::archive`].
pub fn prepare(
    info: &metadata::InfoInputs,
    prefix: &Path,
    files: &[PathBuf],
    pkg_dir: &Path,
    dest_dir: &Path,
    pack: &PackOptions,
) -> Result<Prepared> {
    if pkg_dir.exists() {
        fs_err::remove_dir_all(pkg_dir).into_diagnostic()?;
    }
    fs_err::create_dir_all(pkg_dir).into_diagnostic()?;
    let prepared = Prepared {
        pkg_dir: pkg_dir.to_path_buf(),
        dest_dir: dest_dir.to_path_buf(),
        stem: format!(
            "{}-{}-{}",
            info.output.package.name.as_normalized(),
            info.output.package.version.as_str(),
            info.build_string
        ),
        compression: pack.compression,
        timestamp: info.timestamp,
    };
    let detection = contents::Detection::new(&info.output.build)?;
    // Empty directories the build made go into the archive, not into
    // `paths.json` (installers create directories from file paths).
    let (dirs, files): (Vec<PathBuf>, Vec<PathBuf>) = files
        .iter()
        .cloned()
        .partition(|f| prefix.join(f).symlink_metadata().is_ok_and(|m| m.is_dir()));
    for d in &dirs {
        fs_err::create_dir_all(pkg_dir.join(d)).into_diagnostic()?;
    }
    let entries = contents::assemble(prefix, &files, pkg_dir, &detection)?;
    if pack.error_prefix_in_binary {
        let binary: Vec<&str> = entries
            .iter()
            .filter(|e| e.file_mode == Some(contents::FileMode::Binary))
            .map(|e| e.path.as_str())
            .collect();
        if !binary.is_empty() {
            return Err(miette!(
                help = "make the build not embed its prefix, or use `prefix_detection` to ignore these files",
                "--error-prefix-in-binary: these binary files contain the build prefix: {}",
                binary.join(", ")
            ));
        }
    }
    metadata::write_info(pkg_dir, info, &entries)?;
    Ok(prepared)
}
