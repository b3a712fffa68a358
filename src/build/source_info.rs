//! What a work directory's sources were (`source_info.json`, next to the
//! work directory): the recipe, the platforms and variant it was rendered
//! with, whose sources were placed (with the commits and checksums they
//! resolved to), and whether a staging entry was restored under them.
//! `kiln create-patch` reads it to place the same sources again, with their
//! patches, and diff.

use std::path::{Path, PathBuf};

use miette::{miette, IntoDiagnostic, Result};
use serde::{Deserialize, Serialize};

use super::BuildOptions;
use crate::recipe::Recipe;
use crate::syntax::variant::Variant;

/// The file's name, in the build directory.
pub const FILE: &str = "source_info.json";

/// Whose sources were placed into the work directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placed {
    /// A staging output's.
    Staging(String),
    /// A package output's.
    Output(String),
}

/// What a work directory was made from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceInfo {
    /// The recipe file (`<stdin>` for a recipe read from standard input).
    pub recipe: PathBuf,
    /// `--target-platform`.
    pub target_platform: String,
    /// `--build-platform`.
    pub build_platform: String,
    /// `--host-platform`.
    pub host_platform: String,
    /// `--experimental`.
    pub experimental: bool,
    /// The variant the recipe was rendered with.
    pub variant: Variant,
    /// Whose sources were placed.
    pub placed: Placed,
    /// Those sources, finalized (`rev` of a git source, `sha256` of a URL).
    pub finalized: Vec<serde_json::Value>,
    /// A staging entry (files its script made or changed) was restored
    /// into the work directory first: placing the sources again cannot
    /// give what the work directory started from.
    pub restored: bool,
    /// The output directory (never copied by a `path` source).
    pub output_dir: PathBuf,
    /// `--allow-insecure-host`.
    pub allow_insecure_host: Vec<String>,
}

/// Record, in `build_dir`, that `placed`'s sources of `recipe` are in its work directory.
pub fn write(
    build_dir: &Path,
    recipe: &Recipe,
    opts: &BuildOptions,
    placed: Placed,
    finalized: Vec<serde_json::Value>,
    restored: bool,
) -> Result<()> {
    let info = SourceInfo {
        recipe: if recipe.from_stdin {
            PathBuf::from("<stdin>")
        } else {
            std::fs::canonicalize(&recipe.file.path).unwrap_or_else(|_| recipe.file.path.clone())
        },
        target_platform: opts.platforms.target.to_string(),
        build_platform: opts.platforms.build.to_string(),
        host_platform: opts.platforms.host.to_string(),
        experimental: opts.experimental,
        variant: recipe.variant.clone(),
        placed,
        finalized,
        restored,
        output_dir: opts.output_dir.clone(),
        allow_insecure_host: opts.allow_insecure_host.clone(),
    };
    let text = serde_json::to_string_pretty(&info).into_diagnostic()?;
    crate::disk::write_atomic(&build_dir.join(FILE), text.as_bytes())
}

/// The record of the work directory `work_dir`.
pub fn read(work_dir: &Path) -> Result<SourceInfo> {
    let file = work_dir.parent().map(|d| d.join(FILE)).unwrap_or_default();
    let text = fs_err::read_to_string(&file).map_err(|_| {
        miette!(
            help = "pass the `work` directory of a build kiln set up: `kiln debug`, or a build kept with --keep-build or left by a failure",
            "{} is not a work directory kiln set up: there is no {} next to it",
            work_dir.display(),
            FILE
        )
    })?;
    serde_json::from_str(&text).map_err(|e| miette!("{}: {e}", file.display()))
}
