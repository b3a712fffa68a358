//! `requirements`: dependencies (specs or pins), run exports and what to ignore of them.

use marked_yaml::Span;
use serde::Serialize;

use super::Pin;

/// A match spec as written in the recipe, already validated, or a pin
/// (`pin_subpackage`/`pin_compatible`) that becomes a spec once the pinned
/// package's version is known.
#[derive(Debug, Clone)]
pub struct Dependency {
    /// The spec text (for a pin not yet applied: the pinned name).
    pub spec: String,
    /// The pin, until it is applied.
    pub pin: Option<Pin>,
    /// Where it is written.
    pub span: Span,
}

impl Dependency {
    /// The package name the dependency is about (`None` for a spec that names no package).
    pub fn name(&self) -> Option<String> {
        if let Some(pin) = &self.pin {
            return Some(pin.name.clone());
        }
        spec_name(&self.spec)
    }
}

/// The normalized package name of a match spec text.
pub fn spec_name(spec: &str) -> Option<String> {
    rattler_conda_types::MatchSpec::from_str(spec, rattler_conda_types::ParseStrictness::Lenient)
        .ok()?
        .name
        .as_exact()
        .map(|n| n.as_normalized().to_string())
}

impl Serialize for Dependency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.pin {
            Some(pin) => pin.serialize(s),
            None => self.spec.serialize(s),
        }
    }
}

/// The `requirements` section.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Requirements {
    /// Tools that run during the build (`BUILD_PREFIX`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub build: Vec<Dependency>,
    /// Libraries built against (`PREFIX`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub host: Vec<Dependency>,
    /// Runtime dependencies (`depends` in `index.json`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub run: Vec<Dependency>,
    /// Runtime constraints (`constrains` in `index.json`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub run_constraints: Vec<Dependency>,
    /// What this package exports to packages that depend on it.
    #[serde(skip_serializing_if = "RunExports::is_empty")]
    pub run_exports: RunExports,
    /// Run exports of dependencies to ignore.
    #[serde(skip_serializing_if = "IgnoreRunExports::is_empty")]
    pub ignore_run_exports: IgnoreRunExports,
}

/// `requirements.run_exports`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunExports {
    /// Apply to dependents' run requirements when used in host.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub weak: Vec<Dependency>,
    /// Apply when used in build or host.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub strong: Vec<Dependency>,
    /// Apply to noarch dependents.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub noarch: Vec<Dependency>,
    /// Weak run constraints.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub weak_constraints: Vec<Dependency>,
    /// Strong run constraints.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub strong_constraints: Vec<Dependency>,
}

impl RunExports {
    /// True when nothing is exported.
    pub fn is_empty(&self) -> bool {
        self.weak.is_empty()
            && self.strong.is_empty()
            && self.noarch.is_empty()
            && self.weak_constraints.is_empty()
            && self.strong_constraints.is_empty()
    }
}

/// `requirements.ignore_run_exports`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IgnoreRunExports {
    /// Ignore everything these packages export.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub from_package: Vec<String>,
    /// Ignore exported specs with these names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub by_name: Vec<String>,
}

impl IgnoreRunExports {
    /// True when nothing is ignored.
    pub fn is_empty(&self) -> bool {
        self.from_package.is_empty() && self.by_name.is_empty()
    }
}
