//! Package tests: what `tests:` declares, run against the package itself.
//!
//! [`contents`] checks `package_contents` on the file list before a package
//! is written. Every other test is stored in the package ([`stored`]) and
//! run from the package file ([`run`]): after a build, and by `kiln test`
//! on any package (also rattler-build's and conda-build's). A test sees only
//! what the package and its dependencies install: its environment is solved
//! fresh with the package pinned to this very file.

pub mod contents;
pub mod run;
pub mod stored;

use std::collections::BTreeMap;
use std::path::Path;

use miette::{miette, IntoDiagnostic, Result};
use rattler_conda_types::package::{IndexJson, PackageFile};
use rattler_conda_types::{MatchSpec, ParseStrictness};

use run::{Bench, Failure, Subject};
use stored::Stored;

/// Which packages `--test` runs tests for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Strategy {
    /// Run no tests.
    Skip,
    /// Test packages this machine can run (noarch, or built for this platform).
    Native,
    /// Like `native`; packages for other platforms are not emulated yet and are skipped with a message.
    NativeAndEmulated,
}

/// Check a recipe test before anything builds: script files exist, globs
/// are valid; errors point at the test.
pub fn check(recipe: &crate::recipe::Recipe, test: &crate::recipe::package_tests::PackageTest) -> Result<()> {
    use crate::recipe::model::{FileFilter, ScriptBody};
    use crate::recipe::package_tests::PackageTest;
    match test {
        PackageTest::Script(t) => {
            // Secrets must be set now, not after the whole build.
            crate::build::script::secrets(recipe, &t.script)?;
            if let ScriptBody::File { file } = &t.script.body {
                if !recipe.dir.join(file).is_file() {
                    miette::bail!(
                        "{}: test script file {} is not in the recipe directory",
                        recipe.file.location(&t.script.span),
                        file.display()
                    );
                }
            }
            for globs in [&t.files.source, &t.files.recipe] {
                let filter = FileFilter {
                    include: globs.clone(),
                    exclude: Vec::new(),
                };
                crate::package::glob::Selector::new(&filter)
                    .map_err(|(msg, g)| miette!("{}: {msg}", recipe.file.location(&g.span)))?;
            }
            Ok(())
        }
        PackageTest::PackageContents(c) => {
            contents::validate(c).map_err(|(msg, g)| miette!("{}: {msg}", recipe.file.location(&g.span)))
        }
        _ => Ok(()),
    }
}

/// What testing one package came to.
pub struct Outcome {
    /// How many tests ran (and passed).
    pub passed: usize,
    /// Downstream tests that could not run (said as they were skipped).
    pub skipped: usize,
    /// The first failing test, described.
    pub failed: Option<String>,
}

/// The package at `file`, extracted into `bench.dir/pkg`.
pub fn subject(file: &Path, bench: &Bench) -> Result<(Subject, std::path::PathBuf)> {
    let extracted = bench.dir.join("pkg");
    if extracted.exists() {
        fs_err::remove_dir_all(&extracted).into_diagnostic()?;
    }
    rattler_package_streaming::fs::extract(file, &extracted)
        .map_err(|e| miette!("cannot read the package {}: {e}", file.display()))?;
    let index = IndexJson::from_package_directory(&extracted)
        .map_err(|e| miette!("{}: info/index.json: {e}", file.display()))?;
    let hash_input = extracted.join("info/hash_input.json");
    let variant: BTreeMap<String, String> = match fs_err::read_to_string(&hash_input) {
        Ok(text) => serde_json::from_str::<BTreeMap<String, serde_json::Value>>(&text)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_string)))
            .collect(),
        Err(_) => BTreeMap::new(),
    };
    let name = index.name.as_normalized().to_string();
    Ok((
        Subject {
            label: format!("{name}-{}-{}", index.version, index.build),
            name,
            version: index.version.to_string(),
            build: index.build.to_string(),
            build_number: index.build_number,
            subdir: index.subdir.clone().unwrap_or_else(|| "noarch".into()),
            sha256: crate::disk::file_sha256(file)?,
            variant,
        },
        extracted,
    ))
}

/// Whether the package `file` stores any test, from its `info/` alone: a
/// `.conda` package's small info archive is unpacked into `dir/info-only`
/// (and removed again), so a package without tests is never extracted.
/// A `.tar.bz2` package is assumed to store tests (finding out would
/// decompress it).
fn stores_tests(file: &Path, dir: &Path) -> Result<bool> {
    if !file.to_string_lossy().ends_with(".conda") {
        return Ok(true);
    }
    let info = dir.join("info-only");
    if info.exists() {
        fs_err::remove_dir_all(&info).into_diagnostic()?;
    }
    let cannot = |e: &dyn std::fmt::Display| miette!("cannot read the package {}: {e}", file.display());
    let reader = fs_err::File::open(file).into_diagnostic()?;
    rattler_package_streaming::seek::stream_conda_info(reader)
        .map_err(|e| cannot(&e))?
        .unpack(&info)
        .map_err(|e| cannot(&e))?;
    // Presence only: reading the tests may need files of the payload.
    let listed = std::fs::read_to_string(info.join("info/tests/tests.yaml"))
        .ok()
        .and_then(|text| serde_yaml_ng::from_str::<Vec<serde_yaml_ng::Value>>(&text).ok())
        .is_none_or(|list| !list.is_empty());
    let any = info.join("info/test").exists() || (info.join("info/tests/tests.yaml").exists() && listed);
    fs_err::remove_dir_all(&info).into_diagnostic()?;
    Ok(any)
}

/// Run the tests of the package `file` (only test `only`, when given).
/// Stops at the first failing test.
pub fn test_package(file: &Path, bench: &Bench, only: Option<usize>) -> Result<Outcome> {
    fs_err::create_dir_all(&bench.dir).into_diagnostic()?;
    if only.is_none() && !stores_tests(file, &bench.dir)? {
        return Ok(Outcome {
            passed: 0,
            skipped: 0,
            failed: None,
        });
    }
    let (subject, extracted) = subject(file, bench)?;
    let tests = stored::read(&extracted)?;
    if let Some(i) = only {
        if i >= tests.len() {
            return Err(miette!(
                "--test-index {i} is out of range: {} has {} test(s)",
                subject.label,
                tests.len()
            ));
        }
    }
    let mut outcome = Outcome {
        passed: 0,
        skipped: 0,
        failed: None,
    };
    for (i, test) in tests.iter().enumerate() {
        if only.is_some_and(|o| o != i) {
            continue;
        }
        let result = match test {
            Stored::Downstream(spec) => downstream(bench, &subject, i, spec),
            _ => run::run(bench, &subject, i, test, &[]).map(|()| true),
        };
        match result {
            Ok(true) => outcome.passed += 1,
            Ok(false) => outcome.skipped += 1,
            Err(Failure::Failed(why)) => {
                outcome.failed = Some(why);
                return Ok(outcome);
            }
            Err(Failure::Error(e)) => return Err(e),
        }
    }
    Ok(outcome)
}

/// Test a package a build just wrote into the output channel (per
/// `opts.test`). A failing test moves the package to `<output>/broken/`,
/// re-indexes the channel, and fails the build with the test named.
pub fn after_build(
    package: &Path,
    opts: &crate::build::BuildOptions,
    envs: &crate::environment::LazyEnvironments,
    not_here: Option<&str>,
) -> Result<()> {
    let name = package
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if opts.test == Strategy::Skip {
        return Ok(());
    }
    if let Some(why) = not_here {
        crate::ui::print_line(&format!("  {name}: not tested: {why}"));
        return Ok(());
    }
    let subdir = package
        .parent()
        .and_then(|p| p.file_name())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if subdir != "noarch" && subdir != opts.platforms.build.as_str() {
        crate::ui::print_line(&format!(
            "  {name}: not tested: built for {subdir}, which cannot run on this {} machine",
            opts.platforms.build
        ));
        return Ok(());
    }
    let stem = name.trim_end_matches(".conda").trim_end_matches(".tar.bz2");
    let bench = Bench {
        envs,
        build_platform: opts.platforms.build,
        dir: opts.output_dir.join("test").join(stem),
        forward_secrets: true,
    };
    let started = std::time::Instant::now();
    let problem = match test_package(package, &bench, None) {
        Ok(Outcome {
            failed: None,
            passed,
            skipped,
        }) => {
            if passed + skipped > 0 {
                crate::ui::print_line(&format!(
                    "✔ {name}: {passed} test{} passed{} in {:.2} s",
                    if passed == 1 { "" } else { "s" },
                    if skipped > 0 {
                        format!(", {skipped} skipped")
                    } else {
                        String::new()
                    },
                    started.elapsed().as_secs_f64()
                ));
            }
            if !opts.keep_build {
                let _ = fs_err::remove_dir_all(&bench.dir);
                // Gone once empty (other tests may run in parallel builds).
                let _ = std::fs::remove_dir(opts.output_dir.join("test"));
            }
            return Ok(());
        }
        Ok(Outcome { failed: Some(why), .. }) => why,
        Err(e) => format!("{name}: a test could not run: {e:?}"),
    };
    let broken = opts.output_dir.join("broken");
    fs_err::create_dir_all(&broken).into_diagnostic()?;
    fs_err::rename(package, broken.join(&name)).into_diagnostic()?;
    let subdirs: Vec<rattler_conda_types::Subdir> = subdir.parse().into_iter().collect();
    crate::channel::index(&opts.output_dir, &subdirs)?;
    // Environments shared with later recipes must not offer it any more.
    envs.package_added();
    Err(miette!(
        help = format!("the test's files are in {}", bench.dir.display()),
        "{problem}\n  the package was moved to {} and is not in the channel",
        broken.join(&name).display()
    ))
}

/// A downstream test: solve the downstream package together with this one;
/// when that works, run the downstream package's own tests (not its
/// downstream tests) with this package pinned. `Ok(false)`: skipped
/// (unsolvable, or the downstream package has no tests), with a warning.
fn downstream(bench: &Bench, subject: &Subject, index: usize, spec: &str) -> std::result::Result<bool, Failure> {
    let label = format!("{} test {index} (downstream {spec})", subject.label);
    let target = match subject.subdir.as_str() {
        "noarch" => bench.build_platform,
        s => s.parse().map_err(|e| miette!("{label}: subdir `{s}`: {e}"))?,
    };
    let Some(records) = run::solve(bench, &label, target, &[spec.to_string(), subject.pin()])? else {
        tracing::warn!("{label}: skipped, `{spec}` cannot be installed together with this package");
        return Ok(false);
    };
    let name = MatchSpec::from_str(spec, ParseStrictness::Lenient)
        .ok()
        .and_then(|m| m.name.as_exact().map(|n| n.as_normalized().to_string()))
        .ok_or_else(|| miette!("{label}: `{spec}` names no package"))?;
    let record = records
        .iter()
        .find(|r| r.package_record.name.as_normalized() == name)
        .ok_or_else(|| miette!("{label}: the solution has no `{name}`"))?;
    let extracted = bench.envs.get()?.extracted(record)?;
    let downstream = Subject {
        label: format!(
            "{name}-{}-{}",
            record.package_record.version, record.package_record.build
        ),
        name: name.clone(),
        version: record.package_record.version.to_string(),
        build: record.package_record.build.to_string(),
        build_number: record.package_record.build_number,
        subdir: record.package_record.subdir.clone(),
        // Without a recorded checksum the pin names version and build only.
        sha256: record.package_record.sha256.map(hex::encode).unwrap_or_default(),
        variant: BTreeMap::new(),
    };
    let sub = Bench {
        envs: bench.envs,
        build_platform: bench.build_platform,
        dir: bench.dir.join(format!("{index}-downstream")),
        forward_secrets: false,
    };
    let tests = stored::read(&extracted)?;
    let runnable: Vec<(usize, &Stored)> = tests
        .iter()
        .enumerate()
        .filter(|(_, t)| !matches!(t, Stored::Downstream(_)))
        .collect();
    if runnable.is_empty() {
        tracing::warn!("{label}: skipped, {} has no tests to run", downstream.label);
        return Ok(false);
    }
    for (i, test) in runnable {
        run::run(&sub, &downstream, i, test, &[subject.pin()]).map_err(|f| match f {
            Failure::Failed(why) => Failure::Failed(format!("{label}: {why}")),
            other => other,
        })?;
    }
    Ok(true)
}
