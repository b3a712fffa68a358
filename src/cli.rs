//! Command-line interface, compatible with rattler-build's common flags.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::package::archive::PackageFormat;

/// kiln builds conda packages from v1 recipes (`recipe.yaml`), fast and reproducibly.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Show more log output (-v: debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// How log lines look: `fancy` (a spinner on a terminal), `plain` or `json` (one object per line).
    #[arg(long, global = true, value_enum, default_value = "fancy")]
    pub log_style: crate::ui::LogStyle,
    /// Color log lines and errors: `always`, `never` or `auto` (on a terminal; honors `NO_COLOR`,
    /// `CLICOLOR`, `CLICOLOR_FORCE`).
    #[arg(long, global = true, value_enum, default_value = "auto")]
    pub color: crate::ui::Color,
    /// Wrap error messages at the terminal width (default: no, so that `file:line:column` paths stay
    /// whole and greppable).
    #[arg(long, global = true, value_name = "true|false")]
    pub wrap_log_lines: Option<bool>,
    /// Read this configuration file (rattler's `config.toml` format) instead of the default ones
    /// (`~/.config/kiln/config.toml`, `~/.kiln/config.toml`, the shared `rattler/config.toml`).
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "no_config")]
    pub config_file: Option<PathBuf>,
    /// Read no configuration file.
    #[arg(long, global = true)]
    pub no_config: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// kiln's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the packages of a recipe into an indexed output channel.
    Build(Box<BuildArgs>),
    /// Set up one output's build (work directory, environments, script) without running its script.
    Debug(Box<DebugArgs>),
    /// Write the changes made in a work directory as a patch the recipe can list under `patches`.
    CreatePatch(CreatePatchArgs),
    /// Build, then put the packages built into a channel (a directory, file://, quetz://, artifactory://).
    Publish(Box<PublishArgs>),
    /// Put package files into a channel (a directory, file://, quetz://, artifactory://).
    Upload(UploadArgs),
    /// Inspect or clean the staging cache.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Run the tests stored in a package (built by kiln, rattler-build or conda-build).
    Test(TestArgs),
    /// Inspect or extract a package file (`.conda` or `.tar.bz2`, from any tool).
    #[command(subcommand)]
    Package(PackageCommand),
    /// Print a shell completion script (e.g. `kiln completion bash > ~/.local/share/bash-completion/completions/kiln`).
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `kiln debug` options: those of `kiln build`, and which output.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  kiln debug --recipe recipe.yaml --output libfoo -c conda-forge")]
pub struct DebugArgs {
    /// The output to set up (default: the recipe's only output).
    #[arg(long, value_name = "NAME")]
    pub output: Option<String>,
    /// As for `kiln build`.
    #[command(flatten)]
    pub build: BuildArgs,
}

/// Where `kiln publish` and `kiln upload` put packages.
#[derive(Debug, Args)]
pub struct PublishTo {
    /// The channel: a directory or file:///path (copied in, then indexed), quetz://HOST/CHANNEL or
    /// artifactory://HOST/CHANNEL (`quetz+http://` and `artifactory+http://` with --allow-insecure-host HOST).
    #[arg(long, value_name = "CHANNEL")]
    pub to: String,
    /// The API key or token for a channel server (default: rattler's credentials store).
    #[arg(long, env = "KILN_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Replace a different package of the same file name in the channel.
    #[arg(long)]
    pub force: bool,
}

/// `kiln publish` options: where to, and those of `kiln build`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  kiln publish --recipe recipe.yaml --to file:///srv/channel --build-number +1\n  kiln publish -r recipe.yaml --to quetz://quetz.example.com/mychannel"
)]
pub struct PublishArgs {
    /// Package files (`.conda`, `.tar.bz2`) to publish as they are, and recipes (files or
    /// directories) to build and publish, as rattler-build's `publish` takes them. (Write
    /// `--skip-existing=VALUE` with `=` before them: a bare `--skip-existing` would take the next
    /// argument as its value.)
    #[arg(value_name = "PACKAGE_OR_RECIPE")]
    pub items: Vec<PathBuf>,
    /// Where the packages go.
    #[command(flatten)]
    pub to: PublishTo,
    /// As for `kiln build`; a local target channel is also searched first and counted by `--build-number +N`.
    #[command(flatten)]
    pub build: BuildArgs,
}

/// `kiln upload` options.
#[derive(Debug, Args)]
pub struct UploadArgs {
    /// The package files.
    #[arg(required = true)]
    pub packages: Vec<PathBuf>,
    /// Where they go.
    #[command(flatten)]
    pub to: PublishTo,
    /// Allow plain HTTP to HOST (repeatable).
    #[arg(long, value_name = "HOST")]
    pub allow_insecure_host: Vec<String>,
}

/// `kiln create-patch` options.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  kiln create-patch --directory output/bld/kiln_foo/work --name fix-build --add 'src/*.c'"
)]
pub struct CreatePatchArgs {
    /// The work directory (set up by `kiln debug`, or kept by a failed or `--keep-build` build).
    #[arg(long)]
    pub directory: PathBuf,
    /// The patch file's name, without `.patch`, written next to the recipe.
    #[arg(long, default_value = "changes")]
    pub name: String,
    /// Leave out changed files matching GLOB. Repeatable.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Add new files matching GLOB (new files are left out otherwise: builds make many). Repeatable.
    #[arg(long, value_name = "GLOB")]
    pub add: Vec<String>,
    /// Consider only files matching GLOB. Repeatable.
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Print the patch instead of writing it.
    #[arg(long)]
    pub dry_run: bool,
    /// Replace an existing patch file of that name.
    #[arg(long)]
    pub overwrite: bool,
}

/// `kiln package` subcommands.
#[derive(Debug, Subcommand)]
pub enum PackageCommand {
    /// Print a package's metadata, dependencies and files.
    Inspect {
        /// The package file.
        file: PathBuf,
        /// Print JSON (`index`, `about`, `paths`, `size`, `sha256`).
        #[arg(long)]
        json: bool,
    },
    /// Extract a package into a new or empty directory.
    Extract {
        /// The package file.
        file: PathBuf,
        /// Where to extract it.
        dir: PathBuf,
    },
}

/// `kiln test` options.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  kiln test --package-file output/linux-64/foo-1.0-h123_0.conda -c conda-forge")]
pub struct TestArgs {
    /// The package to test (`.conda` or `.tar.bz2`).
    #[arg(short, long)]
    pub package_file: PathBuf,
    /// Channels for the test environments, after a channel holding only the package. Default: the
    /// configuration's `default-channels`, else conda-forge.
    #[arg(short = 'c', long = "channel")]
    pub channels: Vec<String>,
    /// Run only the test with this index (from 0, in the package's order).
    #[arg(long)]
    pub test_index: Option<usize>,
}

/// `kiln cache` subcommands.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// List staging cache entries (name, key, size, age, last used).
    List(CacheArgs),
    /// Remove staging cache entries (all, or those not used for a while).
    Clean {
        /// Where the cache is.
        #[command(flatten)]
        cache: CacheArgs,
        /// Only remove entries not used for this long (e.g. `30m`, `12h`, `7d`).
        #[arg(long, value_parser = parse_age)]
        older_than: Option<u64>,
    },
}

/// Where the staging cache lives.
#[derive(Debug, Args)]
pub struct CacheArgs {
    /// Output directory whose `build_cache/` to use.
    #[arg(long, env = "CONDA_BLD_PATH", default_value = "output")]
    pub output_dir: PathBuf,
    /// Use this staging cache directory instead of `<output-dir>/build_cache`.
    #[arg(long, env = "KILN_STAGING_CACHE_DIR")]
    pub staging_cache_dir: Option<PathBuf>,
}

impl CacheArgs {
    /// The cache directory these arguments name.
    pub fn dir(&self) -> PathBuf {
        self.staging_cache_dir
            .clone()
            .unwrap_or_else(|| self.output_dir.join("build_cache"))
    }
}

/// Parse `90s`, `30m`, `12h`, `7d` (or plain seconds) into seconds.
fn parse_age(s: &str) -> Result<u64, String> {
    let (num, unit) = s
        .trim()
        .split_at(s.trim().find(|c: char| !c.is_ascii_digit()).unwrap_or(s.trim().len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not an age like 30m, 12h or 7d"))?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 7 * 86400,
        _ => return Err(format!("unknown unit in `{s}`: use s, m, h, d or w")),
    };
    n.checked_mul(factor)
        .filter(|s| i64::try_from(*s).is_ok())
        .ok_or_else(|| format!("`{s}` is too long an age"))
}

/// `kiln build` options.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  kiln build --recipe examples/hello\n  kiln build -r recipe.yaml --output-dir out --package-format tar.bz2\n  kiln build -r recipe.yaml --render-only"
)]
pub struct BuildArgs {
    /// Recipe file, or a directory containing `recipe.yaml` (default: `.`). Repeatable: the
    /// recipes build in one run, a recipe whose packages another needs first.
    #[arg(short = 'r', long = "recipe", value_name = "RECIPE")]
    pub recipes: Vec<PathBuf>,

    /// Build every `recipe.yaml` below DIR (hidden directories and the output directory are not
    /// searched), in dependency order. Repeatable.
    #[arg(long = "recipe-dir", value_name = "DIR")]
    pub recipe_dirs: Vec<PathBuf>,

    /// Build only the outputs named NAME and the outputs (of any of the recipes) they need to build
    /// and test.
    #[arg(long, value_name = "NAME")]
    pub up_to: Option<String>,

    /// When a recipe fails, go on with the recipes that do not need its packages; the run still
    /// fails, and ends with a list of what was not built and why.
    #[arg(long)]
    pub continue_on_failure: bool,

    /// Where packages (`<dir>/<subdir>/`) and build directories (`<dir>/bld/`) go.
    #[arg(long, env = "CONDA_BLD_PATH", default_value = "output")]
    pub output_dir: PathBuf,

    /// Archive format of the packages, with an optional compression level:
    /// `conda`, `tar.bz2`, `conda:19`, `tar.bz2:1`, `conda:max` (zstd levels
    /// -7..22, default 15; bzip2 1..9, default 9). Default: the configuration's
    /// `build.package-format`, else `conda`.
    #[arg(long)]
    pub package_format: Option<PackageFormat>,

    /// zstd worker threads for `.conda` packages (default: all cores).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub compression_threads: Option<u32>,

    /// Platform to build packages for (default: this machine's).
    #[arg(long)]
    pub target_platform: Option<String>,

    /// Platform of the host environment (default: the target platform).
    #[arg(long)]
    pub host_platform: Option<String>,

    /// Platform the build runs on (default: this machine's).
    #[arg(long)]
    pub build_platform: Option<String>,

    /// Let `url` and `git` sources from HOST use plain HTTP or a TLS certificate
    /// that does not verify (repeatable).
    #[arg(long, value_name = "HOST")]
    pub allow_insecure_host: Vec<String>,

    /// Which packages to test after building them: `skip`, `native` (what this machine can run; noarch
    /// always) or `native-and-emulated` (no emulation yet: like native, with a message).
    #[arg(long, value_enum, default_value = "native")]
    pub test: crate::testing::Strategy,

    /// Fail when a binary file of a package contains the build prefix (it would need binary
    /// relocation, which pads strings and breaks some formats).
    #[arg(long)]
    pub error_prefix_in_binary: bool,

    /// Append a Markdown table of the packages (built or reused, with sizes and times) to FILE,
    /// e.g. `$GITHUB_STEP_SUMMARY`.
    #[arg(long, value_name = "FILE")]
    pub markdown_summary: Option<PathBuf>,

    /// Build number of every output: N, or +N for N more than the highest build of the same name
    /// and version in the output directory (the recipe's number when there is none).
    #[arg(long = "build-number", visible_alias = "build-num", value_name = "N|+N")]
    pub build_number: Option<crate::plan::BuildNumber>,

    /// Put PREFIX in front of every output's build string (e.g. `cuda_` gives `cuda_h1234_0`).
    #[arg(long, value_name = "PREFIX", value_parser = crate::plan::parse_prefix)]
    pub build_string_prefix: Option<String>,

    /// How channels rank when solving: `strict` takes a package from the first channel that has it,
    /// `disabled` takes the best version from any channel.
    #[arg(long, value_enum, default_value = "strict")]
    pub channel_priority: ChannelPriority,

    /// Leave out channel packages built after CUTOFF: an RFC 3339 timestamp, a date (the whole day,
    /// UTC) or a duration before now (`7d`). Packages in the output directory are always used.
    /// Default: the configuration's `exclude-newer`.
    #[arg(long, value_name = "CUTOFF", value_parser = parse_cutoff)]
    pub exclude_newer: Option<jiff::Timestamp>,

    /// Do not store the recipe (`info/recipe/`) in the packages.
    #[arg(long)]
    pub no_include_recipe: bool,

    /// Add `KEY=VALUE` to the `extra` section of each package's `info/about.json`. Repeatable.
    #[arg(long = "extra-meta", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub extra_meta: Vec<(String, String)>,

    /// Do not build an output whose package (same name, version and build string) already
    /// exists: `local` in the output directory, `all` in any channel; `none` builds everything.
    /// Dependants use the existing package. Without a value: `local`.
    #[arg(long, value_enum, num_args = 0..=1, default_value = "none", default_missing_value = "local")]
    pub skip_existing: SkipExisting,

    /// Do not rebuild an output whose inputs (staging key, rendered recipe, resolved environments,
    /// sources, recipe files, kiln version) all match the package already in the output
    /// directory, intact by its recorded checksum. The log says why each output is rebuilt or not.
    #[arg(long)]
    pub skip_unchanged: bool,

    /// Accept absolute paths in `about.license_file` (read from anywhere on this machine).
    #[arg(long)]
    pub allow_absolute_license_paths: bool,

    /// Do not run the recipe's tests (same as `--test skip`).
    #[arg(long)]
    pub no_test: bool,

    /// Enable experimental features.
    #[arg(long, env = "KILN_EXPERIMENTAL")]
    pub experimental: bool,

    /// Print the rendered outputs as JSON and stop (nothing is written to disk).
    #[arg(long)]
    pub render_only: bool,

    /// With --render-only: solve the build and host environments and show the resolved packages and run requirements.
    #[arg(long, requires = "render_only")]
    pub with_solve: bool,

    /// Accepted for rattler-build compatibility: kiln's build directories never carry a build id.
    #[arg(long)]
    pub no_build_id: bool,

    /// Keep the build directories (`<output>/bld/`) after a successful build.
    #[arg(long)]
    pub keep_build: bool,

    /// Channels to resolve build/host requirements from, in priority order: a name (conda-forge), an
    /// http(s):// or file:// URL, or a directory. Default: the configuration's `default-channels`,
    /// else conda-forge. The output directory is always searched first.
    #[arg(short = 'c', long = "channel")]
    pub channels: Vec<String>,

    /// Variant configuration files (variants.yaml or conda_build_config.yaml format), applied after the
    /// recipe's own `variants.yaml`; later files replace keys of earlier ones. Repeatable.
    #[arg(short = 'm', long = "variant-config")]
    pub variant_configs: Vec<PathBuf>,

    /// Set a variant key from the command line, e.g. `--variant python=3.11,3.12` (values are strings;
    /// applied after every variant file). Repeatable.
    #[arg(long = "variant", value_name = "KEY=VALUES")]
    pub variant_overrides: Vec<String>,

    /// Do not read `variants.yaml` / `conda_build_config.yaml` next to the recipe.
    #[arg(long)]
    pub ignore_recipe_variants: bool,

    /// Keep the staging cache here instead of `<output-dir>/build_cache` (so it is not uploaded with the channel).
    #[arg(long, env = "KILN_STAGING_CACHE_DIR")]
    pub staging_cache_dir: Option<PathBuf>,

    /// Fail when files a staging output produced end up in no package.
    #[arg(long)]
    pub error_unused_staging_files: bool,

    /// Fail when two outputs package the same file.
    #[arg(long)]
    pub error_overlapping_files: bool,

    /// `kiln publish`'s local target channel: searched first, after the output directory, and
    /// counted by `--build-number +N`.
    #[arg(skip)]
    pub publish_channel: Option<PathBuf>,
}

/// `--skip-existing`: where an existing package counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SkipExisting {
    /// Build every output.
    None,
    /// Skip outputs whose package is in the output directory.
    Local,
    /// Skip outputs whose package is in the output directory or any channel.
    All,
}

/// `KEY=VALUE`, with a non-empty key.
fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

/// `--channel-priority`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ChannelPriority {
    /// A package comes from the first channel that has it.
    Strict,
    /// The best version of a package, from any channel.
    Disabled,
}

impl From<ChannelPriority> for rattler_solve::ChannelPriority {
    fn from(p: ChannelPriority) -> Self {
        match p {
            ChannelPriority::Strict => rattler_solve::ChannelPriority::Strict,
            ChannelPriority::Disabled => rattler_solve::ChannelPriority::Disabled,
        }
    }
}

/// An `--exclude-newer` cutoff, resolved to a point in time now.
fn parse_cutoff(s: &str) -> Result<jiff::Timestamp, String> {
    let cutoff: rattler_config::config::exclude_newer::ExcludeNewerCutoff = s.parse().map_err(|e| format!("{e}"))?;
    cutoff.resolve(jiff::Timestamp::now()).map_err(|e| format!("{e}"))
}
