//! Turning `kiln build`'s arguments into what one recipe needs: the
//! platforms, its variant configuration and channels, its plan and its
//! build options.

use std::path::{Path, PathBuf};

use miette::{miette, IntoDiagnostic, Result};
use rattler_conda_types::Subdir;

use crate::cli::BuildArgs;
use crate::execute::BuildOptions;
use crate::syntax::jinja::Platforms;
use crate::{plan, recipe, variants};

/// One recipe, planned, with the options its build runs with.
pub struct Unit {
    /// The recipe as named on the command line or found below `--recipe-dir`.
    pub path: PathBuf,
    /// Its outputs, in build order.
    pub planned: plan::Plan,
    /// Its build options.
    pub opts: BuildOptions,
}

fn parse_platform(value: Option<&str>, flag: &str) -> Result<Option<Subdir>> {
    value
        .map(|v| {
            v.parse::<Subdir>()
                .map_err(|e| miette!(help = "e.g. linux-64, osx-arm64, win-64", "invalid {flag} `{v}`: {e}"))
        })
        .transpose()
}

/// The target, host and build platforms the arguments name.
pub fn platforms(args: &BuildArgs) -> Result<Platforms> {
    let current = Subdir::current().ok_or_else(|| miette!("kiln does not know this machine's platform"))?;
    let build_platform = parse_platform(args.build_platform.as_deref(), "--build-platform")?.unwrap_or(current);
    let target = parse_platform(args.target_platform.as_deref(), "--target-platform")?;
    let host = parse_platform(args.host_platform.as_deref(), "--host-platform")?;
    let target = target.or(host).unwrap_or(current);
    let host = host.unwrap_or(target);
    if target == Subdir::NoArch || build_platform == Subdir::NoArch {
        miette::bail!(
            help = "use `build.noarch` in the recipe instead",
            "`noarch` is not a valid target or build platform"
        );
    }
    Ok(Platforms {
        target,
        build: build_platform,
        host,
    })
}

/// Register the proxy URLs of the environment as secrets: their
/// credentials reach build scripts (and so maybe their logs).
pub fn register_proxies() {
    for var in [
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        if let Ok(v) = std::env::var(var) {
            crate::redact::register_url(&v);
        }
    }
}

/// The `--build-number` and `--build-string-prefix` overrides of a run: the
/// highest build numbers (for `+N`) are read once, from the output
/// directory and a `kiln publish` target.
pub fn overrides(args: &BuildArgs, output_dir: &Path) -> plan::Overrides {
    let mut highest = std::collections::BTreeMap::new();
    if let Some(plan::BuildNumber::Bump(_)) = args.build_number {
        for dir in std::iter::once(output_dir).chain(args.publish_channel.as_deref()) {
            for (k, n) in crate::channel::highest_build_numbers(dir) {
                let h: &mut u64 = highest.entry(k).or_default();
                *h = (*h).max(n);
            }
        }
    }
    plan::Overrides {
        build_number: args.build_number,
        highest,
        build_string_prefix: args.build_string_prefix.clone(),
    }
}

/// Read, configure and plan the recipe at `path`.
pub fn unit(
    args: &BuildArgs,
    settings: &crate::config::Settings,
    overrides: &plan::Overrides,
    path: &Path,
    platforms: Platforms,
    output_dir: &Path,
) -> Result<Unit> {
    let source = recipe::RecipeSource::read(path)?;
    let config = variants::load(
        source.dir(),
        &variants::Sources {
            files: args.variant_configs.clone(),
            overrides: args.variant_overrides.clone(),
            ignore_recipe_variants: args.ignore_recipe_variants,
        },
        platforms,
    )?;
    let channels = match config.channel_sources() {
        Some(_) if !args.channels.is_empty() => miette::bail!(
            help = "remove `channel_sources` from the variant config, or drop the `-c` flags",
            "channel_sources and channels cannot both be set at the same time"
        ),
        Some(sources) => sources,
        None if args.channels.is_empty() => settings.default_channels.clone().unwrap_or_default(),
        None => args.channels.clone(),
    };
    for c in &channels {
        crate::redact::register_url(c);
    }
    let mut channels = channels;
    if let Some(dir) = &args.publish_channel {
        if channels.is_empty() {
            // What an empty list means, kept behind the target.
            channels.push(crate::environment::channels::DEFAULT_CHANNEL.to_string());
        }
        channels.insert(0, dir.to_string_lossy().into_owned());
    }
    let options = recipe::LoadOptions {
        platforms,
        experimental: args.experimental,
    };
    let planned = plan::plan(&source, options, &config, overrides)?;
    register_secrets(&planned);
    let staging_cache_dir = match &args.staging_cache_dir {
        Some(d) => absolute(d, false)?,
        None => output_dir.join("build_cache"),
    };
    let opts = BuildOptions {
        output_dir: output_dir.to_path_buf(),
        staging_cache_dir,
        error_unused_staging_files: args.error_unused_staging_files,
        error_overlapping_files: args.error_overlapping_files,
        compression: crate::package::archive::Compression {
            format: args.package_format.or(settings.package_format).unwrap_or_default(),
            threads: args
                .compression_threads
                .unwrap_or_else(crate::package::archive::all_cores),
        },
        platforms,
        keep_build: args.keep_build,
        timestamp: build_timestamp(&planned.recipe.dir, output_dir)?,
        channels,
        allow_insecure_host: args.allow_insecure_host.clone(),
        error_prefix_in_binary: args.error_prefix_in_binary,
        allow_absolute_license_paths: args.allow_absolute_license_paths,
        skip_unchanged: args.skip_unchanged,
        skip_existing: args.skip_existing,
        include_recipe: !args.no_include_recipe,
        extra_meta: args.extra_meta.iter().cloned().collect(),
        experimental: args.experimental,
        solving: crate::environment::Solving {
            priority: args.channel_priority.into(),
            exclude_newer: args.exclude_newer.or(settings.exclude_newer),
            exempt: args.publish_channel.iter().cloned().collect(),
        },
        test: if args.no_test {
            crate::testing::Strategy::Skip
        } else {
            args.test
        },
    };
    Ok(Unit {
        path: path.to_path_buf(),
        planned,
        opts,
    })
}

/// Register the values of every secret the recipe's scripts name, so that
/// a value that also reached the recipe through `env.get` is masked in
/// rendered recipes, cache metadata and logs.
fn register_secrets(planned: &plan::Plan) {
    let scripts = planned
        .recipe
        .staging
        .iter()
        .filter_map(|s| s.script.as_ref())
        .chain(planned.outputs.iter().filter_map(|p| p.output.build.script.as_ref()))
        .chain(planned.outputs.iter().flat_map(|p| {
            p.output.tests.iter().filter_map(|t| match t {
                crate::recipe::package_tests::PackageTest::Script(s) => Some(&s.script),
                _ => None,
            })
        }));
    for script in scripts {
        for name in &script.secrets {
            if let Ok(v) = std::env::var(name) {
                crate::redact::register(&v);
            }
        }
    }
}

/// The absolute form of `p`, created when `create` is set (canonical when
/// it exists, so that paths recorded in packages are stable).
pub fn absolute(p: &Path, create: bool) -> Result<PathBuf> {
    let p = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().into_diagnostic()?.join(p)
    };
    if create {
        fs_err::create_dir_all(&p).into_diagnostic()?;
    }
    Ok(std::fs::canonicalize(&p).unwrap_or(p))
}

/// The timestamp packages carry: `SOURCE_DATE_EPOCH` if set, else the newest
/// modification time of the files next to the recipe, so that rebuilding an
/// unchanged recipe gives byte-identical packages.
fn build_timestamp(recipe_dir: &Path, output_dir: &Path) -> Result<i64> {
    if let Ok(v) = std::env::var("SOURCE_DATE_EPOCH") {
        // Packages record milliseconds; jiff (and zip) need a sane calendar date.
        const MAX: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
        return match v.trim().parse::<i64>() {
            Ok(t) if (0..=MAX).contains(&t) => Ok(t),
            _ => Err(miette!(
                help = "set it to seconds since 1970, e.g. `git log -1 --format=%ct`",
                "SOURCE_DATE_EPOCH must be a number of seconds between 0 and {MAX}, got `{v}`"
            )),
        };
    }
    let mut newest = 0i64;
    for entry in fs_err::read_dir(recipe_dir).into_diagnostic()? {
        let entry = entry.into_diagnostic()?;
        let path = entry.path();
        if path == output_dir {
            continue;
        }
        let meta = entry.metadata().into_diagnostic()?;
        if meta.is_file() {
            newest = newest.max(filetime::FileTime::from_last_modification_time(&meta).unix_seconds());
        }
    }
    Ok(newest)
}
