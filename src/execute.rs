//! Executing a build plan: for each output, fresh directories, the staging
//! output it inherits (restored from the cache, built first if needed),
//! sources, the build script, file selection and packaging; then the
//! channel index and the file accounting across outputs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use miette::{miette, IntoDiagnostic, Result};
use rattler_conda_types::Subdir;

use crate::build::dirs::BuildDirs;
use crate::build::env::BuildIdentity;
pub use crate::build::BuildOptions;
use crate::build::{run_script, sources};
use crate::dependencies::{finalize_run, resolve_output, Inherited};
use crate::environment::resolve;
use crate::environment::LazyEnvironments;
use crate::package::{self, metadata::InfoInputs, select};
use crate::plan::{Plan, PlannedOutput};

use crate::recipe::Recipe;
use crate::staging::{restore_into, Stager};
use crate::variants::variant_text;
use crate::{rendered, ui};

/// What one output's build produced.
struct Built {
    path: PathBuf,
    name: String,
    files: Vec<String>,
    /// Keys of the staging cache entries restored into it (innermost first).
    staging_keys: Vec<String>,
}

/// Build every planned output in order and index the channel.
pub fn build_all(plan_all: &Plan, opts: &BuildOptions) -> Result<Vec<PathBuf>> {
    let recipe = &*plan_all.recipe;
    let plan = &plan_all.outputs;
    for s in &recipe.staging {
        if !plan
            .iter()
            .any(|p| inherits_transitively(recipe, p.output.inherit.staging_name(), &s.name))
        {
            tracing::warn!(
                "{}: staging output `{}` is not inherited by any package output; it is not built",
                recipe.file.location(&s.span),
                s.name
            );
        }
    }
    let mut subdirs: Vec<Subdir> = Vec::new();
    for p in plan {
        let subdir: Subdir = p.subdir.parse().map_err(|e| miette!("{e}"))?;
        if !subdirs.contains(&subdir) {
            subdirs.push(subdir);
        }
    }
    for s in [opts.platforms.build, opts.platforms.host] {
        if !subdirs.contains(&s) {
            subdirs.push(s);
        }
    }
    let envs = LazyEnvironments::new(&opts.channels, &opts.output_dir, subdirs.clone(), false);
    crate::preflight::solve(plan_all, opts, &envs)?;
    // Lock files of build directories that finished or were killed.
    crate::lock::remove_stale(&opts.output_dir.join("bld").join(".locks"));
    let mut stager = Stager::new(opts, &envs);
    let mut built: Vec<Built> = Vec::new();
    // Tests wait until every variant of each sibling output they need is built.
    let mut planned: BTreeMap<String, usize> = BTreeMap::new();
    for p in plan {
        *planned
            .entry(p.output.package.name.as_normalized().to_string())
            .or_default() += 1;
    }
    let mut waiting: Vec<Waiting> = Vec::new();
    let result = (|| -> Result<()> {
        for p in plan {
            let b = build_one(p, opts, &mut stager, &envs)?;
            let subdir: Subdir = p.subdir.parse().map_err(|e| miette!("{e}"))?;
            envs.package_added(&[subdir])?;
            waiting.push(Waiting {
                path: b.path.clone(),
                needs: siblings_needed(p, plan),
                not_here: not_testable_here(p, plan, opts),
            });
            built.push(b);
            let mut count: BTreeMap<&str, usize> = BTreeMap::new();
            for b in &built {
                *count.entry(b.name.as_str()).or_default() += 1;
            }
            let done = |n: &String| count.get(n.as_str()) == planned.get(n);
            while let Some(i) = waiting.iter().position(|w| w.needs.iter().all(done)) {
                let w = waiting.remove(i);
                crate::testing::after_build(&w.path, opts, &envs, w.not_here.as_deref())?;
            }
        }
        while !waiting.is_empty() {
            let w = waiting.remove(0);
            crate::testing::after_build(&w.path, opts, &envs, w.not_here.as_deref())?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        // Packages whose tests never ran must not stay in the channel.
        withdraw_untested(&waiting, opts);
        return Err(e);
    }
    ui::step("channel", "indexing");
    crate::channel::index(&opts.output_dir, &subdirs)?;
    account_files(&built, &stager, opts)?;
    Ok(built.into_iter().map(|b| b.path).collect())
}

/// A built package whose tests have not run yet.
struct Waiting {
    path: PathBuf,
    /// Sibling outputs (by name) that must all be built first.
    needs: BTreeSet<String>,
    /// Why this machine cannot test it, if so.
    not_here: Option<String>,
}

/// The package name a spec names, if it names one exactly.
fn spec_name(spec: &str) -> Option<String> {
    rattler_conda_types::MatchSpec::from_str(spec, rattler_conda_types::ParseStrictness::Lenient)
        .ok()
        .and_then(|m| m.name.as_exact().map(|n| n.as_normalized().to_string()))
}

/// Names of other outputs of this recipe that `p`'s run requirements,
/// test requirements or downstream tests name (its tests need them built).
fn siblings_needed(p: &PlannedOutput, plan: &[PlannedOutput]) -> BTreeSet<String> {
    use crate::recipe::package_tests::PackageTest;
    let mut specs: Vec<String> = p.output.requirements.run.iter().map(|d| d.spec.clone()).collect();
    for t in &p.output.tests {
        match t {
            PackageTest::Script(s) => specs.extend(s.requirements.run.iter().cloned()),
            PackageTest::Downstream(d) => specs.push(d.clone()),
            _ => {}
        }
    }
    let own = p.output.package.name.as_normalized();
    let names: BTreeSet<String> = specs.iter().filter_map(|s| spec_name(s)).collect();
    plan.iter()
        .map(|o| o.output.package.name.as_normalized().to_string())
        .filter(|n| n != own && names.contains(n))
        .collect()
}

/// A noarch output tested on this (build) machine while cross-compiling
/// would get its arch-specific siblings for the wrong platform.
fn not_testable_here(p: &PlannedOutput, plan: &[PlannedOutput], opts: &BuildOptions) -> Option<String> {
    if p.subdir != "noarch" || opts.platforms.host == opts.platforms.build {
        return None;
    }
    let needs = siblings_needed(p, plan);
    let arch_sibling = plan
        .iter()
        .find(|o| o.subdir != "noarch" && needs.contains(o.output.package.name.as_normalized()))?;
    Some(format!(
        "it needs {}, built for {}, which this {} machine cannot run",
        arch_sibling.output.package.name.as_normalized(),
        arch_sibling.subdir,
        opts.platforms.build
    ))
}

/// Move packages whose tests never ran (the build stopped first) out of
/// the channel, into `<output>/broken/`, and re-index.
fn withdraw_untested(waiting: &[Waiting], opts: &BuildOptions) {
    if waiting.is_empty() || opts.test == crate::testing::Strategy::Skip {
        return;
    }
    let broken = opts.output_dir.join("broken");
    let _ = fs_err::create_dir_all(&broken);
    let mut subdirs = Vec::new();
    for w in waiting {
        let Some(name) = w.path.file_name() else { continue };
        if fs_err::rename(&w.path, broken.join(name)).is_ok() {
            tracing::warn!(
                "{}: not tested because the build stopped; moved to {}",
                name.to_string_lossy(),
                broken.display()
            );
        }
        if let Some(s) = w.path.parent().and_then(|p| p.file_name()).and_then(|s| s.to_str()) {
            if let Ok(sub) = s.parse::<Subdir>() {
                subdirs.push(sub);
            }
        }
    }
    let _ = crate::channel::index(&opts.output_dir, &subdirs);
}

fn inherits_transitively(recipe: &Recipe, from: Option<&str>, target: &str) -> bool {
    from.is_some_and(|name| recipe.staging_chain(name).iter().any(|s| s.name == target))
}

fn build_one(p: &PlannedOutput, opts: &BuildOptions, stager: &mut Stager, envs: &LazyEnvironments) -> Result<Built> {
    let recipe = &*p.recipe;
    let id = p.identifier();
    let output = &p.output;
    let staging = match output.inherit.staging_name() {
        Some(name) => Some(stager.ensure(recipe, name)?),
        None => None,
    };
    let staging_keys = staging.as_ref().map(|e| stager.chain(e)).unwrap_or_default();
    let resolved = resolve_output(p, opts, envs)?;
    ui::step(&id, "preparing directories");
    // Staging builds and their inheritors share one set of directories, so
    // restored paths stay valid without relocation.
    let dir_name = match &staging {
        Some(_) => recipe.shared_build_name(),
        None => output.package.name.as_normalized().to_string(),
    };
    let dirs = BuildDirs::new(&opts.output_dir, &dir_name);
    let _dir_lock = dirs.lock().into_diagnostic()?;
    dirs.create().into_diagnostic()?;

    // Restored staging files count as new: the snapshot is taken before the
    // restore. Installed packages' files do not (see `select::new_files`).
    let before = select::snapshot(&dirs.host_prefix)?;
    if let Some(entry) = &staging {
        restore_into(entry, &dirs, &id)?;
    }
    resolve::install(envs, &resolved, dirs.prefixes(), opts.platforms, &id)?;
    ui::step(&id, "placing sources");
    let mut finalized_sources = staging.as_ref().map(|e| e.meta.sources.clone()).unwrap_or_default();
    finalized_sources.extend(sources::fetch(recipe, &output.source, &dirs.work_dir, opts)?);

    if let Some(s) = &output.build.script {
        let variant: BTreeMap<String, String> = p.variant.iter().map(|(k, v)| (k.clone(), variant_text(v))).collect();
        let identity = BuildIdentity {
            name: output.package.name.as_normalized().to_string(),
            version: output.package.version.as_str().to_string(),
            build_number: Some(output.build.number),
            build_string: Some(p.build_string.clone()),
            hash: Some(p.hash.to_string()),
        };
        run_script(recipe, opts, &dirs, s, &identity, &variant, &id)?;
    }

    ui::step(&id, "collecting files");
    let after = select::snapshot(&dirs.host_prefix)?;
    let new_files = select::new_files(&dirs.host_prefix, &before, &after)?;
    let mut files = package::select_files(recipe, output, &new_files)?;
    for extra in package::always_included(recipe, output, &after)? {
        if !files.contains(&extra) {
            files.push(extra);
        }
    }
    files.sort();
    if files.is_empty() {
        tracing::warn!("{id}: the package contains no files");
    }
    // Paths that differ only in case collide on macOS and Windows file systems.
    let mut seen: BTreeMap<String, &PathBuf> = BTreeMap::new();
    for f in &files {
        if let Some(other) = seen.insert(f.to_string_lossy().to_lowercase(), f) {
            tracing::warn!(
                "{id}: {} and {} differ only in case; they collide when installed on a case-insensitive file system",
                other.display(),
                f.display()
            );
        }
    }
    // `post_process` replacements, then run paths inside the prefix become `$ORIGIN`-relative.
    let processed = package::post_process::apply(recipe, &dirs.host_prefix, &files, &output.build.post_process)?;
    if processed > 0 {
        tracing::info!("{id}: post_process changed {processed} file(s)");
    }
    let relinked = package::relink::relink(
        &dirs.host_prefix,
        &dirs.build_prefix,
        &files,
        &output.build.dynamic_linking,
    )
    .map_err(|e| e.wrap_err(id.clone()))?;
    for r in &relinked {
        tracing::debug!("{id}: {}: run path {} → {}", r.file.display(), r.old, r.new);
    }
    if !relinked.is_empty() {
        tracing::info!("{id}: rewrote the run paths of {} file(s)", relinked.len());
    }
    // `package_contents` tests see the files the recipe selected.
    let listed: Vec<String> = files.iter().map(|f| f.to_string_lossy().into_owned()).collect();
    let noarch_python = output.build.noarch.is_python();
    for test in &output.tests {
        if let crate::recipe::package_tests::PackageTest::PackageContents(c) = test {
            if let Err(problems) = crate::testing::contents::check(c, &listed, noarch_python, opts.platforms.target) {
                let at = c.span.map(|s| recipe.file.location(&s)).unwrap_or_else(|| id.clone());
                return Err(miette!(
                    help = "fix the recipe's `files` or the test",
                    "{at}: {id}: package_contents test failed:\n  {}",
                    problems.join("\n  ")
                ));
            }
        }
    }
    // Stored tests, and the files they ship inside the package.
    let name = output.package.name.as_normalized().to_string();
    let (mut tests, shipped) = crate::testing::stored::stored_form(recipe, &output.tests, &name)?;
    tests.iter_mut().for_each(crate::redact::mask_json);
    let test_files = crate::testing::stored::ship_files(
        recipe,
        &name,
        &shipped,
        &dirs.work_dir,
        &dirs.host_prefix,
        &opts.output_dir,
    )?;
    files.extend(test_files.iter().cloned());
    files.sort();

    ui::step(&id, "packaging");
    let started = std::time::Instant::now();
    let inherited = staging.as_ref().map(|e| Inherited {
        run_exports: e.meta.run_exports.clone(),
        host_packages: e.meta.key_inputs.host_packages.clone(),
    });
    let (depends, constrains, exports) = finalize_run(p, &resolved, inherited.as_ref())?;
    let finalized = rendered::finalized_dependencies(output, &resolved, &depends, &constrains, &exports);
    let rendered = rendered::rendered_output(p, opts, Some(finalized), Some(finalized_sources));
    let variant_json = serde_json::to_value(&p.variant).into_diagnostic()?;
    let hash_input = crate::hash::hash_input(&p.variant);
    let info = InfoInputs {
        recipe,
        output,
        build_string: &p.build_string,
        subdir: &p.subdir,
        target: opts.platforms.target,
        hash_input: &hash_input,
        variant: &variant_json,
        timestamp: opts.timestamp,
        rendered: &rendered,
        depends: &depends,
        constrains: &constrains,
        work_dir: &dirs.work_dir,
        output_dir: &opts.output_dir,
        tests: &tests,
    };
    let dest = opts.output_dir.join(&p.subdir);
    let path = package::create(
        &info,
        &dirs.host_prefix,
        &files,
        &dirs.build_dir.join("pkg"),
        &dest,
        &package::PackOptions {
            format: opts.format,
            error_prefix_in_binary: opts.error_prefix_in_binary,
        },
    )?;
    for f in &test_files {
        // Shipped for this package only; siblings share the prefix.
        let _ = std::fs::remove_file(dirs.host_prefix.join(f));
    }
    let bytes: u64 = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    ui::print_line(&format!(
        "✔ {} ({} file{}, {:.1} MB, packaged in {:.2} s)",
        path.display(),
        files.len(),
        if files.len() == 1 { "" } else { "s" },
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    ));
    if !opts.keep_build {
        fs_err::remove_dir_all(&dirs.build_dir).into_diagnostic()?;
    }
    Ok(Built {
        path,
        name: output.package.name.as_normalized().to_string(),
        files: files.iter().map(|f| f.to_string_lossy().into_owned()).collect(),
        staging_keys,
    })
}

/// Warn (or fail) about staging files no inheriting output packaged, and
/// about files that more than one output packaged.
fn account_files(built: &[Built], stager: &Stager, opts: &BuildOptions) -> Result<()> {
    let mut problems = Vec::new();
    let mut report = |fatal: bool, msg: String| {
        if fatal {
            problems.push(msg);
        } else {
            tracing::warn!("{msg}");
        }
    };
    let mut entries: Vec<_> = stager.used().collect();
    entries.sort_by(|a, b| (&a.meta.name, &a.meta.key).cmp(&(&b.meta.name, &b.meta.key)));
    for entry in entries {
        let name = crate::staging::describe(&entry.meta.name, &entry.meta.key_inputs.variant);
        let packaged: BTreeSet<&str> = built
            .iter()
            .filter(|b| b.staging_keys.contains(&entry.meta.key))
            .flat_map(|b| b.files.iter().map(String::as_str))
            .collect();
        let unused: Vec<&str> = entry
            .meta
            .files
            .iter()
            .map(|f| f.path.as_str())
            .filter(|f| !packaged.contains(f))
            .collect();
        if !unused.is_empty() {
            let msg = format!(
                "{} file(s) of staging output `{name}` are in no package: {}",
                unused.len(),
                list_preview(&unused)
            );
            report(opts.error_unused_staging_files, msg);
        }
    }
    // Variants of one output carry the same files by design; only distinct
    // outputs overlap.
    let mut owners: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for b in built {
        for f in &b.files {
            owners.entry(f.as_str()).or_default().insert(b.name.as_str());
        }
    }
    let overlapping: Vec<String> = owners
        .iter()
        .filter(|(_, o)| o.len() > 1)
        .map(|(f, o)| format!("{f} ({})", o.iter().copied().collect::<Vec<_>>().join(", ")))
        .collect();
    if !overlapping.is_empty() {
        let refs: Vec<&str> = overlapping.iter().map(String::as_str).collect();
        let msg = format!(
            "{} file(s) are in more than one package: {}",
            overlapping.len(),
            list_preview(&refs)
        );
        report(opts.error_overlapping_files, msg);
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(miette!(
        help = "select files with `build.files` in each output so every file lands in exactly one package",
        "{}",
        problems.join("\n")
    ))
}

fn list_preview(items: &[&str]) -> String {
    const MAX: usize = 20;
    let mut s = items.iter().take(MAX).copied().collect::<Vec<_>>().join(", ");
    if items.len() > MAX {
        s.push_str(&format!(", … and {} more", items.len() - MAX));
    }
    s
}
