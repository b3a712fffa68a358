//! The typed recipe: what a v1 `recipe.yaml` means once rendered for one
//! platform. Plain data; parsing lives in `parse`, merging of multi-output
//! recipes in `outputs`.

use std::path::{Path, PathBuf};

pub use crate::syntax::pin::{Pin, PinKind};
use indexmap::IndexMap;
use marked_yaml::Span;
use rattler_conda_types::{NoArchType, PackageName, VersionWithSource};
use serde::Serialize;

pub use crate::syntax::variant::Variant;

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

/// A source to place in the work directory.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Source {
    /// A local file or directory.
    Path(PathSource),
    /// A file downloaded from one of several URLs.
    Url(UrlSource),
    /// A git repository checked out at a tag, branch or commit.
    Git(GitSource),
}

impl Source {
    /// Where the source is declared.
    pub fn span(&self) -> Span {
        match self {
            Source::Path(s) => s.span,
            Source::Url(s) => s.span,
            Source::Git(s) => s.span,
        }
    }

    /// Patch files (relative to the recipe directory), applied in order.
    pub fn patches(&self) -> &[PathBuf] {
        match self {
            Source::Path(s) => &s.patches,
            Source::Url(s) => &s.patches,
            Source::Git(s) => &s.patches,
        }
    }

    /// Forget `patch` (for `kiln create-patch`, which replaces it).
    pub fn remove_patch(&mut self, patch: &Path) {
        let patches = match self {
            Source::Path(s) => &mut s.patches,
            Source::Url(s) => &mut s.patches,
            Source::Git(s) => &mut s.patches,
        };
        patches.retain(|p| p != patch);
    }

    /// The subdirectory of the work directory the source goes to.
    pub fn target_directory(&self) -> Option<&Path> {
        match self {
            Source::Path(s) => s.target_directory.as_deref(),
            Source::Url(s) => s.target_directory.as_deref(),
            Source::Git(s) => s.target_directory.as_deref(),
        }
    }

    /// Which files land in the work directory.
    pub fn filter(&self) -> &FileFilter {
        match self {
            Source::Path(s) => &s.filter,
            Source::Url(s) => &s.filter,
            Source::Git(s) => &s.filter,
        }
    }
}

/// `source: {path: ...}`.
#[derive(Debug, Clone, Serialize)]
pub struct PathSource {
    /// Path relative to the recipe directory (or absolute).
    pub path: PathBuf,
    /// Rename a file source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// Place it in this subdirectory of the work directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_directory: Option<PathBuf>,
    /// Expected SHA-256 of a file source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Expected MD5 of a file source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    /// Honour `.gitignore` when copying a directory.
    pub use_gitignore: bool,
    /// Patches applied after placing the source.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<PathBuf>,
    /// `filter`: which files of a directory or archive land in the work directory.
    #[serde(skip_serializing_if = "FileFilter::is_empty")]
    pub filter: FileFilter,
    /// Where the source is declared.
    #[serde(skip)]
    pub span: Span,
}

/// `source: {url: ...}`.
#[derive(Debug, Clone, Serialize)]
pub struct UrlSource {
    /// The URL, or mirrors tried in order.
    pub url: Vec<String>,
    /// Expected SHA-256 of the download.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Expected MD5 of the download.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    /// Keep the download as this file (not extracted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// Place it in this subdirectory of the work directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_directory: Option<PathBuf>,
    /// Patches applied after placing the source.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<PathBuf>,
    /// `filter`: which files of the archive land in the work directory.
    #[serde(skip_serializing_if = "FileFilter::is_empty")]
    pub filter: FileFilter,
    /// Where the source is declared.
    #[serde(skip)]
    pub span: Span,
}

/// Which commit of a git source to check out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitRef {
    /// A commit (or anything `git rev-parse` reads).
    Rev(String),
    /// A tag.
    Tag(String),
    /// The tip of a branch.
    Branch(String),
    /// The remote's default branch.
    Head,
}

impl Serialize for GitRef {
    /// As the recipe writes it: `rev: X`, `tag: X`, `branch: X`, or nothing.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        match self {
            GitRef::Rev(x) => map.serialize_entry("rev", x)?,
            GitRef::Tag(x) => map.serialize_entry("tag", x)?,
            GitRef::Branch(x) => map.serialize_entry("branch", x)?,
            GitRef::Head => {}
        }
        map.end()
    }
}

/// `source: {git: ...}`.
#[derive(Debug, Clone, Serialize)]
pub struct GitSource {
    /// Repository URL, `user@host:path`, or a local path (relative to the recipe directory).
    pub git: String,
    /// What to check out.
    #[serde(flatten)]
    pub reference: GitRef,
    /// Fetch only this many commits of history.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depth: Option<u64>,
    /// Check out submodules too.
    pub submodules: bool,
    /// Fetch git-lfs files.
    pub lfs: bool,
    /// The commit `reference` must resolve to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_commit: Option<String>,
    /// Place it in this subdirectory of the work directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_directory: Option<PathBuf>,
    /// Patches applied after the checkout.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<PathBuf>,
    /// `filter`: which files of the checkout land in the work directory.
    #[serde(skip_serializing_if = "FileFilter::is_empty")]
    pub filter: FileFilter,
    /// Where the source is declared.
    #[serde(skip)]
    pub span: Span,
}

/// How the build script is given.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ScriptBody {
    /// Inline commands.
    Inline(String),
    /// A script file relative to the recipe directory.
    File {
        /// The file.
        file: PathBuf,
    },
    /// `build.steps` (experimental): run in order, each in its own subshell.
    Steps(Vec<Step>),
}

/// One of `build.steps` (its `if` was evaluated when rendering).
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// `run`: the commands.
    pub run: String,
    /// `env`: variables for this step only.
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub env: IndexMap<String, String>,
    /// `cwd`: relative to the work directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
}

/// `build.script`.
#[derive(Debug, Clone, Serialize)]
pub struct Script {
    /// What to run.
    pub body: ScriptBody,
    /// Extra environment variables.
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub env: IndexMap<String, String>,
    /// Names of caller environment variables to forward, masked in logs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// Where the script is declared.
    #[serde(skip)]
    pub span: Span,
    /// The list items of an inline script with their spans (to locate a failing command).
    #[serde(skip)]
    pub lines: Vec<(String, Span)>,
    /// `cwd`: run in this directory, relative to the work directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
    /// `interpreter`, as written (checked when the script is resolved).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
    /// Where `interpreter` is written.
    #[serde(skip)]
    pub interpreter_span: Option<Span>,
}

/// A glob with the place it is written.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Glob {
    /// The pattern.
    pub pattern: String,
    /// Where it is written.
    #[serde(skip)]
    pub span: Span,
}

/// `build.files`: a list of globs or `{include, exclude}`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FileFilter {
    /// Files must match one of these (all files when empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<Glob>,
    /// Files must match none of these.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<Glob>,
}

impl FileFilter {
    /// True when no filter is configured.
    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }
}

/// `build` as written in one place (top level or an output): every field
/// optional, so that an output can fall back to the top level.
#[derive(Debug, Clone, Default)]
pub struct BuildSection {
    /// `build.number`.
    pub number: Option<u64>,
    /// `build.string`, unrendered (it may use `hash` and `build_number`).
    pub string: Option<(String, Span)>,
    /// `build.script`.
    pub script: Option<Script>,
    /// `build.noarch`, and where it is written.
    pub noarch: Option<(NoArchType, Span)>,
    /// `build.files`.
    pub files: Option<FileFilter>,
    /// `build.skip`, evaluated.
    pub skip: bool,
    /// `build.always_include_files`.
    pub always_include_files: Vec<Glob>,
    /// `build.variant`.
    pub variant: Option<VariantKeys>,
    /// `build.dynamic_linking`.
    pub dynamic_linking: Option<DynamicLinking>,
    /// `build.prefix_detection`.
    pub prefix_detection: Option<PrefixDetection>,
    /// `build.post_process`.
    pub post_process: Option<Vec<PostProcess>>,
    /// `build.always_copy_files`.
    pub always_copy_files: Option<Vec<Glob>>,
    /// `build.merge_build_and_host_envs`.
    pub merge_build_and_host_envs: Option<bool>,
    /// `build.python`.
    pub python: Option<super::python::PythonSettings>,
}

/// One `build.post_process` rule: a regular-expression replacement over files.
#[derive(Debug, Clone, Serialize)]
pub struct PostProcess {
    /// Files it applies to (globs).
    pub files: Vec<Glob>,
    /// The expression (Rust `regex` syntax).
    pub regex: String,
    /// The replacement (`$1`, `${name}` refer to groups).
    pub replacement: String,
    /// Where the rule is written.
    #[serde(skip)]
    pub span: Span,
}

/// `build.prefix_detection`: which files are searched for the build prefix
/// (and so relocated at install time), and how.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PrefixDetection {
    /// Files treated as text (`force_file_type.text`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub force_text: Vec<Glob>,
    /// Files treated as binary (`force_file_type.binary`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub force_binary: Vec<Glob>,
    /// `ignore: true`: no file is searched.
    pub ignore_all: bool,
    /// `ignore: [globs]`: these files are not searched.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<Glob>,
    /// Binary files are not searched.
    pub ignore_binary_files: bool,
}

/// `build.dynamic_linking`: how ELF run paths are rewritten.
#[derive(Debug, Clone, Serialize)]
pub struct DynamicLinking {
    /// Run path directories relative to the prefix (default `lib/`).
    pub rpaths: Vec<String>,
    /// Which files get their run paths rewritten: all, none, or those matching globs.
    pub binary_relocation: BinaryRelocation,
    /// Run path entries outside the prefix that are kept (globs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rpath_allowlist: Vec<Glob>,
    /// Libraries the linking checks accept wherever they come from (globs
    /// over the library's name or its path in the prefix).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_dso_allowlist: Vec<Glob>,
    /// What a library from a package that is not a run dependency causes.
    pub overlinking_behavior: LinkingBehavior,
    /// What a run dependency none of whose libraries is linked causes.
    pub overdepending_behavior: LinkingBehavior,
}

/// `overlinking_behavior` / `overdepending_behavior`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkingBehavior {
    /// Warn (the default).
    #[default]
    Ignore,
    /// Fail the build.
    Error,
}

impl Default for DynamicLinking {
    fn default() -> Self {
        Self {
            rpaths: vec!["lib/".to_string()],
            binary_relocation: BinaryRelocation::All,
            rpath_allowlist: Vec::new(),
            missing_dso_allowlist: Vec::new(),
            overlinking_behavior: LinkingBehavior::Ignore,
            overdepending_behavior: LinkingBehavior::Ignore,
        }
    }
}

/// `dynamic_linking.binary_relocation`.
#[derive(Debug, Clone)]
pub enum BinaryRelocation {
    /// `true` (the default).
    All,
    /// `false`.
    None,
    /// Only files matching these globs.
    Only(Vec<Glob>),
}

impl Serialize for BinaryRelocation {
    /// As the recipe writes it: `true`, `false` or the globs.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            BinaryRelocation::All => s.serialize_bool(true),
            BinaryRelocation::None => s.serialize_bool(false),
            BinaryRelocation::Only(globs) => globs.serialize(s),
        }
    }
}

/// `build.variant`: how an output's used variant keys are adjusted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VariantKeys {
    /// Keys the output uses even if nothing references them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub use_keys: Vec<String>,
    /// Keys removed from the output's variant (and hash).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignore_keys: Vec<String>,
    /// `down_prioritize_variant`: this many `track_features` lower the package's priority.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub down_prioritize_variant: Option<u64>,
    /// Where each `use_keys` entry is written.
    #[serde(skip)]
    pub use_key_spans: Vec<Span>,
}

impl VariantKeys {
    /// True when nothing is configured.
    pub fn is_empty(&self) -> bool {
        self.use_keys.is_empty() && self.ignore_keys.is_empty() && self.down_prioritize_variant.is_none()
    }
}

/// The effective build settings of one output.
#[derive(Debug, Clone, Serialize)]
pub struct Build {
    /// Build number.
    pub number: u64,
    /// Custom build string template, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub string: Option<String>,
    /// The script, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script: Option<Script>,
    /// noarch kind.
    #[serde(skip_serializing_if = "NoArchType::is_none")]
    pub noarch: NoArchType,
    /// File selection.
    #[serde(skip_serializing_if = "FileFilter::is_empty")]
    pub files: FileFilter,
    /// Globs of files to include even when not new.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub always_include_files: Vec<Glob>,
    /// `build.variant`.
    #[serde(skip_serializing_if = "VariantKeys::is_empty")]
    pub variant: VariantKeys,
    /// Span of the `string` template.
    #[serde(skip)]
    pub string_span: Option<Span>,
    /// Span of `noarch`, when set.
    #[serde(skip)]
    pub noarch_span: Option<Span>,
    /// Run path rewriting.
    pub dynamic_linking: DynamicLinking,
    /// Prefix detection.
    pub prefix_detection: PrefixDetection,
    /// Replacements applied to the files after the build.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub post_process: Vec<PostProcess>,
    /// Files installers must copy, never link (`no_link` in `paths.json`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub always_copy_files: Vec<Glob>,
    /// One environment: build requirements are solved into the host
    /// environment and `BUILD_PREFIX` is `PREFIX`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub merge_build_and_host_envs: bool,
    /// Entry points and byte-code settings.
    #[serde(skip_serializing_if = "super::python::PythonSettings::is_empty")]
    pub python: super::python::PythonSettings,
}

impl Build {
    /// Whether the package gets the `noarch: python` layout, `link.json`
    /// and no byte-code: `noarch: python`, or an abi3 package
    /// (`python.version_independent`), which is built per platform.
    pub fn python_noarch_layout(&self) -> bool {
        self.noarch.is_python() || self.python.version_independent
    }
}

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
