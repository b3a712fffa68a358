//! Recipe text → typed outputs.
//!
//! `load` reads a v1 `recipe.yaml`, evaluates `context` and every `${{ }}`
//! expression for one platform and variant, checks keys strictly and
//! returns one merged [`Output`] per package (multi-output recipes inherit
//! top-level sections as rattler-build does).

mod context;
mod inherit;
pub mod model;
pub mod outputs;
pub mod package_tests;
pub mod parse;
mod parse_build;
mod parse_source;
pub mod python;
mod usage;

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use marked_yaml::Node;

use crate::diagnostics::SourceFile;
use crate::syntax::jinja::Platforms;
use crate::syntax::variant::Variant;
use model::{Output, StagingOutput};
use parse::PResult;

/// A recipe rendered for one platform.
#[derive(Debug, Clone)]
pub struct Recipe {
    /// The recipe file.
    pub file: SourceFile,
    /// The directory holding the recipe (`RECIPE_DIR`).
    pub dir: PathBuf,
    /// Evaluated `context` variables, in order.
    pub context: IndexMap<String, serde_json::Value>,
    /// The packages to build, in declaration order (skipped ones removed).
    pub outputs: Vec<Output>,
    /// Staging outputs (and the legacy `cache:`), in declaration order.
    pub staging: Vec<StagingOutput>,
    /// `recipe.name` of a multi-output recipe (names the shared build directory).
    pub name: Option<String>,
    /// `recipe.version` of a multi-output recipe.
    pub version: Option<rattler_conda_types::VersionWithSource>,
    /// The variant values it was rendered with (every config key).
    pub variant: Variant,
    /// Every variant key its expressions read, skipped outputs included.
    pub keys_read: std::collections::BTreeSet<String>,
    /// Read from standard input (`--recipe -`): `dir` is the current
    /// directory, and only the recipe text goes into `info/recipe/`.
    pub from_stdin: bool,
}

impl Recipe {
    /// Name of the build directory shared by staging builds and their inheritors.
    pub fn shared_build_name(&self) -> String {
        self.name
            .clone()
            .or_else(|| self.outputs.first().map(|o| o.package.name.as_normalized().to_string()))
            .unwrap_or_else(|| "staging".to_string())
    }

    /// The version staging scripts see as `PKG_VERSION`.
    pub fn staging_version(&self) -> String {
        self.version
            .as_ref()
            .or_else(|| self.outputs.first().map(|o| &o.package.version))
            .map(|v| v.as_str().to_string())
            .unwrap_or_default()
    }

    /// The staging output called `name`.
    pub fn staging(&self, name: &str) -> Option<&StagingOutput> {
        self.staging.iter().find(|s| s.name == name)
    }

    /// The staging output `name` and those it inherits from, innermost first.
    pub fn staging_chain(&self, name: &str) -> Vec<&StagingOutput> {
        model::staging_chain(&self.staging, name)
    }
}

/// How to load a recipe.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// Platforms to render for.
    pub platforms: Platforms,
    /// Whether experimental features (staging outputs, `cache:`) are enabled.
    pub experimental: bool,
}

/// Find the recipe file: a file as given, or `recipe.yaml` in a directory.
pub fn resolve_path(path: &Path) -> miette::Result<PathBuf> {
    if path.is_dir() {
        let candidate = path.join("recipe.yaml");
        if candidate.is_file() {
            return Ok(candidate);
        }
        miette::bail!(
            help = "pass the recipe file itself, or a directory that contains `recipe.yaml`",
            "no recipe.yaml in directory {}",
            path.display()
        );
    }
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    miette::bail!("recipe {} does not exist", path.display())
}

/// Parse recipe text into a marked node tree.
pub fn parse_yaml(file: &SourceFile) -> PResult<Node> {
    crate::syntax::yaml::parse_mapping(file, "the recipe")
}

/// A recipe file, read and parsed once, to be rendered for many variants.
pub struct RecipeSource {
    file: SourceFile,
    dir: PathBuf,
    root: Node,
    from_stdin: bool,
}

impl RecipeSource {
    /// Read and parse the recipe at `path` (a file, or a directory with `recipe.yaml`).
    pub fn read(path: &Path) -> miette::Result<Self> {
        if path == Path::new("-") {
            return Self::from_stdin();
        }
        let path = resolve_path(path)?;
        let file = SourceFile::read(&path)?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
        let root = parse_yaml(&file)?;
        Ok(Self {
            file,
            dir,
            root,
            from_stdin: false,
        })
    }

    /// Read the recipe from standard input (`--recipe -`); the current
    /// directory serves as its directory (scripts, patches, `path` sources).
    fn from_stdin() -> miette::Result<Self> {
        use std::io::Read;
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| miette::miette!("cannot read the recipe from standard input: {e}"))?;
        if text.trim().is_empty() {
            miette::bail!(
                help = "pipe a recipe into kiln, e.g. `kiln build --recipe - < recipe.yaml`",
                "--recipe -: standard input is empty"
            );
        }
        let file = SourceFile {
            path: PathBuf::from("<stdin>"),
            text: std::sync::Arc::new(text),
        };
        let dir = std::env::current_dir().map_err(|e| miette::miette!("cannot find the current directory: {e}"))?;
        let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
        let root = parse_yaml(&file)?;
        Ok(Self {
            file,
            dir,
            root,
            from_stdin: true,
        })
    }

    /// The recipe file.
    pub fn file(&self) -> &SourceFile {
        &self.file
    }

    /// The directory holding the recipe.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Render the recipe for `options` and one value of every variant key.
    pub fn render(&self, options: LoadOptions, variant: &Variant) -> miette::Result<Recipe> {
        let loaded = outputs::Loader {
            file: &self.file,
            dir: &self.dir,
            options,
        }
        .load(&self.root, variant)?;
        Ok(Recipe {
            file: self.file.clone(),
            dir: self.dir.clone(),
            context: loaded.context,
            outputs: loaded.outputs,
            staging: loaded.staging,
            name: loaded.name,
            version: loaded.version,
            variant: variant.clone(),
            keys_read: loaded.keys_read,
            from_stdin: self.from_stdin,
        })
    }
}
