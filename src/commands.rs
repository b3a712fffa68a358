//! What each subcommand does, on top of the library modules.

use std::path::{Path, PathBuf};

use miette::{IntoDiagnostic, Result};

use crate::cli::{CacheCommand, Cli, Command};

/// Run the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    // The configuration files, for the commands that use channels or sources.
    let settings = || crate::config::load(&crate::config::files(cli.config_file.as_deref(), cli.no_config)?);
    let uses_config = matches!(
        cli.command,
        Command::Build(_)
            | Command::Debug(_)
            | Command::Publish(_)
            | Command::Upload(_)
            | Command::Test(_)
            | Command::CreatePatch(_)
    );
    if !uses_config && (cli.config_file.is_some() || cli.no_config) {
        miette::bail!(
            "--config-file and --no-config apply to build, debug, publish, upload, test and create-patch only"
        );
    }
    match cli.command {
        Command::Build(args) => crate::build_command::run(*args, &settings()?),
        Command::Debug(args) => crate::debug_command::run(*args, &settings()?),
        Command::CreatePatch(args) => {
            settings()?;
            crate::patch_command::run(args)
        }
        Command::Publish(args) => publish(*args, &settings()?),
        Command::Upload(args) => {
            settings()?;
            let target = crate::publish::Target::parse(&args.to.to, &args.allow_insecure_host)?;
            let packages = args
                .packages
                .iter()
                .map(|p| crate::package_command::package_file(p))
                .collect::<Result<Vec<_>>>()?;
            crate::publish::publish(&target, &packages, args.to.api_key, args.to.force)
        }
        Command::Cache(cmd) => cache(cmd),
        Command::Test(args) => crate::test_command::run(args, &settings()?),
        Command::Package(cmd) => crate::package_command::run(cmd),
        Command::Completion { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "kiln", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// `kiln publish`: build (a local target searched first and counted by
/// `--build-number +N`), then put the packages built into the target.
fn publish(mut args: crate::cli::PublishArgs, settings: &crate::config::Settings) -> Result<()> {
    let target = crate::publish::Target::parse(&args.to.to, &args.build.allow_insecure_host)?;
    if args.build.render_only {
        miette::bail!("kiln publish builds; use kiln build --render-only to render");
    }
    // Package files are published as they are; anything else is a recipe.
    let (files, recipes): (Vec<PathBuf>, Vec<PathBuf>) = args.items.iter().cloned().partition(|p| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        !p.is_dir() && (name.ends_with(".conda") || name.ends_with(".tar.bz2"))
    });
    let files = files
        .iter()
        .map(|p| crate::package_command::package_file(p))
        .collect::<Result<Vec<_>>>()?;
    args.build.recipes.extend(recipes);
    if !files.is_empty() && args.build.recipes.is_empty() && args.build.recipe_dirs.is_empty() {
        let b = &args.build;
        if b.build_number.is_some() || b.skip_existing != crate::cli::SkipExisting::None || b.skip_unchanged {
            miette::bail!(
                help = "name a recipe too, or drop the build flags",
                "--build-number, --skip-existing and --skip-unchanged apply to recipes; only package files were given"
            );
        }
        return crate::publish::publish(&target, &files, args.to.api_key, args.to.force);
    }
    if let Some(dir) = target.local() {
        // A channel from the start, so the build can search it.
        crate::channel::add_to_channel(dir, &[])?;
        args.build.publish_channel = Some(std::fs::canonicalize(dir).into_diagnostic()?);
    }
    let Some((report, output_dir)) = crate::build_command::build(&args.build, settings)? else {
        return Ok(());
    };
    let mut built = report.local_packages();
    built.extend(files);
    // Publish what there is, even when some recipes failed; then report them.
    let published = match built.is_empty() {
        true => Ok(()),
        false => crate::publish::publish(&target, &built, args.to.api_key, args.to.force),
    };
    report.finish(&output_dir)?;
    published
}

fn cache(cmd: CacheCommand) -> Result<()> {
    use crate::staging::store::{Removal, Store};
    let now = chrono::Utc::now().timestamp();
    match cmd {
        CacheCommand::List(args) => {
            let store = Store::new(args.dir());
            let entries = store.entries();
            if entries.is_empty() {
                crate::ui::print_line(&format!("no staging cache entries in {}", store.root.display()));
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
                        crate::ui::print_line(&format!(
                            "kept staging_{} ({}): a running kiln build is using it",
                            e.meta.key, e.meta.name
                        ));
                        continue;
                    }
                }
                removed += 1;
                freed += e.meta.size_bytes;
            }
            store.sweep();
            crate::ui::print_line(&format!(
                "removed {removed} staging cache entr{} ({})",
                if removed == 1 { "y" } else { "ies" },
                human_bytes(freed)
            ));
            Ok(())
        }
    }
}

fn last_used(dir: &Path) -> Option<i64> {
    let meta = std::fs::metadata(dir.join("metadata.json")).ok()?;
    Some(filetime::FileTime::from_last_modification_time(&meta).unix_seconds())
}

/// `b` bytes for people: `1.5 MiB`.
pub(crate) fn human_bytes(b: u64) -> String {
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
