//! `kiln create-patch`: place a work directory's sources again, as the
//! build placed them (with the patches the recipe already lists), compare
//! the work directory with them, and write the difference as a patch next
//! to the recipe, ready to list under the source's `patches`.

use std::path::Path;

use miette::{miette, IntoDiagnostic, Result};
use rattler_conda_types::Subdir;

use crate::build::source_info::{self, Placed};
use crate::build::sources::{self, diff};
use crate::cli::CreatePatchArgs;
use crate::package::glob::GlobList;
use crate::recipe::model::Source;
use crate::recipe::{LoadOptions, RecipeSource};
use crate::syntax::jinja::Platforms;

/// Run `kiln create-patch`.
pub fn run(args: CreatePatchArgs) -> Result<()> {
    if args.name.is_empty() || args.name.contains(['/', '\\']) || args.name.starts_with('.') {
        miette::bail!(
            help = "e.g. --name fix-build (written as fix-build.patch next to the recipe)",
            "--name `{}`: a patch name is a plain file name",
            args.name
        );
    }
    let work =
        std::fs::canonicalize(&args.directory).map_err(|e| miette!("--directory {}: {e}", args.directory.display()))?;
    let info = source_info::read(&work)?;
    if info.recipe == Path::new("<stdin>") {
        miette::bail!(
            help = "build from the recipe file, then create the patch",
            "{} was set up from a recipe read from standard input; create-patch needs the recipe file",
            work.display()
        );
    }
    if info.restored {
        miette::bail!(
            help = "run create-patch on the work directory of the staging output's own build (a failed staging build leaves it), or patch the output's own sources",
            "{} holds a restored staging entry (what its build script made), not only sources: a patch cannot be told apart from the build's changes",
            work.display()
        );
    }
    let platform = |s: &str| s.parse::<Subdir>().map_err(|e| miette!("{}: {e}", source_info::FILE));
    let options = LoadOptions {
        platforms: Platforms {
            target: platform(&info.target_platform)?,
            build: platform(&info.build_platform)?,
            host: platform(&info.host_platform)?,
        },
        experimental: info.experimental,
    };
    let recipe = RecipeSource::read(&info.recipe)?.render(options, &info.variant)?;
    let file_name = format!("{}.patch", args.name);
    let patch_file = recipe.dir.join(&file_name);
    if patch_file.exists() && !args.overwrite && !args.dry_run {
        miette::bail!(
            help =
                "pass --overwrite to replace it (the new patch then holds its changes too), or choose another --name",
            "{} exists",
            patch_file.display()
        );
    }

    // The sources as the build placed them (the same commits), minus the patch being replaced.
    let sources = match &info.placed {
        Placed::Staging(name) => recipe.staging(name).map(|s| s.source.clone()),
        Placed::Output(name) => recipe
            .outputs
            .iter()
            .find(|o| o.package.name.as_normalized() == name)
            .map(|o| o.source.clone()),
    };
    let mut placed_sources = sources.ok_or_else(|| {
        miette!(
            help = "the recipe changed since the work directory was set up; set it up again with `kiln debug`",
            "{}: {:?} is no longer in the recipe",
            info.recipe.display(),
            info.placed
        )
    })?;
    let changed = || {
        miette!(
            help = "set the work directory up again with `kiln debug`",
            "{}: the sources changed since {} was set up",
            info.recipe.display(),
            work.display()
        )
    };
    if placed_sources.len() != info.finalized.len() {
        return Err(changed());
    }
    for (source, done) in placed_sources.iter_mut().zip(&info.finalized) {
        if let Source::Git(g) = source {
            let rev = done.get("rev").and_then(|r| r.as_str());
            let url = done.get("git").and_then(|u| u.as_str());
            match (rev, url) {
                (Some(rev), Some(url)) if crate::redact::mask(&g.git) == url => {
                    g.reference = crate::recipe::model::GitRef::Rev(rev.to_string());
                }
                _ => return Err(changed()),
            }
        }
    }
    let listed = placed_sources
        .iter()
        .any(|s| s.patches().iter().any(|p| p == Path::new(&file_name)));
    for s in &mut placed_sources {
        s.remove_patch(Path::new(&file_name));
    }
    let build_dir = work.parent().map(Path::to_path_buf).unwrap_or_else(|| work.clone());
    let reference = tempfile::Builder::new()
        .prefix(".kiln-create-patch-")
        .tempdir_in(&build_dir)
        .into_diagnostic()?;
    sources::fetch(
        &recipe,
        &placed_sources,
        reference.path(),
        &info.output_dir,
        &info.allow_insecure_host,
    )?;

    let globs = |flag: &str, patterns: &[String]| GlobList::from_patterns(patterns).map_err(|e| miette!("{flag}: {e}"));
    let filters = diff::Filters {
        include: globs("--include", &args.include)?,
        exclude: globs("--exclude", &args.exclude)?,
        add: globs("--add", &args.add)?,
    };
    let changes = diff::changes(reference.path(), &work, &filters)?;
    for b in &changes.binary {
        crate::ui::print_line(&format!("left out {b}: a binary file or symlink cannot be patched"));
    }
    if !changes.new_not_added.is_empty() {
        let shown: Vec<&str> = changes.new_not_added.iter().take(10).map(String::as_str).collect();
        crate::ui::print_line(&format!(
            "{} new file(s) left out (add them with --add GLOB): {}{}",
            changes.new_not_added.len(),
            shown.join(", "),
            if changes.new_not_added.len() > shown.len() {
                ", ..."
            } else {
                ""
            }
        ));
    }
    if changes.files.is_empty() {
        crate::ui::print_line(&format!("no changes in {} against its sources", work.display()));
        return Ok(());
    }
    if args.dry_run {
        print!("{}", changes.patch);
        return Ok(());
    }
    crate::disk::write_atomic(&patch_file, changes.patch.as_bytes())?;
    crate::ui::print_line(&format!(
        "wrote {} ({} file(s): {}){}",
        patch_file.display(),
        changes.files.len(),
        changes.files.join(", "),
        if listed {
            String::new()
        } else {
            format!(
                "\nList it under the source's `patches` in {} (its paths are relative to the work directory):\n\n    patches:\n      - {file_name}\n",
                info.recipe.display()
            )
        }
    ));
    Ok(())
}
