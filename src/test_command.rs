//! `kiln test --package-file F`: the package's tests, from the package
//! alone. The package is put into a scratch channel of its own, which goes
//! before the `-c` channels, so its dependencies come from those.

use miette::{miette, IntoDiagnostic, Result};
use rattler_conda_types::Subdir;

use crate::cli::TestArgs;
use crate::environment::LazyEnvironments;
use crate::testing::{self, run::Bench};

/// Run `kiln test`.
pub fn run(args: TestArgs, settings: &crate::config::Settings) -> Result<()> {
    let file = crate::package_command::package_file(&args.package_file)?;
    let file = std::fs::canonicalize(&file).into_diagnostic()?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let current = Subdir::current().ok_or_else(|| miette!("kiln does not know this machine's platform"))?;
    let scratch = tempfile::Builder::new()
        .prefix("kiln-test-")
        .tempdir()
        .into_diagnostic()?;
    let bench_dir = scratch.path().join("work");
    fs_err::create_dir_all(&bench_dir).into_diagnostic()?;
    // The package's own subdir, from the package itself.
    let probe = Bench {
        envs: &LazyEnvironments::new(&[], scratch.path(), vec![], true),
        build_platform: current,
        dir: bench_dir.clone(),
        forward_secrets: false,
    };
    let (subject, _) = testing::subject(&file, &probe)?;
    let subdir: Subdir = subject
        .subdir
        .parse()
        .map_err(|e| miette!("{}: subdir `{}`: {e}", file.display(), subject.subdir))?;
    if subdir != Subdir::NoArch && subdir != current {
        miette::bail!(
            "{} is built for {subdir}; this machine ({current}) cannot run its tests",
            subject.label
        );
    }
    let channel = scratch.path().join("channel");
    fs_err::create_dir_all(channel.join(subdir.as_str())).into_diagnostic()?;
    fs_err::copy(&file, channel.join(subdir.as_str()).join(&name)).into_diagnostic()?;
    let channels = match (&settings.default_channels, args.channels.is_empty()) {
        (Some(defaults), true) => defaults.clone(),
        (None, true) => vec![crate::environment::channels::DEFAULT_CHANNEL.to_string()],
        (_, false) => args.channels.clone(),
    };
    for c in &channels {
        crate::redact::register_url(c);
    }
    let mut subdirs = vec![subdir, current];
    subdirs.dedup();
    let envs = LazyEnvironments::new(&channels, &channel, subdirs, false).with_solving(crate::environment::Solving {
        exclude_newer: settings.exclude_newer,
        ..Default::default()
    });
    let bench = Bench {
        envs: &envs,
        build_platform: current,
        dir: bench_dir,
        forward_secrets: false,
    };
    let started = std::time::Instant::now();
    let outcome = testing::test_package(&file, &bench, args.test_index)?;
    crate::ui::finish();
    match outcome.failed {
        Some(why) => {
            // Kept for a look: the test's environment, script and log.
            let kept = scratch.keep();
            Err(miette!(
                help = format!(
                    "the test's environment and log (conda_build.log) are in {}",
                    kept.display()
                ),
                "{why}"
            ))
        }
        None if outcome.passed + outcome.skipped == 0 => Err(miette!(
            "{} has no tests (no `info/tests/tests.yaml`, no conda-build `info/test/`)",
            subject.label
        )),
        None => {
            crate::ui::print_line(&format!(
                "✔ {}: {} test{} passed{} in {:.2} s",
                subject.label,
                outcome.passed,
                if outcome.passed == 1 { "" } else { "s" },
                if outcome.skipped > 0 {
                    format!(", {} skipped", outcome.skipped)
                } else {
                    String::new()
                },
                started.elapsed().as_secs_f64()
            ));
            Ok(())
        }
    }
}
