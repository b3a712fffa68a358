//! Placing a recipe's sources into the work directory.
//!
//! Only `path` sources exist so far: an archive is extracted (see
//! [`super::archive`]; `file_name` keeps it as a file), another file is
//! copied (checksum verified when given), a directory is copied honouring
//! `.gitignore` and `.condapackageignore`, keeping symlinks, file modes and
//! mtimes.

use std::path::{Path, PathBuf};

use miette::{miette, IntoDiagnostic, Result};

use crate::package::glob::Selector;
use crate::recipe::model::{PathSource, Source};
use crate::recipe::Recipe;

/// Copy `sources` into `work_dir`; `exclude` (the output directory) is never copied.
pub fn fetch(recipe: &Recipe, sources: &[Source], work_dir: &Path, exclude: &Path) -> Result<()> {
    for source in sources {
        match source {
            Source::Path(p) => fetch_path(recipe, p, work_dir, exclude)?,
        }
    }
    Ok(())
}

/// Check a source without placing it: it exists, its checksum matches, and
/// it lands inside the work directory.
pub fn check(recipe: &Recipe, source: &Source) -> Result<()> {
    match source {
        Source::Path(p) => {
            let scratch = Path::new("/work");
            destination(recipe, p, scratch)?;
            filter(recipe, p)?;
            let from = recipe.dir.join(&p.path);
            if readable(recipe, p, &from)?.is_file() {
                verify(recipe, p, &from)?;
                file_target(recipe, p, &from, scratch)?;
            }
            Ok(())
        }
    }
}

fn destination(recipe: &Recipe, src: &PathSource, work_dir: &Path) -> Result<PathBuf> {
    match &src.target_directory {
        Some(t) => safe_join(work_dir, t).ok_or_else(|| {
            miette!(
                "{}: `target_directory` {} leaves the work directory",
                recipe.file.location(&src.span),
                t.display()
            )
        }),
        None => Ok(work_dir.to_path_buf()),
    }
}

fn readable(recipe: &Recipe, src: &PathSource, from: &Path) -> Result<std::fs::Metadata> {
    fs_err::metadata(from).map_err(|e| {
        miette!(
            help = "`path` is relative to the directory of the recipe",
            "{}: source path {} cannot be read: {e}",
            recipe.file.location(&src.span),
            from.display()
        )
    })
}

fn verify(recipe: &Recipe, src: &PathSource, from: &Path) -> Result<()> {
    if let Some(expected) = &src.sha256 {
        let actual = crate::disk::file_sha256(from)?;
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(miette!(
                "{}: checksum mismatch for {}\n  expected sha256: {expected}\n  actual sha256:   {actual}",
                recipe.file.location(&src.span),
                from.display()
            ));
        }
    }
    Ok(())
}

fn file_target(recipe: &Recipe, src: &PathSource, from: &Path, dest_dir: &Path) -> Result<PathBuf> {
    let name = src.file_name.clone().unwrap_or_else(|| {
        from.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    safe_join(dest_dir, Path::new(&name)).ok_or_else(|| {
        miette!(
            "{}: `file_name` {name} leaves the work directory",
            recipe.file.location(&src.span)
        )
    })
}

fn fetch_path(recipe: &Recipe, src: &PathSource, work_dir: &Path, exclude: &Path) -> Result<()> {
    let from = recipe.dir.join(&src.path);
    let dest_dir = destination(recipe, src, work_dir)?;
    let meta = readable(recipe, src, &from)?;
    fs_err::create_dir_all(&dest_dir).into_diagnostic()?;
    if meta.is_file() {
        verify(recipe, src, &from)?;
        // An archive is extracted, unless `file_name` asks for the file itself.
        let name = from
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let (None, Some(kind)) = (&src.file_name, super::archive::kind_of(&name)) {
            let mut selector = filter(recipe, src)?;
            let mut keep = |rel: &Path| selector.select(&rel.to_string_lossy());
            let extracted = super::archive::extract(&from, kind, &dest_dir, &mut keep);
            warn_unmatched(recipe, &selector);
            return extracted.map_err(|e| {
                miette!(
                    help = "an archive is extracted into the work directory; set `file_name` to keep it as a file",
                    "{}: source {}: {e}",
                    recipe.file.location(&src.span),
                    from.display()
                )
            });
        }
        let target = file_target(recipe, src, &from, &dest_dir)?;
        crate::disk::copy_file(&from, &target)?;
        return Ok(());
    }
    let mut selector = filter(recipe, src)?;
    for entry in walk_dir_source(&from, src.use_gitignore, &[exclude]) {
        let (path, rel, is_dir) = entry?;
        let target = dest_dir.join(&rel);
        if is_dir {
            if src.filter.is_empty() {
                fs_err::create_dir_all(&target).into_diagnostic()?;
            }
        } else if selector.select(&rel.to_string_lossy()) {
            crate::disk::copy_file(&path, &target)?;
        }
    }
    warn_unmatched(recipe, &selector);
    Ok(())
}

/// The source's `filter` (everything when it has none); an invalid glob is
/// an error at its line.
pub fn filter<'a>(recipe: &Recipe, src: &'a PathSource) -> Result<Selector<'a>> {
    Selector::new(&src.filter).map_err(|(msg, g)| miette!("{}: {msg}", recipe.file.location(&g.span)))
}

fn warn_unmatched(recipe: &Recipe, selector: &Selector) {
    for g in selector.unmatched() {
        tracing::warn!(
            "{}: source `filter` glob `{}` matched no files",
            recipe.file.location(&g.span),
            g.pattern
        );
    }
}

/// The entries of a directory source as (path, path relative to the
/// source, is_dir), honouring `.gitignore` (when asked),
/// `.condapackageignore`, skipping `.git/` and anything below `exclude`.
pub fn walk_dir_source(
    from: &Path,
    use_gitignore: bool,
    exclude: &[&Path],
) -> impl Iterator<Item = Result<(PathBuf, PathBuf, bool)>> {
    walk(from, use_gitignore, exclude, false)
}

/// The files a script may read below `dir` (the recipe directory), for the
/// staging key: like [`walk_dir_source`] without `.gitignore`, but through
/// symlinks, and skipping kiln's own output and cache directories (any
/// directory with a `CACHEDIR.TAG` or a `bld/.locks`), whoever's run made them.
pub fn walk_inputs(dir: &Path, exclude: &[&Path]) -> impl Iterator<Item = Result<(PathBuf, PathBuf, bool)>> {
    walk(dir, false, exclude, true)
}

fn walk(
    from: &Path,
    use_gitignore: bool,
    exclude: &[&Path],
    inputs: bool,
) -> impl Iterator<Item = Result<(PathBuf, PathBuf, bool)>> {
    let exclude: Vec<PathBuf> = exclude
        .iter()
        .map(|x| std::fs::canonicalize(x).unwrap_or_else(|_| x.to_path_buf()))
        .collect();
    let root = from.to_path_buf();
    ignore::WalkBuilder::new(from)
        .standard_filters(false)
        .hidden(false)
        .git_ignore(use_gitignore)
        .git_exclude(false)
        .git_global(false)
        .require_git(false)
        .add_custom_ignore_filename(".condapackageignore")
        .follow_links(inputs)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(move |e| {
            let kiln_dir = inputs
                && e.depth() > 0
                && e.file_type().is_some_and(|t| t.is_dir())
                && (e.path().join("CACHEDIR.TAG").is_file() || e.path().join("bld/.locks").is_dir());
            !kiln_dir && std::fs::canonicalize(e.path()).map_or(true, |p| !exclude.iter().any(|x| p.starts_with(x)))
        })
        .build()
        .filter_map(move |entry| {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => return Some(Err(miette!("reading source {}: {e}", root.display()))),
            };
            let rel = entry.path().strip_prefix(&root).ok()?.to_path_buf();
            if rel.as_os_str().is_empty() || rel.starts_with(".git") {
                return None;
            }
            let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
            Some(Ok((entry.path().to_path_buf(), rel, is_dir)))
        })
}

/// `base/rel` if `rel` is relative and stays inside `base`.
pub fn safe_join(base: &Path, rel: &Path) -> Option<PathBuf> {
    let mut out = base.to_path_buf();
    for c in rel.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}
