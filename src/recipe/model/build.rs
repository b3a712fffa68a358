//! `build`: script, file selection, post-processing, prefix detection, linking and variant keys.

use std::path::PathBuf;

use indexmap::IndexMap;
use marked_yaml::Span;
use rattler_conda_types::NoArchType;
use serde::Serialize;

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
    pub python: Option<crate::recipe::python::PythonSettings>,
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
    #[serde(skip_serializing_if = "crate::recipe::python::PythonSettings::is_empty")]
    pub python: crate::recipe::python::PythonSettings,
}

impl Build {
    /// Whether the package gets the `noarch: python` layout, `link.json`
    /// and no byte-code: `noarch: python`, or an abi3 package
    /// (`python.version_independent`), which is built per platform.
    pub fn python_noarch_layout(&self) -> bool {
        self.noarch.is_python() || self.python.version_independent
    }
}
