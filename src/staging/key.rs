//! The staging cache key: a SHA-256 over everything that changes what a
//! staging build produces, and over nothing that differs between two runs
//! of an unchanged recipe (no build directories, no timestamps, no secret
//! values).
//!
//! The inputs: kiln's cache format and build logic versions, the staging
//! output's name and `PKG_VERSION`, its script and `script.env`, the names
//! of its secrets, its requirements and their resolved packages,
//! `ignore_run_exports`, the variant values it uses, the platforms, the
//! content of its sources, the content of every file in the recipe
//! directory (the script may read them through `$RECIPE_DIR`; the recipe
//! file and the variant files are left out, their effect is in the other
//! inputs), and the key of the staging output it inherits from.

use std::collections::BTreeMap;
use std::path::Path;

use miette::{IntoDiagnostic, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::build::sources::{git, url, walk_dir_source, walk_inputs};
use crate::disk::file_sha256;
use crate::environment::resolve::PackageRef;
use crate::recipe::model::{PathSource, Source};
use crate::recipe::Recipe;

/// Bumped whenever the layout or meaning of cache entries changes.
pub const CACHE_FORMAT_VERSION: u32 = 6;

/// Bumped whenever kiln changes how it runs a staging build (the script's
/// environment, activation, how files are captured), so that entries
/// built the old way are not reused.
pub const BUILD_LOGIC_VERSION: u32 = 2;

/// Files next to a recipe that kiln itself reads; their effect on a
/// staging build is already in the key through the variant values.
const VARIANT_FILES: &[&str] = &["variants.yaml", "conda_build_config.yaml"];

/// The inputs of a staging cache key, stored in `metadata.json` so a miss
/// can say which one changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyInputs {
    /// kiln's cache format.
    pub format: u32,
    /// kiln's staging build logic ([`BUILD_LOGIC_VERSION`]).
    pub build_logic: u32,
    /// The staging output's name.
    pub name: String,
    /// `PKG_VERSION` as the staging script sees it.
    pub version: String,
    /// The staging script, as it will run.
    pub script: String,
    /// `script.env`.
    pub script_env: BTreeMap<String, String>,
    /// Names of forwarded secrets (never their values).
    pub secrets: Vec<String>,
    /// Build requirements.
    pub build_requirements: Vec<String>,
    /// Host requirements.
    pub host_requirements: Vec<String>,
    /// The resolved build environment (name, version, build, SHA-256).
    pub build_packages: Vec<PackageRef>,
    /// The resolved host environment (name, version, build, SHA-256).
    pub host_packages: Vec<PackageRef>,
    /// `ignore_run_exports`, as JSON.
    pub ignore_run_exports: serde_json::Value,
    /// Variant values the staging output uses.
    pub variant: BTreeMap<String, String>,
    /// Target platform.
    pub target_platform: String,
    /// Host platform.
    pub host_platform: String,
    /// Build platform.
    pub build_platform: String,
    /// Sources with the hash of their content.
    pub sources: Vec<SourceKey>,
    /// SHA-256 of each file in the recipe directory, by relative path.
    pub recipe_files: BTreeMap<String, String>,
    /// Key of the staging output this one restores first (nested staging).
    pub parent_key: Option<String>,
}

/// A source as it enters the key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceKey {
    /// The source as written in the recipe (for a `url` source, without
    /// its URLs: mirrors serve the same bytes, the checksum says which).
    pub source: serde_json::Value,
    /// What lands in the work directory: SHA-256 over the files, modes and
    /// symlink targets of a `path` source, the SHA-256 of a `url` download,
    /// the resolved commit of a `git` source.
    pub content: String,
    /// Each patch with the SHA-256 of its file (`None` for a patch that an
    /// earlier source brings, which that source's content covers).
    pub patches: Vec<(String, Option<String>)>,
}

impl KeyInputs {
    /// The key: hex SHA-256 of the inputs' canonical JSON.
    pub fn key(&self) -> String {
        let json = serde_json::to_vec(self).expect("key inputs serialize");
        hex::encode(Sha256::digest(json))
    }

    /// Human-readable names of the inputs that differ from `other`.
    pub fn changed_since(&self, other: &KeyInputs) -> Vec<String> {
        let mut changed = Vec::new();
        let mut check = |differs: bool, what: &str| {
            if differs {
                changed.push(what.to_string());
            }
        };
        check(self.format != other.format, "kiln's cache format");
        check(self.build_logic != other.build_logic, "kiln's build logic");
        check(
            self.version != other.version,
            &format!("the version ({} → {})", other.version, self.version),
        );
        check(self.script != other.script, "the staging script");
        check(
            self.script_env != other.script_env || self.secrets != other.secrets,
            "the script environment",
        );
        check(
            self.build_requirements != other.build_requirements,
            "build requirements",
        );
        check(self.host_requirements != other.host_requirements, "host requirements");
        check(
            self.build_packages != other.build_packages,
            "the resolved build environment",
        );
        check(
            self.host_packages != other.host_packages,
            "the resolved host environment",
        );
        check(
            self.ignore_run_exports != other.ignore_run_exports,
            "ignore_run_exports",
        );
        check(self.variant != other.variant, "variant values");
        check(
            self.target_platform != other.target_platform
                || self.host_platform != other.host_platform
                || self.build_platform != other.build_platform,
            "platforms",
        );
        check(self.sources != other.sources, "sources");
        check(
            self.parent_key != other.parent_key,
            "the staging output it inherits from",
        );
        let files = changed_files(&other.recipe_files, &self.recipe_files);
        if !files.is_empty() {
            changed.push(format!("files in the recipe directory ({})", files.join(", ")));
        }
        changed
    }
}

/// `a.txt changed`, `b.txt added`, `c.txt removed` (at most 5, then a count).
fn changed_files(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (path, hash) in new {
        match old.get(path) {
            None => out.push(format!("{path} added")),
            Some(h) if h != hash => out.push(format!("{path} changed")),
            _ => {}
        }
    }
    out.extend(
        old.keys()
            .filter(|p| !new.contains_key(*p))
            .map(|p| format!("{p} removed")),
    );
    if out.len() > 5 {
        let more = out.len() - 5;
        out.truncate(5);
        out.push(format!("{more} more"));
    }
    out
}

/// SHA-256 of every file in the recipe directory (through symlinks),
/// except the recipe file, the variant files next to it, `.git`
/// and anything below `exclude` (the output and staging cache directories,
/// when they are nested inside the recipe directory, and the path sources,
/// which are hashed as sources) or in another kiln output or cache
/// directory (see [`walk_inputs`]).
pub fn recipe_files(recipe: &Recipe, exclude: &[&Path]) -> Result<BTreeMap<String, String>> {
    let recipe_file = std::fs::canonicalize(&recipe.file.path).unwrap_or_else(|_| recipe.file.path.clone());
    let mut files = Vec::new();
    for entry in walk_inputs(&recipe.dir, exclude) {
        // Broken links and link loops are no input; neither is what we may not read.
        let Ok((path, rel, is_dir)) = entry else {
            continue;
        };
        if is_dir {
            continue;
        }
        let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if canonical == recipe_file
            || (rel.parent() == Some(Path::new("")) && VARIANT_FILES.iter().any(|v| rel == Path::new(v)))
        {
            continue;
        }
        files.push((path, rel));
    }
    // Through links (a script reads what they point to); a file that
    // vanishes meanwhile (another run's scratch file) is no input either.
    Ok(files
        .par_iter()
        .filter_map(|(path, rel)| Some((rel.to_string_lossy().into_owned(), file_sha256(path).ok()?)))
        .collect())
}

/// Hash the sources of a staging output as they would land in the work
/// dir. A `url` source without a checksum is downloaded (into the source
/// cache) to learn it; a `git` reference is resolved to its commit.
pub fn source_keys(
    recipe: &Recipe,
    sources: &[Source],
    output_dir: &Path,
    insecure: &[String],
) -> Result<Vec<SourceKey>> {
    sources
        .iter()
        .map(|s| {
            let mut source = serde_json::to_value(s).into_diagnostic()?;
            // Credentials in a URL are no input (and must not be stored).
            crate::redact::mask_json(&mut source);
            let content = match s {
                Source::Path(p) => path_source_hash(recipe, p, output_dir)?,
                Source::Url(u) => {
                    if let serde_json::Value::Object(m) = &mut source {
                        m.remove("url");
                        // The name decides extraction and where the file lands.
                        m.insert("file_name".into(), url::file_name(u).into());
                    }
                    match &u.sha256 {
                        Some(sha) if !sha.is_empty() => sha.clone(),
                        _ => {
                            let where_ = recipe.file.location(&u.span);
                            url::obtain(u, &where_, insecure)?.sha256
                        }
                    }
                }
                Source::Git(g) => git::resolve(g, &recipe.dir, &recipe.file.location(&g.span), insecure)?,
            };
            let patches = s
                .patches()
                .iter()
                .map(|p| {
                    let in_recipe = recipe.dir.join(p);
                    let hash = in_recipe.is_file().then(|| file_sha256(&in_recipe)).transpose()?;
                    Ok((p.display().to_string(), hash))
                })
                .collect::<Result<_>>()?;
            Ok(SourceKey {
                source,
                content,
                patches,
            })
        })
        .collect()
}

fn path_source_hash(recipe: &Recipe, src: &PathSource, output_dir: &Path) -> Result<String> {
    let from = recipe.dir.join(&src.path);
    let meta = fs_err::metadata(&from).into_diagnostic()?;
    if meta.is_file() {
        return file_sha256(&from);
    }
    // Only what lands in the work directory: the `filter` applies (and,
    // being part of the source, is in the key itself).
    let mut selector = crate::build::sources::selector(recipe, &src.filter)?;
    let entries: Vec<_> = walk_dir_source(&from, src.use_gitignore, &[output_dir])
        .filter(|e| match e {
            Ok((_, rel, is_dir)) => *is_dir || selector.select(&rel.to_string_lossy()),
            Err(_) => true,
        })
        .collect::<Result<_>>()?;
    // Hash files in parallel, then fold in a fixed order.
    let parts: Vec<String> = entries
        .par_iter()
        .map(|(path, rel, is_dir)| {
            let rel = rel.to_string_lossy();
            if *is_dir {
                return Ok(format!("d {rel}\n"));
            }
            let m = fs_err::symlink_metadata(path).into_diagnostic()?;
            if m.file_type().is_symlink() {
                let target = fs_err::read_link(path).into_diagnostic()?;
                return Ok(format!("l {rel} {}\n", target.display()));
            }
            use std::os::unix::fs::PermissionsExt;
            let exec = m.permissions().mode() & 0o111 != 0;
            Ok(format!("f {rel} {} {}\n", exec, file_sha256(path)?))
        })
        .collect::<Result<_>>()?;
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
    }
    Ok(hex::encode(h.finalize()))
}
