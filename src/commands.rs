//! What each subcommand does, on top of the library modules.

use std::path::{Path, PathBuf};

use miette::{miette, IntoDiagnostic, Result};
use rattler_conda_types::Subdir;

use crate::cli::{BuildArgs, CacheCommand, Cli, Command};
use crate::execute::{build_all, BuildOptions};
use crate::syntax::jinja::Platforms;
use crate::{plan, recipe, rendered, ui, variants};

/// Run the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Build(args) => build(*args),
        Command::Cache(cmd) => cache(cmd),
        Command::Test(args) => crate::test_command::run(args),
        Command::Package(cmd) => crate::package_command::run(cmd),
        Command::Completion { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "kiln", &mut std::io::stdout());
            Ok(())
        }
    }
}

fn parse_platform(value: Option<&str>, flag: &str) -> Result<Option<Subdir>> {
    value
        .map(|v| {
            v.parse::<Subdir>()
                .map_err(|e| miette!(help = "e.g. linux-64, osx-arm64, win-64", "invalid {flag} `{v}`: {e}"))
        })
        .transpose()
}

fn build(args: BuildArgs) -> Result<()> {
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
    let platforms = Platforms {
        target,
        build: build_platform,
        host,
    };

    if args.experimental {
        tracing::debug!("experimental features enabled");
    }

    let source = recipe::RecipeSource::read(&args.recipe)?;
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
        None => args.channels.clone(),
    };
    for c in &channels {
        crate::redact::register_url(c);
    }
    // Proxy credentials reach build scripts (and so maybe their logs).
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
    let options = recipe::LoadOptions {
        platforms,
        experimental: args.experimental,
    };
    let planned = plan::plan(&source, options, &config)?;
    let recipe = &planned.recipe;
    register_secrets(&planned);

    let output_dir = absolute(&args.output_dir, !args.render_only)?;
    let staging_cache_dir = match &args.staging_cache_dir {
        Some(d) => absolute(d, false)?,
        None => output_dir.join("build_cache"),
    };
    let opts = BuildOptions {
        output_dir: output_dir.clone(),
        staging_cache_dir,
        error_unused_staging_files: args.error_unused_staging_files,
        error_overlapping_files: args.error_overlapping_files,
        compression: crate::package::archive::Compression {
            format: args.package_format,
            threads: args
                .compression_threads
                .unwrap_or_else(crate::package::archive::all_cores),
        },
        platforms,
        keep_build: args.keep_build,
        timestamp: build_timestamp(&recipe.dir, &output_dir)?,
        channels,
        allow_insecure_host: args.allow_insecure_host.clone(),
        error_prefix_in_binary: args.error_prefix_in_binary,
        allow_absolute_license_paths: args.allow_absolute_license_paths,
        skip_unchanged: args.skip_unchanged,
        skip_existing: args.skip_existing,
        include_recipe: !args.no_include_recipe,
        extra_meta: args.extra_meta.iter().cloned().collect(),
        test: if args.no_test {
            crate::testing::Strategy::Skip
        } else {
            args.test
        },
    };

    if args.render_only {
        let all = if args.with_solve {
            rendered::with_solve(&planned, &opts)?
        } else {
            planned
                .outputs
                .iter()
                .map(|p| rendered::rendered_output(p, &opts, None, None))
                .collect()
        };
        println!("{}", serde_json::to_string_pretty(&all).into_diagnostic()?);
        return Ok(());
    }
    if planned.outputs.is_empty() {
        tracing::warn!(
            "every output of {} is skipped; nothing to build",
            recipe.file.path.display()
        );
        return Ok(());
    }
    crate::preflight::check(&planned)?;
    let written = build_all(&planned, &opts)?;
    ui::finish();
    if let Some(file) = &args.markdown_summary {
        write_summary(file, &recipe.file.path, &written)?;
    }
    let count = written.iter().filter(|p| p.built).count();
    eprintln!("kiln built {count} package(s) into {}", output_dir.display());
    Ok(())
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

/// The absolute output directory, created when `create` is set (canonical
/// when it exists, so that paths recorded in packages are stable).
fn absolute(p: &Path, create: bool) -> Result<PathBuf> {
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

fn cache(cmd: CacheCommand) -> Result<()> {
    use crate::staging::store::{Removal, Store};
    let now = chrono::Utc::now().timestamp();
    match cmd {
        CacheCommand::List(args) => {
            let store = Store::new(args.dir());
            let entries = store.entries();
            if entries.is_empty() {
                eprintln!("no staging cache entries in {}", store.root.display());
                return Ok(());
            }
            println!(
                "{:<24} {:<16} {:>10} {:>10} {:>10}  VARIANT",
                "NAME", "KEY", "SIZE", "AGE", "LAST USED"
            );
            for e in entries {
                let used = last_used(&e.dir).unwrap_or(e.meta.created);
                let variant: Vec<String> = e
                    .meta
                    .key_inputs
                    .variant
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                println!(
                    "{:<24} {:<16} {:>10} {:>10} {:>10}  {}",
                    e.meta.name,
                    e.meta.key.get(..16).unwrap_or(&e.meta.key),
                    human_bytes(e.meta.size_bytes),
                    human_age(now.saturating_sub(e.meta.created)),
                    human_age(now.saturating_sub(used)),
                    variant.join(" ")
                );
            }
            Ok(())
        }
        CacheCommand::Clean { cache, older_than } => {
            let store = Store::new(cache.dir());
            let mut removed = 0;
            let mut freed = 0;
            for e in store.entries() {
                let used = last_used(&e.dir).unwrap_or(e.meta.created);
                let age = now.saturating_sub(used);
                if older_than.is_some_and(|limit| age < i64::try_from(limit).unwrap_or(i64::MAX)) {
                    continue;
                }
                // A running build holds the entry's use lock: never cut it from under it.
                match store.remove(&e)? {
                    Removal::Removed => {}
                    Removal::Gone => continue,
                    Removal::InUse => {
                        eprintln!(
                            "kept staging_{} ({}): a running kiln build is using it",
                            e.meta.key, e.meta.name
                        );
                        continue;
                    }
                }
                removed += 1;
                freed += e.meta.size_bytes;
            }
            store.sweep();
            eprintln!(
                "removed {removed} staging cache entr{} ({})",
                if removed == 1 { "y" } else { "ies" },
                human_bytes(freed)
            );
            Ok(())
        }
    }
}

fn last_used(dir: &Path) -> Option<i64> {
    let meta = std::fs::metadata(dir.join("metadata.json")).ok()?;
    Some(filetime::FileTime::from_last_modification_time(&meta).unix_seconds())
}

fn human_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

fn human_age(secs: i64) -> String {
    match secs.max(0) {
        s if s >= 86400 => format!("{}d", s / 86400),
        s if s >= 3600 => format!("{}h", s / 3600),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Append the `--markdown-summary` table for `packages` to `file`.
fn write_summary(file: &Path, recipe: &Path, packages: &[crate::execute::Packaged]) -> Result<()> {
    use std::io::Write;
    let mut text = format!(
        "### kiln build: `{}`\n\n| package | subdir | size | time | |\n| --- | --- | ---: | ---: | --- |\n",
        recipe.display()
    );
    for p in packages {
        let name = p
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let subdir = p
            .path
            .parent()
            .and_then(Path::file_name)
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let size = std::fs::metadata(&p.path)
            .map(|m| human_bytes(m.len()))
            .unwrap_or_else(|_| "-".into());
        let (time, what) = match p.built {
            true => (format!("{:.1} s", p.seconds), "built"),
            false => ("-".to_string(), "existing package used"),
        };
        text.push_str(&format!("| `{name}` | {subdir} | {size} | {time} | {what} |\n"));
    }
    text.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .map_err(|e| miette::miette!("cannot write the summary to {}: {e}", file.display()))?;
    f.write_all(text.as_bytes()).into_diagnostic()
}
