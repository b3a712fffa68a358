//! The typed recipe: what a v1 `recipe.yaml` means once rendered for one
//! platform. Plain data; parsing lives in `parse`, merging of multi-output
//! recipes in `outputs`.

pub use crate::syntax::pin::{Pin, PinKind};
use marked_yaml::Span;
use rattler_conda_types::{PackageName, VersionWithSource};
use serde::Serialize;

pub use crate::syntax::variant::Variant;

mod build;
mod requirements;
mod source;

pub use build::*;
pub use requirements::*;
pub use source::*;

/// The `about` section.
#[derive(Debug, Clone, Default, Serialize)]
pub struct About {
    /// Project home page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
    /// Source repository.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Documentation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documentation: Option<String>,
    /// SPDX license expression.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// License family.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license_family: Option<String>,
    /// License files (globs, relative to the work or recipe directory).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub license_file: Vec<Glob>,
    /// One-line summary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Longer description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Where a package output starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Inherit {
    /// The top-level build (`inherit: null` or no `inherit`).
    TopLevel,
    /// A staging output's cached prefix and work directory.
    Staging {
        /// The staging output's name.
        name: String,
        /// Whether the staging dependencies' run exports apply (`inherit: {run_exports: ...}`).
        run_exports: bool,
    },
}

impl Inherit {
    /// The staging output inherited from, if any.
    pub fn staging_name(&self) -> Option<&str> {
        match self {
            Inherit::TopLevel => None,
            Inherit::Staging { name, .. } => Some(name),
        }
    }
}

/// A staging output: built once, cached on disk, inherited by package outputs.
#[derive(Debug, Clone, Serialize)]
pub struct StagingOutput {
    /// `staging.name`.
    pub name: String,
    /// Sources: the top-level ones, then its own (own only when nested).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source: Vec<Source>,
    /// Build and host requirements and `ignore_run_exports`.
    pub requirements: Requirements,
    /// The staging script.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script: Option<Script>,
    /// Another staging output this one starts from (nested staging).
    #[serde(skip)]
    pub inherit: Option<String>,
    /// The variant values this staging output uses (its own and those of
    /// the staging output it inherits): part of its cache key.
    #[serde(skip)]
    pub used_variant: Variant,
    /// Where the staging output is declared.
    #[serde(skip)]
    pub span: Span,
}

/// `package: {name, version}`.
#[derive(Debug, Clone, Serialize)]
pub struct PackageId {
    /// Package name.
    pub name: PackageName,
    /// Package version.
    pub version: VersionWithSource,
}

/// One package to build, fully merged with the top level.
#[derive(Debug, Clone, Serialize)]
pub struct Output {
    /// Name and version.
    pub package: PackageId,
    /// Sources placed in the work directory, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source: Vec<Source>,
    /// Build settings.
    pub build: Build,
    /// Requirements.
    pub requirements: Requirements,
    /// Tests, run after packaging (see `crate::testing`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<super::package_tests::PackageTest>,
    /// About metadata.
    pub about: About,
    /// Free-form extra metadata.
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub extra: serde_json::Value,
    /// Where this output starts from.
    #[serde(skip)]
    pub inherit: Inherit,
    /// Where `inherit:` is written (for errors).
    #[serde(skip)]
    pub inherit_span: Option<Span>,
    /// The variant values this output uses: keys read by its expressions,
    /// bare build/host names that are variant keys, `use_keys` minus
    /// `ignore_keys`, and those of the staging output it inherits.
    #[serde(skip)]
    pub used_variant: Variant,
    /// Where the output is declared.
    #[serde(skip)]
    pub span: Span,
}

/// `name` and the staging outputs it inherits from, innermost first: the
/// one place that follows `inherit:` between staging outputs. Stops at an
/// unknown name or at a repeat (the loader reports both as errors).
pub fn staging_chain<'a>(staging: &'a [StagingOutput], name: &str) -> Vec<&'a StagingOutput> {
    let mut chain: Vec<&StagingOutput> = Vec::new();
    let mut current = Some(name);
    while let Some(n) = current {
        let Some(s) = staging.iter().find(|s| s.name == n) else {
            break;
        };
        if chain.iter().any(|c| c.name == s.name) {
            break;
        }
        chain.push(s);
        current = s.inherit.as_deref();
    }
    chain
}
