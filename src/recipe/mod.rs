//! Recipe text → typed outputs.
//!
//! `load` reads a v1 `recipe.yaml`, evaluates `context` and every `${{ }}`
//! expression for one platform and variant, checks keys strictly and
//! returns one merged [`Output`] per package (multi-output recipes inherit
//! top-level sections as rattler-build does).

pub mod jinja;
pub mod model;
pub mod node;
pub mod parse;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use marked_yaml::{loader::LoaderOptions, LoadError, Node, Span};
use minijinja::value::Value;

use crate::diagnostics::SourceFile;
use jinja::{Jinja, Platforms};
use model::*;
use node::{coerce_plain, RNode, Renderer};
use parse::{PResult, Reader};

/// A recipe rendered for one platform.
#[derive(Debug, Clone)]
pub struct Recipe {
    /// The recipe file.
    pub file: SourceFile,
    /// The directory holding the recipe (`RECIPE_DIR`).
    pub dir: PathBuf,
    /// Evaluated `context` variables, in order.
    pub context: IndexMap<String, serde_json::Value>,
    /// Whether the recipe has an `outputs` list.
    pub multi_output: bool,
    /// The packages to build, in declaration order (skipped ones removed).
    pub outputs: Vec<Output>,
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

/// Parse YAML text into a marked node tree.
pub fn parse_yaml(file: &SourceFile) -> PResult<Node> {
    let options = LoaderOptions::default().error_on_duplicate_keys(true);
    marked_yaml::parse_yaml_with_options(0, file.text.as_str(), options).map_err(|e| {
        let (marker, msg) = match &e {
            LoadError::TopLevelMustBeMapping(m) => (Some(*m), "the recipe must be a YAML mapping".to_string()),
            LoadError::UnexpectedAnchor(m) => (Some(*m), "YAML anchors are not supported in recipes".to_string()),
            LoadError::MappingKeyMustBeScalar(m) => (Some(*m), "mapping keys must be plain strings".to_string()),
            LoadError::UnexpectedTag(m) => (Some(*m), "YAML tags are not supported in recipes".to_string()),
            LoadError::ScanError(m, se) => (Some(*m), format!("invalid YAML: {se}")),
            LoadError::DuplicateKey(inner) => (
                inner.key.span().start().copied(),
                format!("duplicate key `{}`", inner.key.as_str()),
            ),
            other => (None, format!("invalid YAML: {other}")),
        };
        let span = marker.map(Span::new_start).unwrap_or_else(Span::new_blank);
        file.error(&span, msg, "here")
    })
}

const SINGLE_KEYS: &[&str] = &[
    "schema_version",
    "context",
    "package",
    "source",
    "build",
    "requirements",
    "tests",
    "about",
    "extra",
    "$schema",
];
const MULTI_KEYS: &[&str] = &[
    "schema_version",
    "context",
    "recipe",
    "version",
    "source",
    "build",
    "about",
    "extra",
    "tests",
    "outputs",
    "$schema",
];
const OUTPUT_KEYS: &[&str] = &[
    "package",
    "inherit",
    "source",
    "requirements",
    "build",
    "about",
    "tests",
];

/// Load and render a recipe for the given platforms and variant values.
pub fn load(path: &Path, platforms: Platforms, variant: &BTreeMap<String, String>) -> miette::Result<Recipe> {
    let path = resolve_path(path)?;
    let file = SourceFile::read(&path)?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    let dir = dunce_canonicalize(&dir);
    let root = parse_yaml(&file)?;
    let loaded = Loader { file: &file, dir: &dir }.load(&root, platforms, variant)?;
    Ok(Recipe {
        file,
        dir,
        context: loaded.0,
        multi_output: loaded.1,
        outputs: loaded.2,
    })
}

fn dunce_canonicalize(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

struct Loader<'a> {
    file: &'a SourceFile,
    dir: &'a Path,
}

type Loaded = (IndexMap<String, serde_json::Value>, bool, Vec<Output>);

impl Loader<'_> {
    fn load(&self, root: &Node, platforms: Platforms, variant: &BTreeMap<String, String>) -> PResult<Loaded> {
        let map = root.as_mapping().expect("loader enforces a top-level mapping");
        let multi = map.get_node("outputs").is_some();
        let allowed = if multi { MULTI_KEYS } else { SINGLE_KEYS };
        for (k, _) in map.iter() {
            if k.as_str() == "cache" && multi {
                return Err(self
                    .file
                    .error(k.span(), "the top-level `cache:` section is not supported yet", "here")
                    .with_help("staging outputs and `cache:` are being implemented; remove it for now"));
            }
            if !allowed.contains(&k.as_str()) {
                let mut err = self.file.error(
                    k.span(),
                    format!("unknown top-level key `{}`", k.as_str()),
                    "not a recipe key",
                );
                err = if multi && (k.as_str() == "package" || k.as_str() == "requirements") {
                    err.with_help(format!(
                        "a recipe with `outputs` cannot have a top-level `{}`; move it into an output",
                        k.as_str()
                    ))
                } else {
                    err.with_help(format!("allowed keys: {}", allowed.join(", ")))
                };
                return Err(err);
            }
        }
        if let Some(v) = map.get_node("schema_version") {
            if v.as_scalar().map(|s| s.as_str()) != Some("1") {
                return Err(self
                    .file
                    .error(v.span(), "unsupported `schema_version`", "kiln reads schema version 1"));
            }
        }

        let mut jinja = Jinja::new(platforms, variant);
        let context = self.context(map.get_node("context"), &mut jinja)?;
        let r = Renderer {
            file: self.file,
            jinja: &jinja,
        };
        let reader = Reader { file: self.file };

        let render = |key: &str| -> PResult<Option<RNode>> {
            match map.get_node(key) {
                Some(n) => r.render(n),
                None => Ok(None),
            }
        };
        let top_build = match map
            .get_node("build")
            .map(|n| r.render_except(n, "string"))
            .transpose()?
            .flatten()
        {
            Some(n) => reader.build(&n, raw_build_string(map.get_node("build")))?,
            None => BuildSection::default(),
        };
        let top_source = render("source")?
            .map(|n| reader.sources(&n))
            .transpose()?
            .unwrap_or_default();
        let top_about = render("about")?
            .map(|n| reader.about(&n))
            .transpose()?
            .unwrap_or_default();
        let top_tests = render("tests")?
            .map(|n| reader.tests(&n))
            .transpose()?
            .unwrap_or_default();
        let extra = render("extra")?.map(|n| n.to_json()).unwrap_or(serde_json::Value::Null);

        let mut outputs = Vec::new();
        if !multi {
            let pkg_node = render("package")?.ok_or_else(|| {
                self.file
                    .error(root.span(), "missing `package` section", "the recipe starts here")
                    .with_help("add `package: {name: ..., version: ...}`, or an `outputs:` list")
            })?;
            let package = reader.package(&pkg_node, "package", None)?;
            let requirements = render("requirements")?
                .map(|n| reader.requirements(&n))
                .transpose()?
                .unwrap_or_default();
            let mut build = top_build;
            if build.script.is_none() && self.dir.join("build.sh").is_file() {
                build.script = Some(Script {
                    body: ScriptBody::File {
                        file: PathBuf::from("build.sh"),
                    },
                    env: IndexMap::new(),
                    secrets: vec![],
                    span: Span::new_blank(),
                    lines: vec![],
                });
            }
            let skip = build.skip;
            let out = Output {
                package,
                source: top_source,
                build: finish_build(build, BuildSection::default()),
                requirements,
                tests: top_tests,
                about: top_about,
                extra,
                inherit: Inherit::TopLevel,
                span: *map.get_node("package").map(Node::span).unwrap_or(root.span()),
            };
            if !skip {
                outputs.push(out);
            }
            return Ok((context, false, outputs));
        }

        // Multi-output: recipe.{name,version} provide defaults.
        let recipe_node = render("recipe")?;
        let mut top_version = None;
        if let Some(n) = &recipe_node {
            let entries = reader.map(n, "recipe", &["name", "version"])?;
            if let Some((_, v)) = entries.iter().find(|(k, _)| k.name == "version") {
                top_version = Some(reader.version(v)?);
            }
        }
        if let Some(v) = render("version")? {
            top_version = Some(reader.version(&v)?);
        }
        let outputs_node = map.get_node("outputs").expect("multi");
        let Some(list) = outputs_node.as_sequence() else {
            return Err(self
                .file
                .error(outputs_node.span(), "`outputs` must be a list", "expected a list"));
        };
        if list.is_empty() {
            return Err(self
                .file
                .error(outputs_node.span(), "`outputs` is empty", "add at least one output"));
        }
        // Outputs may themselves be conditionals.
        let mut raw_outputs = Vec::new();
        for item in list.iter() {
            self.expand_output_conditionals(item, &jinja, &r, &mut raw_outputs)?;
        }
        for raw in raw_outputs {
            let Some(omap) = raw.as_mapping() else {
                return Err(self
                    .file
                    .error(raw.span(), "each output must be a mapping", "expected `package:` ..."));
            };
            for (k, _) in omap.iter() {
                if k.as_str() == "staging" {
                    return Err(self
                        .file
                        .error(k.span(), "staging outputs are not supported yet", "here")
                        .with_help("staging outputs are being implemented; use package outputs for now"));
                }
                if !OUTPUT_KEYS.contains(&k.as_str()) {
                    return Err(self
                        .file
                        .error(
                            k.span(),
                            format!("unknown key `{}` in output", k.as_str()),
                            "not allowed here",
                        )
                        .with_help(format!("allowed keys: {}", OUTPUT_KEYS.join(", "))));
                }
            }
            let orender = |key: &str| -> PResult<Option<RNode>> {
                match omap.get_node(key) {
                    Some(n) => r.render(n),
                    None => Ok(None),
                }
            };
            if let Some(inherit) = omap.get_node("inherit") {
                let is_null = inherit
                    .as_scalar()
                    .is_some_and(|s| matches!(coerce_plain(s.as_str()), v if v.is_none()));
                if !is_null {
                    return Err(self
                        .file
                        .error(
                            inherit.span(),
                            "inheriting from a staging output is not supported yet",
                            "here",
                        )
                        .with_help("use `inherit: null` (the top-level build) for now"));
                }
            }
            let pkg_node = orender("package")?.ok_or_else(|| {
                self.file
                    .error(raw.span(), "output without `package`", "this output")
                    .with_help("each output needs `package: {name: ...}`")
            })?;
            let package = reader.package(&pkg_node, "package", top_version.as_ref())?;
            let own_build = match omap
                .get_node("build")
                .map(|n| r.render_except(n, "string"))
                .transpose()?
                .flatten()
            {
                Some(n) => reader.build(&n, raw_build_string(omap.get_node("build")))?,
                None => BuildSection::default(),
            };
            let skip = own_build.skip || top_build.skip;
            let mut source = top_source.clone();
            if let Some(n) = orender("source")? {
                source.extend(reader.sources(&n)?);
            }
            let mut tests = top_tests.clone();
            if let Some(n) = orender("tests")? {
                tests.extend(reader.tests(&n)?);
            }
            let about = match orender("about")? {
                Some(n) => merge_about(reader.about(&n)?, &top_about),
                None => top_about.clone(),
            };
            let requirements = orender("requirements")?
                .map(|n| reader.requirements(&n))
                .transpose()?
                .unwrap_or_default();
            let out = Output {
                package,
                source,
                build: finish_build(own_build, top_build.clone()),
                requirements,
                tests,
                about,
                extra: extra.clone(),
                inherit: Inherit::TopLevel,
                span: *raw.span(),
            };
            if !skip {
                outputs.push(out);
            }
        }
        // Duplicate names are a mistake.
        for (i, a) in outputs.iter().enumerate() {
            if let Some(b) = outputs[..i].iter().find(|b| b.package.name == a.package.name) {
                let _ = b;
                return Err(self.file.error(
                    &a.span,
                    format!("two outputs are named `{}`", a.package.name.as_source()),
                    "second output with this name",
                ));
            }
        }
        Ok((context, true, outputs))
    }

    fn expand_output_conditionals<'n>(
        &self,
        item: &'n Node,
        jinja: &Jinja,
        r: &Renderer,
        out: &mut Vec<&'n Node>,
    ) -> PResult<()> {
        if let Some(m) = item.as_mapping() {
            if let Some(cond) = m.get_scalar("if") {
                let truthy = jinja
                    .eval(cond.as_str())
                    .map_err(|e| r.jinja_error(e, cond.span(), cond.as_str()))?
                    .is_true();
                let branch = if truthy { m.get_node("then") } else { m.get_node("else") };
                match branch {
                    Some(Node::Sequence(s)) => {
                        for n in s.iter() {
                            self.expand_output_conditionals(n, jinja, r, out)?;
                        }
                    }
                    Some(n) => self.expand_output_conditionals(n, jinja, r, out)?,
                    None => {}
                }
                return Ok(());
            }
        }
        out.push(item);
        Ok(())
    }

    fn context(&self, node: Option<&Node>, jinja: &mut Jinja) -> PResult<IndexMap<String, serde_json::Value>> {
        let mut out = IndexMap::new();
        let Some(node) = node else { return Ok(out) };
        let Some(map) = node.as_mapping() else {
            return Err(self.file.error(
                node.span(),
                "`context` must be a mapping",
                "expected `name: value` entries",
            ));
        };
        for (k, v) in map.iter() {
            if k.as_str().contains('-') {
                return Err(self
                    .file
                    .error(
                        k.span(),
                        format!("context key `{}` contains `-`", k.as_str()),
                        "not a valid variable name",
                    )
                    .with_help(format!("use `{}`", k.as_str().replace('-', "_"))));
            }
            let value = {
                let r = Renderer { file: self.file, jinja };
                match r.render(v)? {
                    Some(n) => match n.as_scalar() {
                        Some(s) => s.clone(),
                        None => Value::from_serialize(n.to_json()),
                    },
                    None => Value::from(()),
                }
            };
            out.insert(
                k.as_str().to_string(),
                serde_json::to_value(&value).unwrap_or(serde_json::Value::Null),
            );
            jinja.set_var(k.as_str(), value);
        }
        Ok(out)
    }
}

fn raw_build_string(build: Option<&Node>) -> Option<(String, Span)> {
    let s = build?.as_mapping()?.get_scalar("string")?;
    Some((s.as_str().to_string(), *s.span()))
}

fn merge_about(own: About, top: &About) -> About {
    About {
        homepage: own.homepage.or_else(|| top.homepage.clone()),
        repository: own.repository.or_else(|| top.repository.clone()),
        documentation: own.documentation.or_else(|| top.documentation.clone()),
        license: own.license.or_else(|| top.license.clone()),
        license_family: own.license_family.or_else(|| top.license_family.clone()),
        license_file: if own.license_file.is_empty() {
            top.license_file.clone()
        } else {
            own.license_file
        },
        summary: own.summary.or_else(|| top.summary.clone()),
        description: own.description.or_else(|| top.description.clone()),
    }
}

/// Effective build settings: the output's own values, else the top level's.
fn finish_build(own: BuildSection, top: BuildSection) -> Build {
    let string = own.string.or(top.string);
    Build {
        number: own.number.or(top.number).unwrap_or(0),
        string_span: string.as_ref().map(|(_, s)| *s),
        string: string.map(|(s, _)| s),
        script: own.script.or(top.script),
        noarch: own
            .noarch
            .or(top.noarch)
            .unwrap_or_else(rattler_conda_types::NoArchType::none),
        files: own.files.or(top.files).unwrap_or_default(),
        always_include_files: if own.always_include_files.is_empty() {
            top.always_include_files
        } else {
            own.always_include_files
        },
    }
}
