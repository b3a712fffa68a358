//! Building one planned output: fresh directories, the staging output it
//! inherits (restored from the cache, or only the selected files linked when
//! the output has no script; built first if needed), environments,
//! sources, the build script, file selection, post-processing, the linking
//! checks and packaging.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use miette::{miette, IntoDiagnostic, Result};

use super::Built;
use crate::build::dirs::BuildDirs;
use crate::build::env::BuildIdentity;
use crate::build::source_info::Placed;
use crate::build::{run_script, sources, BuildOptions};
use crate::dependencies::{finalize_run, Inherited};
use crate::environment::resolve::{self, Resolved};
use crate::environment::LazyEnvironments;
use crate::package::{self, metadata::InfoInputs, select};
use crate::plan::PlannedOutput;
use crate::recipe::model::spec_name;
use crate::recipe::model::Output;
use crate::recipe::Recipe;
use crate::staging::store::Entry;
use crate::staging::{restore_into, Stager};
use crate::variants::variant_text;
use crate::{rendered, ui};

pub(super) fn build_one(
    p: &PlannedOutput,
    opts: &BuildOptions,
    stager: &mut Stager,
    envs: &LazyEnvironments,
    resolved: &Resolved,
) -> Result<(Built, Packaging)> {
    let build_started = std::time::Instant::now();
    let recipe = &*p.recipe;
    let id = p.identifier();
    let output = &p.output;
    let SetUp {
        staging,
        staging_keys,
        dirs,
        lock: _dir_lock,
        before,
        finalized_sources,
    } = set_up(p, opts, stager, envs, resolved)?;
    let direct = staging.as_ref().filter(|_| output.build.script.is_none());
    // Where license files and test files are looked up in the work
    // directory: the entry's own when it was not restored.
    let work_dir = match direct {
        Some(entry) if output.source.is_empty() => entry.work_dir(),
        _ => dirs.work_dir.clone(),
    };

    if let Some(s) = &output.build.script {
        let (identity, variant) = identity(p);
        run_script(recipe, opts, &dirs, s, &identity, &variant, &id)?;
    }

    ui::step(&id, "collecting files");
    let mut after = select::snapshot(&dirs.host_prefix)?;
    let entry_paths: BTreeSet<PathBuf> = direct
        .map(|e| e.meta.files.iter().map(|f| PathBuf::from(&f.path)).collect())
        .unwrap_or_default();
    after.extend(entry_paths.iter().cloned());
    let new_files = select::new_files(&dirs.host_prefix, &before, &after)?;
    let mut files = package::select_files(recipe, output, &new_files)?;
    for extra in package::always_included(recipe, output, &after)? {
        if !files.contains(&extra) {
            files.push(extra);
        }
    }
    if let Some(entry) = direct {
        let chosen: BTreeSet<String> = files
            .iter()
            .filter(|f| entry_paths.contains(*f) && dirs.host_prefix.join(f).symlink_metadata().is_err())
            .map(|f| f.to_string_lossy().into_owned())
            .collect();
        crate::staging::place_selected(entry, &dirs, &chosen, false, opts.keep_build, &id)?;
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
    // What the output took from the prefix (staging accounting compares
    // these with the entry's files), before the python layout renames them.
    let taken: Vec<String> = files.iter().map(|f| f.to_string_lossy().into_owned()).collect();
    // `post_process` replacements, then run paths inside the prefix become `$ORIGIN`-relative.
    let relink_started = std::time::Instant::now();
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
        tracing::info!(
            "{id}: rewrote the run paths of {} file(s) in {:.2} s",
            relinked.len(),
            relink_started.elapsed().as_secs_f64()
        );
    }
    // Python: the noarch layout (after relocation, which computes run paths
    // from where installers put the files), or launchers for entry points.
    files = python_layout(output, &dirs.host_prefix, files, &new_files)?;
    let cross = opts.platforms.host != opts.platforms.build;
    files.extend(compile_bytecode(recipe, output, &dirs, &files, cross, &id)?);
    files.sort();
    files.dedup();
    // `package_contents` tests see the files the recipe selected.
    let listed: Vec<String> = files.iter().map(|f| f.to_string_lossy().into_owned()).collect();
    let noarch_python = output.build.python_noarch_layout();
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
    let test_files =
        crate::testing::stored::ship_files(recipe, &name, &shipped, &work_dir, &dirs.host_prefix, &opts.output_dir)?;
    let packaged = files.clone();
    files.extend(test_files.iter().cloned());
    files.sort();

    ui::step(&id, "packaging");
    let started = std::time::Instant::now();
    let inherited = staging.as_ref().map(|e| Inherited {
        run_exports: e.meta.run_exports.clone(),
        host_packages: e.meta.key_inputs.host_packages.clone(),
    });
    let (depends, constrains, exports) = finalize_run(p, resolved, inherited.as_ref())?;
    let linking_started = std::time::Instant::now();
    let chain: Vec<&Entry> = staging.as_ref().map(|e| stager.chain_entries(e)).unwrap_or_default();
    check_linking(p, &chain, &dirs, &packaged, &depends, &exports)?;
    tracing::info!(
        "{id}: linking checks done in {:.2} s",
        linking_started.elapsed().as_secs_f64()
    );
    let finalized = rendered::finalized_dependencies(output, resolved, &depends, &constrains, &exports);
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
        work_dir: &work_dir,
        output_dir: &opts.output_dir,
        tests: &tests,
        allow_absolute_license_paths: opts.allow_absolute_license_paths,
        include_recipe: opts.include_recipe,
        extra_meta: &opts.extra_meta,
    };
    // A directory of its own, outside the build directory: the archive may
    // be written while the next output builds there.
    // Its lock, held until the archive is written, tells a later run's
    // sweep (`sweep_package_dirs`) that it is in use.
    let dir_name = format!(
        "{}-{}-{}",
        output.package.name.as_normalized(),
        p.build_string,
        std::process::id()
    );
    let bld = opts.output_dir.join("bld");
    let lock = crate::lock::Lock::acquire(
        &bld.join(".locks").join(format!("pkg-{dir_name}.lock")),
        crate::lock::Mode::Exclusive,
        &format!("the package directory {dir_name}"),
    )
    .into_diagnostic()?;
    let pkg_dir = bld.join(".pkg").join(&dir_name);
    let prepared = package::prepare(
        &info,
        &dirs.host_prefix,
        &files,
        &pkg_dir,
        &opts.output_dir.join(&p.subdir),
        &package::PackOptions {
            compression: opts.compression,
            error_prefix_in_binary: opts.error_prefix_in_binary,
        },
    )?;
    for f in &test_files {
        // Shipped for this package only; siblings share the prefix.
        let _ = std::fs::remove_file(dirs.host_prefix.join(f));
    }
    if !opts.keep_build {
        fs_err::remove_dir_all(&dirs.build_dir).into_diagnostic()?;
    }
    Ok((
        Built {
            path: prepared.path(),
            name: output.package.name.as_normalized().to_string(),
            files: taken,
            staging_keys,
            origin: super::Origin::Built,
            seconds: 0.0,
        },
        Packaging {
            prepared,
            lock,
            build_started,
            started,
            files: files.len(),
        },
    ))
}

/// What `p`'s script sees of it: its identity and variant values.
pub(super) fn identity(p: &PlannedOutput) -> (BuildIdentity, BTreeMap<String, String>) {
    let output = &p.output;
    let variant = p.variant.iter().map(|(k, v)| (k.clone(), variant_text(v))).collect();
    let identity = BuildIdentity {
        name: output.package.name.as_normalized().to_string(),
        version: output.package.version.as_str().to_string(),
        build_number: Some(output.build.number),
        build_string: Some(p.build_string.clone()),
        hash: Some(p.hash.to_string()),
        noarch_python: output.build.python_noarch_layout(),
    };
    (identity, variant)
}

/// An output's build directory, set up: staging files restored (or, for a
/// script-less inheritor, to be linked later), environments installed,
/// sources placed.
pub(super) struct SetUp {
    /// The staging entry it inherits.
    pub staging: Option<Entry>,
    /// Keys of the staging entries restored into it (innermost first).
    pub staging_keys: Vec<String>,
    /// Its directories.
    pub dirs: BuildDirs,
    /// Held while the directories are in use.
    pub lock: crate::lock::Lock,
    /// The host prefix before the build (restored staging files count as new).
    pub before: select::Snapshot,
    /// Its sources (the staging entry's first), finalized.
    pub finalized_sources: Vec<serde_json::Value>,
}

/// Set up `p`'s build directory, up to running its script.
pub(super) fn set_up(
    p: &PlannedOutput,
    opts: &BuildOptions,
    stager: &mut Stager,
    envs: &LazyEnvironments,
    resolved: &Resolved,
) -> Result<SetUp> {
    let recipe = &*p.recipe;
    let id = p.identifier();
    let output = &p.output;
    let staging = match output.inherit.staging_name() {
        Some(name) => Some(stager.ensure(recipe, name)?),
        None => None,
    };
    let staging_keys = staging.as_ref().map(|e| stager.chain(e)).unwrap_or_default();
    ui::step(&id, "preparing directories");
    // Staging builds and their inheritors share one set of directories, so
    // restored paths stay valid without relocation.
    let dir_name = match &staging {
        Some(_) => recipe.shared_build_name(),
        None => output.package.name.as_normalized().to_string(),
    };
    let dirs = match output.build.merge_build_and_host_envs {
        true => BuildDirs::new(&opts.output_dir, &dir_name).merged(),
        false => BuildDirs::new(&opts.output_dir, &dir_name),
    };
    let _dir_lock = dirs.lock().into_diagnostic()?;
    dirs.create().into_diagnostic()?;

    // Restored staging files count as new: the snapshot is taken before the
    // restore. Installed packages' files do not (see `select::new_files`).
    let before = select::snapshot(&dirs.host_prefix)?;
    // Without a script nothing but kiln's own steps (which replace files,
    // never write into them) touches the staging files: only the selected
    // ones are placed, as hard links, after selection.
    let direct = staging.as_ref().filter(|_| output.build.script.is_none());
    match (&staging, direct) {
        (Some(entry), None) => restore_into(entry, &dirs, &id)?,
        // Sources of the output's own are layered on the staging work dir.
        (Some(entry), Some(_)) if !output.source.is_empty() => {
            let nothing = BTreeSet::new();
            crate::staging::place_selected(entry, &dirs, &nothing, true, opts.keep_build, &id)?;
        }
        _ => {}
    }
    resolve::install(envs, resolved, dirs.prefixes(), opts.platforms, &id)?;
    ui::step(&id, "placing sources");
    let mut finalized_sources = staging.as_ref().map(|e| e.meta.sources.clone()).unwrap_or_default();
    let own = sources::fetch(
        recipe,
        &output.source,
        &dirs.work_dir,
        &opts.output_dir,
        &opts.allow_insecure_host,
    )?;
    finalized_sources.extend(own.iter().cloned());
    crate::build::source_info::write(
        &dirs.build_dir,
        recipe,
        opts,
        Placed::Output(output.package.name.as_normalized().to_string()),
        own,
        staging.is_some(),
    )?;
    Ok(SetUp {
        staging,
        staging_keys,
        dirs,
        lock: _dir_lock,
        before,
        finalized_sources,
    })
}

/// A package whose directory is laid out and whose archive is still to
/// be written (see [`super::pipeline`]).
pub(super) struct Packaging {
    /// The package directory.
    pub prepared: package::Prepared,
    /// Held while the directory is in use.
    pub lock: crate::lock::Lock,
    /// When the output's build started (for the summary).
    pub build_started: std::time::Instant,
    /// When packaging started (for the log).
    pub started: std::time::Instant,
    /// How many files it holds (for the log).
    pub files: usize,
}

/// The linking checks over the package's binaries: the host environment's
/// libraries and sysroots (the inherited staging output's from its cache
/// entry, so a hit and a miss see the same), and the staging files
/// siblings package. `chain` is the inherited staging entry and the ones
/// it was restored on top of, nearest first.
fn check_linking(
    p: &PlannedOutput,
    chain: &[&Entry],
    dirs: &BuildDirs,
    files: &[PathBuf],
    depends: &[String],
    exports: &crate::environment::run_exports::Applied,
) -> Result<()> {
    use crate::environment::run_exports::Env;
    use package::linking;
    let own = p.output.package.name.as_normalized();
    let staging = chain.first();
    let mut host = staging.map(|e| e.meta.host_libraries.clone()).unwrap_or_default();
    host.extend(linking::installed_libraries(&dirs.host_prefix)?);
    let mut sysroot = staging.map(|e| e.meta.sysroot_libraries.clone()).unwrap_or_default();
    for prefix in [&dirs.build_prefix, &dirs.host_prefix] {
        sysroot.extend(linking::sysroot_libraries(prefix));
    }
    let chain_files: Vec<(&str, Vec<&str>)> = chain
        .iter()
        .map(|e| {
            (
                e.meta.name.as_str(),
                e.meta.files.iter().map(|f| f.path.as_str()).collect(),
            )
        })
        .collect();
    let siblings = linking::sibling_libraries(&p.recipe, own, &chain_files);
    let run: BTreeSet<String> = depends.iter().filter_map(|d| spec_name(d)).collect();
    let exported: BTreeSet<String> = exports
        .depends
        .iter()
        .filter(|e| e.from == Env::Host)
        .filter_map(|e| spec_name(&e.spec))
        .collect();
    let config = &p.output.build.dynamic_linking;
    let findings = linking::check(&linking::Inputs {
        prefix: &dirs.host_prefix,
        sysroot: &sysroot,
        files,
        host: &host,
        siblings: &siblings,
        run: &run,
        exported: &exported,
        config,
    })?;
    linking::report(&p.identifier(), &findings, config)
}

/// The python steps before relocation: `noarch: python` packages get the
/// noarch layout; other packages get launchers for their entry points.
/// Either way, conda is recorded as the installer of `*.dist-info`.
fn python_layout(output: &Output, prefix: &Path, files: Vec<PathBuf>, made: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let entry_points = &output.build.python.entry_points;
    let files = if output.build.python_noarch_layout() {
        package::python::noarch_layout(prefix, &files, entry_points)?
    } else {
        // The caller sorts and deduplicates (pip may have made a launcher too).
        let mut files = files;
        files.extend(package::python::write_launchers(prefix, entry_points, made)?);
        files
    };
    package::python::mark_installer(prefix, &files)?;
    Ok(files)
}

/// Byte-code for the package's `.py` files, compiled by the host
/// environment's python (the build environment's when only it has one);
/// none for `noarch: python` packages or without a python.
fn compile_bytecode(
    recipe: &Recipe,
    output: &Output,
    dirs: &BuildDirs,
    files: &[PathBuf],
    cross: bool,
    id: &str,
) -> Result<Vec<PathBuf>> {
    use crate::environment::interpreters::Records;
    if output.build.python_noarch_layout() {
        return Ok(Vec::new());
    }
    let in_host = Records::read(&dirs.host_prefix).get("python").is_some();
    // A cross build's host python is for another machine: the build
    // environment's compiles (as rattler-build does).
    let python = if !cross && in_host {
        dirs.host_prefix.join("bin/python")
    } else if Records::read(&dirs.build_prefix).get("python").is_some() {
        dirs.build_prefix.join("bin/python")
    } else {
        if cross && in_host {
            tracing::warn!("{id}: no byte-code compiled: cross-compiling needs python in the build environment too");
        }
        return Ok(Vec::new());
    };
    let skip = package::glob::GlobList::new(&output.build.python.skip_pyc_compilation)
        .map_err(|(msg, g)| miette!("{}: {msg}", recipe.file.location(&g.span)))?;
    let started = std::time::Instant::now();
    let compiled = package::python::compile(&python, &dirs.host_prefix, files, &|f| skip.is_match(f), id)?;
    if !compiled.is_empty() {
        tracing::info!(
            "{id}: compiled {} file(s) to byte-code in {:.2} s",
            compiled.len(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(compiled)
}

/// Remove package directories (`<output>/bld/.pkg/`) that killed runs left
/// behind: those whose lock nobody holds.
pub(super) fn sweep_package_dirs(output_dir: &Path) {
    let bld = output_dir.join("bld");
    let Ok(dirs) = std::fs::read_dir(bld.join(".pkg")) else {
        return;
    };
    for d in dirs.flatten() {
        let name = d.file_name().to_string_lossy().into_owned();
        let lock = bld.join(".locks").join(format!("pkg-{name}.lock"));
        if let Ok(Some(_held)) = crate::lock::Lock::try_acquire(&lock, crate::lock::Mode::Exclusive) {
            let _ = std::fs::remove_dir_all(d.path());
        }
    }
}
