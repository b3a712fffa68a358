//! `--skip-unchanged`: what each package was made from, recorded next to
//! the output directory's packages, and the check that keeps a package
//! instead of rebuilding it when nothing it was made from changed.
//!
//! An output's inputs are the key of the staging output it inherits (which
//! covers the staging script, environments, sources and its parents), its
//! own rendered recipe (without the build time stamp), its resolved build
//! and host environments (with each package's SHA-256, so a rebuilt sibling
//! counts), its sources, the files of the recipe directory, the build
//! options that decide whether a package is accepted, and kiln's version.
//! The recipe file's text is not an input: editing one output leaves its
//! siblings' packages alone, and their `info/recipe/` keeps the recipe as
//! it was when they were built. Each part is hashed; the record keeps the part hashes (so the
//! log can say which part changed), their digest, the package's SHA-256
//! and the staging files the package took (for the accounting of staging
//! files across outputs). Records live in `<output>/bld/.inputs/<subdir>/`
//! and are written atomically by builds run with `--skip-unchanged`, once
//! the package's tests passed (or were skipped: such a record is not used
//! by a later run that tests). Nothing secret enters them: the parts are
//! hashes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use miette::{IntoDiagnostic, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Built;
use crate::build::BuildOptions;
use crate::environment::resolve::Resolved;
use crate::plan::PlannedOutput;
use crate::staging::Stager;

/// Bumped when the record's layout or what it covers changes.
const RECORD_FORMAT: u32 = 1;

/// What one output is made from: a hash per part, and their digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inputs {
    /// Hash of each part, by name.
    pub parts: BTreeMap<String, String>,
    /// Hash of all parts.
    pub digest: String,
}

/// The record written next to a package.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    format: u32,
    /// The package file name.
    package: String,
    /// SHA-256 of the package file when it was recorded.
    sha256: String,
    inputs: Inputs,
    /// Whether the build ran with `--test skip` (its tests never ran).
    tests_skipped: bool,
    /// Staging files the package took, before any renaming.
    files: Vec<String>,
    /// Keys of the staging entries it was made from.
    staging_keys: Vec<String>,
}

/// What a built package was made from, to be recorded once its tests
/// passed (a package whose tests failed or never ran gets no record).
pub struct Pending {
    path: PathBuf,
    inputs: Inputs,
    files: Vec<String>,
    staging_keys: Vec<String>,
    /// The package's SHA-256 (hex), when the channel index computed it.
    pub sha256: Option<String>,
}

impl Pending {
    /// The record-to-be of `built`, made from `inputs`. The staging part
    /// names the entry actually used.
    pub fn new(built: &Built, mut inputs: Inputs) -> Pending {
        if let Some(key) = built.staging_keys.first() {
            inputs.parts.insert(STAGING.to_string(), key.clone());
            if let Ok(digest) = hash_json(&inputs.parts) {
                inputs.digest = digest;
            }
        }
        Pending {
            path: built.path.clone(),
            inputs,
            files: built.files.clone(),
            staging_keys: built.staging_keys.clone(),
            sha256: None,
        }
    }

    /// Write the record (atomically).
    pub fn write(self, opts: &BuildOptions) -> Result<()> {
        let record = Record {
            format: RECORD_FORMAT,
            package: self.path.file_name().unwrap_or_default().to_string_lossy().into_owned(),
            sha256: match self.sha256 {
                Some(sha256) => sha256,
                None => crate::disk::file_sha256(&self.path)?,
            },
            inputs: self.inputs,
            tests_skipped: opts.test == crate::testing::Strategy::Skip,
            files: self.files,
            staging_keys: self.staging_keys,
        };
        let path = record_path(opts, &self.path);
        fs_err::create_dir_all(path.parent().expect("records live in a directory")).into_diagnostic()?;
        crate::disk::write_atomic(&path, &serde_json::to_vec(&record).into_diagnostic()?)
    }
}

/// The name of the staging part.
const STAGING: &str = "the staging output";

fn hash_json(value: &impl Serialize) -> Result<String> {
    Ok(hex::encode(Sha256::digest(
        serde_json::to_vec(value).into_diagnostic()?,
    )))
}

impl Inputs {
    /// The inputs of planned output `p`, whose environments resolved to `resolved`.
    pub fn of(p: &PlannedOutput, opts: &BuildOptions, stager: &Stager, resolved: &Resolved) -> Result<Inputs> {
        let recipe = &*p.recipe;
        let output = &p.output;
        let mut rendered = crate::rendered::rendered_output(p, opts, None, None);
        // The only part of the rendered recipe that differs between two runs.
        if let Some(config) = rendered.get_mut("build_configuration").and_then(|c| c.as_object_mut()) {
            config.remove("timestamp");
        }
        let staging = match output.inherit.staging_name() {
            Some(name) => stager.key(recipe, name)?,
            None => String::new(),
        };
        let sources =
            crate::staging::key::source_keys(recipe, &output.source, &opts.output_dir, &opts.allow_insecure_host)?;
        let mut parts = BTreeMap::new();
        parts.insert(
            "kiln".to_string(),
            format!(
                "{} (build logic {})",
                env!("CARGO_PKG_VERSION"),
                crate::staging::key::BUILD_LOGIC_VERSION
            ),
        );
        parts.insert("the rendered recipe".to_string(), hash_json(&rendered)?);
        parts.insert(
            "the resolved environments".to_string(),
            hash_json(&(resolved.build_refs(), resolved.host_refs()))?,
        );
        parts.insert(STAGING.to_string(), staging);
        parts.insert("the sources".to_string(), hash_json(&sources)?);
        parts.insert(
            "files in the recipe directory".to_string(),
            hash_json(&stager.recipe_files(recipe, &output.source)?)?,
        );
        parts.insert(
            "the build options".to_string(),
            hash_json(&(
                opts.error_prefix_in_binary,
                opts.allow_absolute_license_paths,
                opts.include_recipe,
                &opts.extra_meta,
            ))?,
        );
        let digest = hash_json(&parts)?;
        Ok(Inputs { parts, digest })
    }
}

/// Where the record of package `path` (in `<output>/<subdir>/`) lives.
fn record_path(opts: &BuildOptions, package: &Path) -> PathBuf {
    let subdir = package.parent().and_then(Path::file_name).unwrap_or_default();
    let name = package.file_name().unwrap_or_default().to_string_lossy();
    opts.output_dir
        .join("bld/.inputs")
        .join(subdir)
        .join(format!("{name}.json"))
}

/// The package `p` would produce, kept as it is when it is in the output
/// directory, intact, and made from exactly `inputs`; `None` (and the
/// reason, logged) otherwise.
pub fn reuse(p: &PlannedOutput, opts: &BuildOptions, inputs: &Inputs) -> Result<Option<Built>> {
    let id = p.identifier();
    let name = p.output.package.name.as_normalized().to_string();
    let file = format!(
        "{name}-{}-{}{}",
        p.output.package.version.as_str(),
        p.build_string,
        opts.compression.format.format.extension()
    );
    let path = opts.output_dir.join(&p.subdir).join(&file);
    let rebuild = |why: String| {
        tracing::info!("{id}: rebuilding: {why}");
        Ok(None)
    };
    if !path.is_file() {
        return rebuild(format!("{file} is not in the output directory"));
    }
    let record: Record = match std::fs::read(record_path(opts, &path))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
    {
        Some(r) => r,
        None => return rebuild(format!("there is no record of what {file} was made from")),
    };
    if record.format != RECORD_FORMAT || record.package != file {
        return rebuild(format!("the record of {file} is from another kiln version"));
    }
    let changed: Vec<&str> = inputs
        .parts
        .iter()
        .filter(|(k, v)| record.inputs.parts.get(*k) != Some(*v))
        .map(|(k, _)| k.as_str())
        .collect();
    if !changed.is_empty() || record.inputs.digest != inputs.digest {
        let what = if changed.is_empty() {
            "its inputs".to_string()
        } else {
            changed.join(", ")
        };
        return rebuild(format!("{what} changed since {file} was built"));
    }
    if record.tests_skipped && opts.test != crate::testing::Strategy::Skip {
        return rebuild(format!("{file} was built without running its tests"));
    }
    if crate::disk::file_sha256(&path)? != record.sha256 {
        return rebuild(format!("{file} changed since it was built (its SHA-256 differs)"));
    }
    crate::ui::print_line(&format!(
        "✔ {id}: unchanged, kept {} (--skip-unchanged: same inputs, intact)",
        path.display()
    ));
    Ok(Some(Built {
        path,
        name,
        files: record.files,
        staging_keys: record.staging_keys,
        origin: super::Origin::Kept,
        seconds: 0.0,
    }))
}
