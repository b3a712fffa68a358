//! What each subcommand does, on top of the library modules.

use std::path::{Path, PathBuf};

use miette::{miette, IntoDiagnostic, Result};
use rattler_conda_types::Subdir;

use crate::cli::{BuildArgs, Cli, Command};
use crate::execute::{build_all, BuildOptions};
use crate::recipe::jinja::Platforms;
use crate::{plan, recipe, render, ui};

/// Run the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Build(args) => build(args),
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

    if !args.channels.is_empty() {
        tracing::warn!("--channel is accepted but not used yet: kiln does not resolve build/host environments yet");
    }
    if !args.variant_configs.is_empty() {
        tracing::warn!("--variant-config is accepted but not used yet: kiln does not expand variants yet");
    }
    if args.experimental {
        tracing::debug!("experimental features enabled");
    }

    let recipe_path = recipe::resolve_path(&args.recipe)?;
    let recipe = recipe::load(&recipe_path, platforms, &Default::default())?;
    let planned = plan::plan(&recipe, platforms)?;

    let output_dir = absolute(&args.output_dir, !args.render_only)?;
    let opts = BuildOptions {
        output_dir: output_dir.clone(),
        format: args.package_format,
        platforms,
        keep_build: args.keep_build,
        timestamp: build_timestamp(&recipe.dir, &output_dir)?,
    };

    if args.render_only {
        let all: Vec<_> = planned
            .iter()
            .map(|p| render::rendered_output(&recipe, &planned, p, &opts, None))
            .collect();
        println!("{}", serde_json::to_string_pretty(&all).into_diagnostic()?);
        return Ok(());
    }
    if planned.is_empty() {
        tracing::warn!(
            "every output of {} is skipped; nothing to build",
            recipe.file.path.display()
        );
        return Ok(());
    }
    let written = build_all(&recipe, &planned, &opts)?;
    ui::finish();
    eprintln!("kiln built {} package(s) into {}", written.len(), output_dir.display());
    Ok(())
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
        return v
            .trim()
            .parse()
            .map_err(|_| miette!("SOURCE_DATE_EPOCH must be an integer number of seconds, got `{v}`"));
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
