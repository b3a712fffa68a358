//! Executing a build plan: for each output (unless `--skip-unchanged` keeps
//! its package), fresh directories, the staging output it inherits,
//! sources, the build script, file selection and the package directory;
//! its archive is then written in the background while the next output
//! builds ([`pipeline`]), and lands in the channel, where its tests run.
//! At the end, the channel index and the file accounting across outputs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use miette::{miette, Result};
use rattler_conda_types::Subdir;

pub use crate::build::BuildOptions;
use crate::environment::LazyEnvironments;
use crate::plan::{Plan, PlannedOutput};
use crate::recipe::Recipe;
use crate::staging::Stager;
use crate::ui;
use output::build_one;

mod existing;
mod output;
mod pipeline;
mod unchanged;

/// What one output's build produced.
pub(crate) struct Built {
    /// The package file.
    path: PathBuf,
    /// Its name.
    name: String,
    /// Its files.
    files: Vec<String>,
    /// Keys of the staging cache entries restored into it (innermost first).
    staging_keys: Vec<String>,
    /// Where the package came from.
    origin: Origin,
    /// Seconds from the start of its build until it landed.
    seconds: f64,
}

/// Where a run's package came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Built by this run.
    Built,
    /// Kept by `--skip-unchanged` (its record says which files it took).
    Kept,
    /// Found by `--skip-existing` (which files it took is unknown).
    Existing,
}

/// One output of a finished run, for the summary.
pub struct Packaged {
    /// The package file (or its URL, for one found in a channel).
    pub path: PathBuf,
    /// Built now (`false`: an existing package was used).
    pub built: bool,
    /// Seconds from the start of its build until it landed.
    pub seconds: f64,
}

/// The subdirs the output channel is indexed for: the outputs' and the
/// build and host platforms.
fn subdirs_of(plan: &[PlannedOutput], opts: &BuildOptions) -> Result<Vec<Subdir>> {
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
    Ok(subdirs)
}

/// What `kiln debug` set up.
pub struct DebugSetUp {
    /// The output, `name-version-build`.
    pub id: String,
    /// Its build directories.
    pub dirs: crate::build::dirs::BuildDirs,
    /// Its `conda_build.sh`.
    pub script: PathBuf,
    /// A staging entry was restored into its work directory.
    pub restored: bool,
}

/// Build the other outputs of `plan_all` (what the last one needs), then
/// set up the last one's build directory, environments, sources and script
/// without running the script (`kiln debug`).
pub fn debug(plan_all: &Plan, opts: &BuildOptions) -> Result<DebugSetUp> {
    let (target, needed) = plan_all
        .outputs
        .split_last()
        .ok_or_else(|| miette!("there is no output to set up"))?;
    let recipe = &*target.recipe;
    let id = target.identifier();
    let Some(script) = &target.output.build.script else {
        miette::bail!(
            help = "debug the staging output it inherits, or an output with a script",
            "{id} has no build script to debug"
        );
    };
    let envs = environments(plan_all, opts)?;
    if !needed.is_empty() {
        let others = Plan {
            recipe: plan_all.recipe.clone(),
            outputs: needed.to_vec(),
        };
        build_all_in(&others, opts, &envs)?;
    }
    let mut stager = Stager::new(opts, &envs);
    let resolved = crate::dependencies::resolve_output(target, opts, &envs)?;
    let set = output::set_up(target, opts, &mut stager, &envs, &resolved)?;
    let (identity, variant) = output::identity(target);
    let script = crate::build::write_script(recipe, opts, &set.dirs, script, &identity, &variant)?;
    ui::finish();
    Ok(DebugSetUp {
        id,
        restored: set.staging.is_some(),
        dirs: set.dirs,
        script,
    })
}

/// Build every planned output in order and index the channel.
pub fn build_all(plan_all: &Plan, opts: &BuildOptions) -> Result<Vec<Packaged>> {
    build_all_in(plan_all, opts, &environments(plan_all, opts)?)
}

/// The environments [`build_all`] uses for `plan_all`: `opts`' channels
/// (after the output directory) and solver settings, set up when first needed.
pub fn environments(plan_all: &Plan, opts: &BuildOptions) -> Result<LazyEnvironments> {
    Ok(LazyEnvironments::new(
        &opts.channels,
        &opts.output_dir,
        subdirs_of(&plan_all.outputs, opts)?,
        false,
    )
    .with_solving(opts.solving.clone()))
}

/// [`build_all`] with `envs`, which several plans of one run may share when
/// their channels and solver settings are the same (the channel clients,
/// repodata and package cache are then set up once).
pub fn build_all_in(plan_all: &Plan, opts: &BuildOptions, envs: &LazyEnvironments) -> Result<Vec<Packaged>> {
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
    let subdirs = subdirs_of(plan, opts)?;
    // Environments shared with an earlier recipe read the channel again.
    envs.prepare_for(&subdirs)?;
    crate::preflight::solve(plan_all, opts, envs)?;
    // Package directories and lock files of builds that finished or were killed.
    output::sweep_package_dirs(&opts.output_dir);
    crate::lock::remove_stale(&opts.output_dir.join("bld").join(".locks"));
    let mut stager = Stager::new(opts, envs);
    let mut built: Vec<Built> = Vec::new();
    // Tests wait until every variant of each sibling output they need is built.
    let mut planned: BTreeMap<String, usize> = BTreeMap::new();
    for p in plan {
        *planned
            .entry(p.output.package.name.as_normalized().to_string())
            .or_default() += 1;
    }
    let mut waiting: Vec<Waiting> = Vec::new();
    let mut pipeline = pipeline::Pipeline::new(&opts.compression);
    // Written archives land: each is listed as waiting for its tests before
    // anything can fail (so a failure withdraws it), then added to the
    // channel index (later builds and tests may need it); then the tests
    // whose siblings are all there run, and what a tested package was made
    // from is recorded (`--skip-unchanged`).
    let land = |finished: Vec<pipeline::Finished>, built: &mut Vec<Built>, waiting: &mut Vec<Waiting>| -> Result<()> {
        let mut failed = None;
        for mut f in finished {
            f.built.seconds = f.started.elapsed().as_secs_f64();
            let added = crate::channel::add(&opts.output_dir, std::slice::from_ref(&f.built.path));
            // The record of what it was made from takes the index's digest.
            if let (Ok(digests), Some(record)) = (&added, f.waiting.record.as_mut()) {
                record.sha256 = digests.get(&f.built.path).cloned();
            }
            waiting.push(f.waiting);
            built.push(f.built);
            if let Err(e) = added {
                failed.get_or_insert(e);
            }
        }
        envs.package_added();
        failed.map_or(Ok(()), Err)?;
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for b in built.iter() {
            *count.entry(b.name.as_str()).or_default() += 1;
        }
        let done = |n: &String| count.get(n.as_str()) == planned.get(n);
        while let Some(i) = waiting.iter().position(|w| w.needs.iter().all(done)) {
            let w = waiting.remove(i);
            test_and_record(w, opts, envs)?;
        }
        Ok(())
    };
    let result = (|| -> Result<()> {
        for p in plan {
            if needs_built_siblings(p, plan) {
                let (finished, error) = pipeline.finish_all();
                land(finished, &mut built, &mut waiting)?;
                error.map_or(Ok(()), Err)?;
            }
            if let Some(skipped) = existing::existing(p, opts, envs)? {
                built.push(skipped);
                continue;
            }
            let resolved = crate::dependencies::resolve_output(p, opts, envs)?;
            let inputs = match opts.skip_unchanged {
                true => Some(unchanged::Inputs::of(p, opts, &stager, &resolved)?),
                false => None,
            };
            if let Some(kept) = inputs
                .as_ref()
                .map(|i| unchanged::reuse(p, opts, i))
                .transpose()?
                .flatten()
            {
                // Tested when it was built; its dependants find it in the channel.
                built.push(kept);
                continue;
            }
            let (b, packaging) = build_one(p, opts, &mut stager, envs, &resolved)?;
            let w = Waiting {
                path: b.path.clone(),
                needs: siblings_needed(p, plan),
                not_here: not_testable_here(p, plan, opts),
                record: inputs.map(|i| unchanged::Pending::new(&b, i)),
            };
            let finished = pipeline.start(b, packaging, w)?;
            land(finished, &mut built, &mut waiting)?;
        }
        let (finished, error) = pipeline.finish_all();
        land(finished, &mut built, &mut waiting)?;
        error.map_or(Ok(()), Err)?;
        while !waiting.is_empty() {
            let w = waiting.remove(0);
            test_and_record(w, opts, envs)?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        // Archives still being written land and are tested as they would
        // have been; packages whose tests never ran are withdrawn.
        let (finished, _) = pipeline.finish_all();
        let _ = land(finished, &mut built, &mut waiting);
        withdraw_untested(&waiting, opts);
        // Environments shared with later recipes forget what was withdrawn.
        envs.package_added();
        return Err(e);
    }
    ui::step("channel", "indexing");
    crate::channel::index(&opts.output_dir, &subdirs)?;
    account_files(&built, &stager, opts)?;
    Ok(built
        .into_iter()
        .map(|b| Packaged {
            path: b.path,
            built: b.origin == Origin::Built,
            seconds: b.seconds,
        })
        .collect())
}

/// A built package whose tests have not run yet.
struct Waiting {
    path: PathBuf,
    /// Sibling outputs (by name) that must all be built first.
    needs: BTreeSet<String>,
    /// Why this machine cannot test it, if so.
    not_here: Option<String>,
    /// What it was made from, recorded once its tests passed.
    record: Option<unchanged::Pending>,
}

/// Test a landed package; once it passed (or needs no testing here),
/// record what it was made from.
fn test_and_record(w: Waiting, opts: &BuildOptions, envs: &LazyEnvironments) -> Result<()> {
    crate::testing::after_build(&w.path, opts, envs, w.not_here.as_deref())?;
    match w.record {
        Some(record) => record.write(opts),
        None => Ok(()),
    }
}

/// Whether `p` (or a staging output it inherits) needs another output of
/// the recipe in its build or host environment: then that output's
/// package must be in the channel first.
fn needs_built_siblings(p: &PlannedOutput, plan: &[PlannedOutput]) -> bool {
    let own = p.output.package.name.as_normalized();
    let names = p.names_to_build();
    plan.iter()
        .map(|o| o.output.package.name.as_normalized())
        .any(|n| n != own && names.contains(n))
}

/// Names of other outputs of this recipe that `p`'s run requirements,
/// test requirements or downstream tests name (its tests need them built).
fn siblings_needed(p: &PlannedOutput, plan: &[PlannedOutput]) -> BTreeSet<String> {
    let own = p.output.package.name.as_normalized();
    let names = p.names_to_test();
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
    // Outputs skipped by `--skip-existing` took files nobody knows.
    let unknown = built.iter().any(|b| b.origin == Origin::Existing);
    let mut entries: Vec<_> = stager.used().filter(|_| !unknown).collect();
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
