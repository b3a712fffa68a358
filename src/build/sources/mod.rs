//! Placing a recipe's sources into the work directory, in order, each in
//! its `target_directory`, then applying its `patches`.
//!
//! A `path` or `url` archive is extracted (see [`archive`]; `file_name`
//! keeps it as a file), another file is copied (checksums verified), a
//! directory is copied honouring `.gitignore` and `.condapackageignore`,
//! keeping symlinks, file modes and mtimes. `url` sources come from the
//! shared source cache ([`url`]), `git` sources from cached clones
//! ([`git`]); patches are applied by [`patch`]. Each placed source is
//! reported in its finalized form (the resolved checksum or commit) for
//! the rendered recipe.

mod archive;
pub mod diff;
pub mod git;
pub mod patch;
pub mod url;

use std::path::{Path, PathBuf};

use miette::{miette, IntoDiagnostic, Result};
use serde_json::Value;

use crate::package::glob::Selector;
use crate::recipe::model::{FileFilter, GitSource, PathSource, Source, UrlSource};
use crate::recipe::Recipe;

/// Place `sources` into `work_dir` (the output directory is never copied;
/// `insecure` hosts are those of `--allow-insecure-host`); returns each
/// source in its finalized form.
pub fn fetch(
    recipe: &Recipe,
    sources: &[Source],
    work_dir: &Path,
    output_dir: &Path,
    insecure: &[String],
) -> Result<Vec<Value>> {
    let mut finalized = Vec::new();
    for source in sources {
        let dest = destination(recipe, source, work_dir)?;
        // Not through a symlink an earlier source placed.
        let rel = dest.strip_prefix(work_dir).into_diagnostic()?;
        crate::disk::create_dirs_inside(work_dir, rel).map_err(|e| {
            miette!(
                "{}: `target_directory` {}: {e}",
                recipe.file.location(&source.span()),
                rel.display()
            )
        })?;
        let mut done = serde_json::to_value(source).into_diagnostic()?;
        match source {
            Source::Path(p) => fetch_path(recipe, p, &dest, output_dir)?,
            Source::Url(u) => {
                let sha256 = fetch_url(recipe, u, &dest, insecure)?;
                done["sha256"] = Value::String(sha256);
            }
            Source::Git(g) => {
                let commit = fetch_git(recipe, g, &dest, insecure)?;
                if let Value::Object(m) = &mut done {
                    m.remove("tag");
                    m.remove("branch");
                    m.insert("rev".into(), Value::String(commit));
                }
            }
        }
        for p in source.patches() {
            let file = patch_file(recipe, source, p, work_dir)?;
            patch::apply(&file, &p.display().to_string(), &dest)
                .map_err(|e| miette!("{}: {e:?}", recipe.file.location(&source.span())))?;
        }
        // Credentials in URLs stay out of packages and cache entries.
        crate::redact::mask_json(&mut done);
        finalized.push(done);
    }
    Ok(finalized)
}

/// Where a patch file is: in the recipe directory, else in the work
/// directory (a patch shipped by an earlier source).
pub fn patch_file(recipe: &Recipe, source: &Source, patch: &Path, work_dir: &Path) -> Result<PathBuf> {
    let in_recipe = recipe.dir.join(patch);
    if in_recipe.is_file() {
        return Ok(in_recipe);
    }
    match crate::disk::safe_join(work_dir, patch).filter(|p| p.is_file()) {
        Some(p) => Ok(p),
        None => Err(miette!(
            help = "patch paths are relative to the recipe directory (or to the work directory, for a patch an earlier source brings)",
            "{}: patch {} not found",
            recipe.file.location(&source.span()),
            patch.display()
        )),
    }
}

/// Check a source without placing it: it exists, its checksum matches, and
/// it lands inside the work directory.
pub fn check(recipe: &Recipe, source: &Source) -> Result<()> {
    let scratch = Path::new("/work");
    destination(recipe, source, scratch)?;
    selector(recipe, source.filter())?;
    match source {
        Source::Path(p) => {
            let from = recipe.dir.join(&p.path);
            if readable(recipe, p, &from)?.is_file() {
                verify(recipe, p, &from)?;
                file_target(recipe, p.file_name.as_deref(), &from, scratch, &p.span)?;
            }
        }
        Source::Url(u) => {
            let name = url::file_name(u);
            file_target(recipe, Some(&name), Path::new(""), scratch, &u.span)?;
        }
        Source::Git(_) => {}
    }
    Ok(())
}

fn destination(recipe: &Recipe, source: &Source, work_dir: &Path) -> Result<PathBuf> {
    match source.target_directory() {
        Some(t) => crate::disk::safe_join(work_dir, t).ok_or_else(|| {
            miette!(
                "{}: `target_directory` {} leaves the work directory",
                recipe.file.location(&source.span()),
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
    type Digest = fn(&Path) -> Result<String>;
    let checks: [(&str, &Option<String>, Digest); 2] = [
        ("sha256", &src.sha256, crate::disk::file_sha256),
        ("md5", &src.md5, file_md5),
    ];
    for (what, expected, digest) in checks {
        if let Some(expected) = expected {
            let actual = digest(from)?;
            if !actual.eq_ignore_ascii_case(expected) {
                return Err(miette!(
                    "{}: checksum mismatch for {}\n  expected {what}: {expected}\n  actual {what}:   {actual}",
                    recipe.file.location(&src.span),
                    from.display()
                ));
            }
        }
    }
    Ok(())
}

fn file_md5(path: &Path) -> Result<String> {
    let digest = rattler_digest::compute_file_digest::<rattler_digest::Md5>(path).into_diagnostic()?;
    Ok(hex::encode(digest))
}

/// Where a file source lands: `file_name`, else the file's own name.
fn file_target(
    recipe: &Recipe,
    file_name: Option<&str>,
    from: &Path,
    dest_dir: &Path,
    span: &marked_yaml::Span,
) -> Result<PathBuf> {
    let name = file_name.map(str::to_string).unwrap_or_else(|| {
        from.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    crate::disk::safe_join(dest_dir, Path::new(&name))
        .filter(|p| p != dest_dir)
        .ok_or_else(|| {
            miette!(
                "{}: `file_name` {name} leaves the work directory",
                recipe.file.location(span)
            )
        })
}

/// Place the file `from` (a local source or a cached download named
/// `name`): an archive is extracted, unless `file_name` asks for the file
/// itself; anything else is copied.
fn place_file(
    recipe: &Recipe,
    source: &Source,
    from: &Path,
    name: &str,
    file_name: Option<&str>,
    dest: &Path,
) -> Result<()> {
    let span = source.span();
    if let (None, Some(kind)) = (file_name, archive::kind_of(name)) {
        let mut selector = selector(recipe, source.filter())?;
        let mut keep = |rel: &Path| selector.select(&rel.to_string_lossy());
        let extracted = archive::extract(from, kind, dest, &mut keep);
        warn_unmatched(recipe, &selector);
        return extracted.map_err(|e| {
            miette!(
                help = "an archive is extracted into the work directory; set `file_name` to keep it as a file",
                "{}: source {name}: {e}",
                recipe.file.location(&span),
            )
        });
    }
    let target = file_target(recipe, Some(file_name.unwrap_or(name)), from, dest, &span)?;
    crate::disk::copy_file(from, &target)?;
    Ok(())
}

fn fetch_path(recipe: &Recipe, src: &PathSource, dest: &Path, exclude: &Path) -> Result<()> {
    let from = recipe.dir.join(&src.path);
    let meta = readable(recipe, src, &from)?;
    if meta.is_file() {
        verify(recipe, src, &from)?;
        let name = from
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let source = Source::Path(src.clone());
        return place_file(recipe, &source, &from, &name, src.file_name.as_deref(), dest);
    }
    let mut selector = selector(recipe, &src.filter)?;
    for entry in walk_dir_source(&from, src.use_gitignore, &[exclude]) {
        let (path, rel, is_dir) = entry?;
        let target = dest.join(&rel);
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

/// Download (or take from the cache) and place a `url` source; returns its SHA-256.
fn fetch_url(recipe: &Recipe, src: &UrlSource, dest: &Path, insecure: &[String]) -> Result<String> {
    let where_ = recipe.file.location(&src.span);
    let got = url::obtain(src, &where_, insecure)?;
    let name = url::file_name(src);
    let source = Source::Url(src.clone());
    place_file(recipe, &source, &got.path, &name, src.file_name.as_deref(), dest)?;
    Ok(got.sha256)
}

/// Check out a `git` source into `dest` (through a scratch directory, so
/// earlier sources there stay); returns the commit.
fn fetch_git(recipe: &Recipe, src: &GitSource, dest: &Path, insecure: &[String]) -> Result<String> {
    let where_ = recipe.file.location(&src.span);
    let scratch = tempfile::Builder::new()
        .prefix(".kiln-git-")
        .tempdir_in(dest)
        .into_diagnostic()?;
    let tree = scratch.path().join("checkout");
    let commit = git::checkout(src, &recipe.dir, &tree, &where_, insecure)?;
    if !src.filter.is_empty() {
        let mut selector = selector(recipe, &src.filter)?;
        for e in walkdir::WalkDir::new(&tree)
            .into_iter()
            .filter_entry(|e| e.file_name() != ".git")
        {
            let e = e.into_diagnostic()?;
            let rel = e.path().strip_prefix(&tree).into_diagnostic()?;
            if !e.file_type().is_dir() && !selector.select(&rel.to_string_lossy()) {
                fs_err::remove_file(e.path()).into_diagnostic()?;
            }
        }
        warn_unmatched(recipe, &selector);
    }
    archive::move_children(&tree, dest)?;
    Ok(commit)
}

/// A source's `filter` (everything when it has none); an invalid glob is
/// an error at its line.
pub fn selector<'a>(recipe: &Recipe, filter: &'a FileFilter) -> Result<Selector<'a>> {
    Selector::new(filter).map_err(|(msg, g)| miette!("{}: {msg}", recipe.file.location(&g.span)))
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
