//! Command-line interface, compatible with rattler-build's common flags.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::package::archive::Format;

/// kiln builds conda packages from v1 recipes (`recipe.yaml`), fast and reproducibly.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Show more log output (-v: debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// kiln's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the packages of a recipe into an indexed output channel.
    Build(BuildArgs),
}

/// `kiln build` options.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  kiln build --recipe examples/hello\n  kiln build -r recipe.yaml --output-dir out --package-format tar.bz2\n  kiln build -r recipe.yaml --render-only"
)]
pub struct BuildArgs {
    /// Recipe file, or a directory containing `recipe.yaml`.
    #[arg(short, long, default_value = ".")]
    pub recipe: PathBuf,

    /// Where packages (`<dir>/<subdir>/`) and build directories (`<dir>/bld/`) go.
    #[arg(long, env = "CONDA_BLD_PATH", default_value = "output")]
    pub output_dir: PathBuf,

    /// Archive format of the packages.
    #[arg(long, value_enum, default_value = "conda")]
    pub package_format: Format,

    /// Platform to build packages for (default: this machine's).
    #[arg(long)]
    pub target_platform: Option<String>,

    /// Platform of the host environment (default: the target platform).
    #[arg(long)]
    pub host_platform: Option<String>,

    /// Platform the build runs on (default: this machine's).
    #[arg(long)]
    pub build_platform: Option<String>,

    /// Enable experimental features.
    #[arg(long, env = "KILN_EXPERIMENTAL")]
    pub experimental: bool,

    /// Print the rendered outputs as JSON and stop (nothing is written to disk).
    #[arg(long)]
    pub render_only: bool,

    /// Accepted for rattler-build compatibility: kiln's build directories never carry a build id.
    #[arg(long)]
    pub no_build_id: bool,

    /// Keep the build directories (`<output>/bld/`) after a successful build.
    #[arg(long)]
    pub keep_build: bool,

    /// Channels to resolve dependencies from (not used yet: environments are not resolved).
    #[arg(short = 'c', long = "channel")]
    pub channels: Vec<String>,

    /// Variant configuration files (not used yet: variants are not expanded).
    #[arg(short = 'm', long = "variant-config")]
    pub variant_configs: Vec<PathBuf>,
}
