//! rattler's configuration files (`config.toml`, the format pixi and
//! rattler-build read): which files apply (`--config-file`, `--no-config`,
//! or the default locations), the keys kiln supports, and what they set.
//! A key kiln does not support is an error at its line, never ignored.

use std::path::{Path, PathBuf};

use miette::{miette, Result};
use rattler_config::config::{ConfigBase, NoExtension};

use crate::package::archive::{Format, PackageFormat};

/// The keys kiln reads; any other key is "not supported yet".
const SUPPORTED: &[&str] = &[
    "default-channels",
    "mirrors",
    "build",
    "exclude-newer",
    "authentication-override-file",
];

/// The snake_case spellings rattler accepts for supported keys.
const ALIASES: &[&str] = &["default_channels", "authentication_override_file"];

/// What the configuration files set.
#[derive(Debug, Default)]
pub struct Settings {
    /// `default-channels`: the channels when no `-c` is given.
    pub default_channels: Option<Vec<String>>,
    /// `[build] package-format`: the format when `--package-format` is not given.
    pub package_format: Option<PackageFormat>,
    /// `exclude-newer`: the cutoff when `--exclude-newer` is not given.
    pub exclude_newer: Option<jiff::Timestamp>,
    /// The files read, lowest precedence first.
    pub files: Vec<PathBuf>,
}

/// The files that apply: FILE alone with `--config-file FILE`, none with
/// `--no-config`, else those of rattler's default locations for kiln that
/// exist (`/etc/rattler/`, `/etc/kiln/`, `~/.config/rattler/`,
/// `~/.config/kiln/`, `$KILN_HOME` or `~/.kiln/`).
pub fn files(config_file: Option<&Path>, no_config: bool) -> Result<Vec<PathBuf>> {
    if no_config {
        return Ok(Vec::new());
    }
    if let Some(file) = config_file {
        if !file.is_file() {
            miette::bail!(
                help = "pass the path of a config.toml, or drop --config-file",
                "--config-file {}: no such file",
                file.display()
            );
        }
        return Ok(vec![file.to_path_buf()]);
    }
    Ok(rattler_config::locations::config_search_paths("kiln")
        .into_iter()
        .map(|l| l.path)
        .filter(|p| p.is_file())
        .collect())
}

/// Read `files` (later ones win), refusing keys kiln does not support,
/// and set up the network from them (mirrors, the credentials file).
pub fn load(files: &[PathBuf]) -> Result<Settings> {
    for file in files {
        check(file)?;
    }
    let config = ConfigBase::<NoExtension>::load_from_files(files)
        .map_err(|e| miette!("cannot read the configuration ({}): {e}", list(files)))?;
    let common = &config.common;
    if let Some(exclude) = &common.exclude_newer {
        if !exclude.exemptions.is_empty() {
            miette::bail!(
                help = "keep only the cutoff (`exclude-newer = \"7d\"`)",
                "{}: `exclude-newer` exemptions are not supported yet",
                list(files)
            );
        }
    }
    for (from, to) in &common.mirrors {
        for url in std::iter::once(from).chain(to) {
            crate::redact::register_url(url.as_str());
        }
    }
    crate::net::configure(crate::net::Settings {
        mirrors: common
            .mirrors
            .iter()
            .map(|(from, to)| (from.clone(), to.clone()))
            .collect(),
        auth_file: common.authentication_override_file.clone(),
    });
    if let Some(p) = &common.build.package_format {
        let valid = match p.archive_type {
            rattler_conda_types::package::CondaArchiveType::Conda => p.compression_level.to_zstd_level().map(drop),
            rattler_conda_types::package::CondaArchiveType::TarBz2 => p.compression_level.to_bzip2_level().map(drop),
        };
        valid.map_err(|e| miette!("{}: build.package-format: {e}", list(files)))?;
    }
    let exclude_newer = common
        .exclude_newer
        .as_ref()
        .map(|e| e.cutoff.resolve(jiff::Timestamp::now()))
        .transpose()
        .map_err(|e| miette!("{}: exclude-newer: {e}", list(files)))?;
    Ok(Settings {
        default_channels: common
            .default_channels
            .as_ref()
            .map(|c| c.iter().map(|c| c.to_string()).collect()),
        package_format: common.build.package_format.as_ref().map(|p| PackageFormat {
            format: match p.archive_type {
                rattler_conda_types::package::CondaArchiveType::Conda => Format::Conda,
                rattler_conda_types::package::CondaArchiveType::TarBz2 => Format::TarBz2,
            },
            level: p.compression_level,
        }),
        exclude_newer,
        files: files.to_vec(),
    })
}

/// Refuse the keys of `file` that kiln does not support, and those that
/// are no configuration key at all (typos, nested ones too), naming the line.
fn check(file: &Path) -> Result<()> {
    let text = fs_err::read_to_string(file).map_err(|e| miette!("{e}"))?;
    let (_, unknown) = ConfigBase::<NoExtension>::from_toml_str(&text)
        .map_err(|e| miette!("{}: not a valid configuration: {e}", file.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| miette!("{}: not valid TOML: {e}", file.display()))?;
    let help = || {
        format!(
            "kiln reads {}; remove the key, or pass --no-config to build without configuration files",
            SUPPORTED.join(", ")
        )
    };
    if let Some(key) = unknown.iter().next() {
        miette::bail!(
            help = help(),
            "{}{}: `{key}` is not a configuration key",
            file.display(),
            line_of(&text, key.rsplit('.').next().unwrap_or(key))
        );
    }
    if let Some(key) = table
        .keys()
        .find(|k| !SUPPORTED.contains(&k.as_str()) && !ALIASES.contains(&k.as_str()))
    {
        miette::bail!(
            help = help(),
            "{}{}: configuration key `{key}` is not supported yet",
            file.display(),
            line_of(&text, key)
        );
    }
    Ok(())
}

/// `:LINE` of the first line that sets or opens `key`, if any.
fn line_of(text: &str, key: &str) -> String {
    text.lines()
        .position(|l| {
            let l = l.trim_start().trim_start_matches('[').trim_start_matches('"');
            l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(['=', ']', '"', '.']))
        })
        .map_or(String::new(), |i| format!(":{}", i + 1))
}

fn list(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
