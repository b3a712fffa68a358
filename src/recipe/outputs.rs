//! The recipe loader: from the YAML tree to outputs, for single-output
//! recipes and multi-output recipes (with staging outputs, gated behind
//! `--experimental`, and the legacy top-level `cache:`, which is one
//! staging output every package inherits). The loader's other concerns
//! live next to it: `context` evaluation ([`super::context`]), which
//! variant keys an output uses ([`super::usage`]), and output sections,
//! inheritance and name checks ([`super::inherit`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use marked_yaml::types::MarkedMappingNode;
use marked_yaml::{Node, Span};
use rattler_conda_types::VersionWithSource;

use super::inherit::*;
use super::model::*;
use super::parse::{PResult, Reader};
use super::usage::*;
use super::LoadOptions;
use crate::diagnostics::SourceFile;
use crate::syntax::jinja::Jinja;
use crate::syntax::node::{RNode, Renderer};

pub(super) const SINGLE_KEYS: &[&str] = &[
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
pub(super) const MULTI_KEYS: &[&str] = &[
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
    "cache",
    "$schema",
];
pub(super) const OUTPUT_KEYS: &[&str] = &[
    "package",
    "inherit",
    "source",
    "requirements",
    "build",
    "about",
    "tests",
];
pub(super) const STAGING_KEYS: &[&str] = &["staging", "inherit", "source", "requirements", "build"];
pub(super) const CACHE_KEYS: &[&str] = &["source", "requirements", "build"];

/// What [`Loader::load`] produces.
pub struct Loaded {
    /// Evaluated context.
    pub context: IndexMap<String, serde_json::Value>,
    /// Package outputs (skipped ones removed).
    pub outputs: Vec<Output>,
    /// Staging outputs.
    pub staging: Vec<StagingOutput>,
    /// `recipe.name`, if given.
    pub name: Option<String>,
    /// `recipe.version` (or top-level `version`), if given.
    pub version: Option<VersionWithSource>,
    /// Every variant key any expression read, skipped outputs included
    /// (a key that decides `skip` must still expand the matrix).
    pub keys_read: BTreeSet<String>,
}

/// Loads one recipe file.
pub struct Loader<'a> {
    /// The recipe file.
    pub file: &'a SourceFile,
    /// Its directory.
    pub dir: &'a Path,
    /// Load options.
    pub options: LoadOptions,
}

/// Top-level sections shared by the outputs of a multi-output recipe.
pub(super) struct TopLevel {
    pub(super) build: BuildSection,
    pub(super) source: Vec<Source>,
    pub(super) about: About,
    pub(super) tests: Vec<super::package_tests::PackageTest>,
    pub(super) extra: serde_json::Value,
    pub(super) version: Option<VersionWithSource>,
}

impl Loader<'_> {
    /// Render and check the whole recipe with the given variant values
    /// (every key of the variant config, one value each).
    pub fn load(&self, root: &Node, variant: &Variant) -> PResult<Loaded> {
        let map = root.as_mapping().expect("the YAML loader enforces a top-level mapping");
        let multi = map.get_node("outputs").is_some();
        let allowed = if multi { MULTI_KEYS } else { SINGLE_KEYS };
        for (k, _) in map.iter() {
            if !allowed.contains(&k.as_str()) {
                let err = self.file.error(
                    k.span(),
                    format!("unknown top-level key `{}`", k.as_str()),
                    "not a recipe key",
                );
                return Err(if multi && (k.as_str() == "package" || k.as_str() == "requirements") {
                    err.with_help(format!(
                        "a recipe with `outputs` cannot have a top-level `{}`; move it into an output",
                        k.as_str()
                    ))
                } else if k.as_str() == "cache" {
                    err.with_help("`cache:` needs an `outputs:` list whose package outputs use it")
                } else {
                    err.with_help(format!("allowed keys: {}", allowed.join(", ")))
                });
            }
        }
        if let Some(v) = map.get_node("schema_version") {
            if v.as_scalar().map(|s| s.as_str()) != Some("1") {
                return Err(self
                    .file
                    .error(v.span(), "unsupported `schema_version`", "kiln reads schema version 1"));
            }
        }

        let mut jinja = Jinja::new(self.options.platforms, variant);
        let mut usage = Usage {
            keys: variant.keys().cloned().collect(),
            context: BTreeMap::new(),
        };
        let context = self.context(map.get_node("context"), &mut jinja, &mut usage)?;
        let mut loaded = self.load_outputs(root, map, multi, &jinja, &usage, context, variant)?;
        loaded.keys_read = usage.resolve(jinja.all_accessed());
        Ok(loaded)
    }

    #[allow(clippy::too_many_arguments)]
    fn load_outputs(
        &self,
        root: &Node,
        map: &MarkedMappingNode,
        multi: bool,
        jinja: &Jinja,
        usage: &Usage,
        context: IndexMap<String, serde_json::Value>,
        variant: &Variant,
    ) -> PResult<Loaded> {
        let r = Renderer { file: self.file, jinja };
        let reader = Reader {
            file: self.file,
            experimental: self.options.experimental,
        };
        let render = |key: &str| render_key(&r, map, key);

        let build = match map.get_node("build").map(|n| r.render_build(n)).transpose()?.flatten() {
            Some(n) => reader.build(&n, raw_build_string(map.get_node("build")))?,
            None => BuildSection::default(),
        };
        let top = TopLevel {
            build,
            source: render("source")?
                .map(|n| reader.sources(&n))
                .transpose()?
                .unwrap_or_default(),
            about: render("about")?
                .map(|n| reader.about(&n))
                .transpose()?
                .unwrap_or_default(),
            tests: render("tests")?
                .map(|n| reader.tests(&n))
                .transpose()?
                .unwrap_or_default(),
            extra: render("extra")?.map(|n| n.to_json()).unwrap_or(serde_json::Value::Null),
            version: None,
        };

        if !multi {
            let package = render("package")?;
            let requirements = render("requirements")?;
            let mut used = usage.resolve(jinja.take_accessed());
            let output = self.single_output(root, &reader, top, package, requirements)?;
            if let Some(template) = output.as_ref().and_then(|o| o.build.string.as_deref()) {
                used.extend(usage.resolve(jinja.referenced_names(template)));
            }
            let output = output
                .map(|o| self.with_used_variant(o, used, variant, &[]))
                .transpose()?;
            return Ok(Loaded {
                context,
                outputs: output.into_iter().collect(),
                staging: vec![],
                name: None,
                version: None,
                keys_read: BTreeSet::new(),
            });
        }
        let top_used = usage.resolve(jinja.take_accessed());
        self.multi_output(map, &r, &reader, top, context, usage, top_used, variant)
    }

    fn single_output(
        &self,
        root: &Node,
        reader: &Reader,
        top: TopLevel,
        package: Option<RNode>,
        requirements: Option<RNode>,
    ) -> PResult<Option<Output>> {
        let pkg_node = package.ok_or_else(|| {
            self.file
                .error(root.span(), "missing `package` section", "the recipe starts here")
                .with_help("add `package: {name: ..., version: ...}`, or an `outputs:` list")
        })?;
        let package = reader.package(&pkg_node, "package", None)?;
        let requirements = requirements
            .map(|n| reader.requirements(&n))
            .transpose()?
            .unwrap_or_default();
        let mut build = top.build;
        if build.script.is_none() && self.dir.join("build.sh").is_file() {
            build.script = Some(Script {
                body: ScriptBody::File {
                    file: PathBuf::from("build.sh"),
                },
                env: IndexMap::new(),
                secrets: vec![],
                span: Span::new_blank(),
                lines: vec![],
                cwd: None,
                interpreter: None,
                interpreter_span: None,
            });
        }
        if build.skip {
            return Ok(None);
        }
        let build = finish_build(build, BuildSection::default());
        let mut requirements = requirements;
        super::python::ignore_python_exports(&build, &mut requirements);
        Ok(Some(Output {
            package,
            source: top.source,
            build,
            requirements,
            tests: top.tests,
            about: top.about,
            extra: top.extra,
            inherit: Inherit::TopLevel,
            inherit_span: None,
            used_variant: Variant::new(),
            span: pkg_node.span,
        }))
    }

    #[allow(clippy::too_many_arguments)]
    fn multi_output(
        &self,
        map: &marked_yaml::types::MarkedMappingNode,
        r: &Renderer,
        reader: &Reader,
        mut top: TopLevel,
        context: IndexMap<String, serde_json::Value>,
        usage: &Usage,
        mut top_used: BTreeSet<String>,
        variant: &Variant,
    ) -> PResult<Loaded> {
        let render = |key: &str| render_key(r, map, key);
        let mut name = None;
        if let Some(n) = render("recipe")? {
            let entries = reader.map(&n, "recipe", &["name", "version"])?;
            for (k, v) in entries {
                if k.name == "version" {
                    top.version = Some(reader.version(v)?);
                } else {
                    name = Some(reader.string(v, "recipe.name")?);
                }
            }
        }
        if let Some(v) = render("version")? {
            top.version = Some(reader.version(&v)?);
        }
        top_used.extend(usage.resolve(r.jinja.take_accessed()));

        let mut staging = Vec::new();
        // The legacy top-level `cache:` is one staging output that every package output inherits.
        let cache_name = match map.get_node("cache") {
            Some(cache) => {
                let key = map.keys().find(|k| k.as_str() == "cache").expect("present");
                self.require_experimental(key.span(), "the top-level `cache:` section")?;
                let cache_name = format!("{}-build", name.as_deref().unwrap_or("cache"));
                let mut s = self.staging_output(cache, cache_name.clone(), None, r, reader, &top, CACHE_KEYS)?;
                set_staging_variant(&mut s, usage.resolve(r.jinja.take_accessed()), variant);
                staging.push(s);
                Some(cache_name)
            }
            None => None,
        };

        let outputs_node = map.get_node("outputs").expect("multi-output recipe");
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
        let mut raw_outputs = Vec::new();
        for item in list.iter() {
            self.expand_output_conditionals(item, r, &mut raw_outputs)?;
        }
        top_used.extend(usage.resolve(r.jinja.take_accessed()));

        let mut packages = Vec::new();
        for raw in raw_outputs {
            let Some(omap) = raw.as_mapping() else {
                return Err(self.file.error(
                    raw.span(),
                    "each output must be a mapping",
                    "expected `package:` or `staging:`",
                ));
            };
            if let Some(key) = omap.keys().find(|k| k.as_str() == "staging") {
                self.require_experimental(key.span(), "staging outputs")?;
                for (k, _) in omap.iter() {
                    if matches!(k.as_str(), "about" | "tests") {
                        return Err(self
                            .file
                            .error(
                                k.span(),
                                format!("staging outputs cannot have `{}`", k.as_str()),
                                "not allowed here",
                            )
                            .with_help(format!(
                                "move `{}` into the package outputs that inherit from it",
                                k.as_str()
                            )));
                    }
                }
                let Some(staging_node) = r.render(omap.get_node("staging").expect("present"))? else {
                    return Err(self
                        .file
                        .error(key.span(), "`staging` is empty", "a staging output needs a name")
                        .with_help("write `staging: { name: my-build }`"));
                };
                let entries = reader.map(&staging_node, "staging", &["name"])?;
                let Some((_, name_node)) = entries.iter().find(|(k, _)| k.name == "name") else {
                    return Err(self.file.error(
                        &staging_node.span,
                        "missing `staging.name`",
                        "a staging output needs a name",
                    ));
                };
                let staging_name = reader.string(name_node, "staging.name")?;
                let parent = match omap.get_node("inherit") {
                    Some(node) => match self.inherit(node, r, reader)? {
                        (Inherit::TopLevel, _) => None,
                        (Inherit::Staging { name, .. }, span) => Some((name, span)),
                    },
                    None => None,
                };
                let mut s = self.staging_output(raw, staging_name, parent, r, reader, &top, STAGING_KEYS)?;
                set_staging_variant(&mut s, usage.resolve(r.jinja.take_accessed()), variant);
                staging.push(s);
                continue;
            }
            let out = self.package_output(raw, r, reader, &top, cache_name.as_deref())?;
            let mut used = usage.resolve(r.jinja.take_accessed());
            used.extend(top_used.iter().cloned());
            if let Some(out) = out {
                // `build.string` is rendered at plan time; the keys it names count too.
                if let Some(template) = out.build.string.as_deref() {
                    used.extend(usage.resolve(r.jinja.referenced_names(template)));
                }
                packages.push((out, used));
            }
        }
        let (packages, used): (Vec<Output>, Vec<BTreeSet<String>>) = packages.into_iter().unzip();
        self.check_names(&packages, &staging)?;
        inherit_staging_variants(&mut staging);
        let packages = packages
            .into_iter()
            .zip(used)
            .map(|(o, used)| self.with_used_variant(o, used, variant, &staging))
            .collect::<PResult<Vec<_>>>()?;
        Ok(Loaded {
            context,
            outputs: packages,
            staging,
            name,
            version: top.version,
            keys_read: BTreeSet::new(),
        })
    }

    /// Reject keys of a raw mapping that are not in `allowed`.
    pub(super) fn check_keys(&self, map: &MarkedMappingNode, allowed: &[&str], what: &str) -> PResult<()> {
        match map.keys().find(|k| !allowed.contains(&k.as_str())) {
            None => Ok(()),
            Some(k) => Err(self
                .file
                .error(
                    k.span(),
                    format!("unknown key `{}` in {what}", k.as_str()),
                    "not allowed here",
                )
                .with_help(format!("allowed keys: {}", allowed.join(", ")))),
        }
    }

    pub(super) fn require_experimental(&self, span: &Span, what: &str) -> PResult<()> {
        if self.options.experimental {
            return Ok(());
        }
        Err(self
            .file
            .error(
                span,
                format!("{what} are an experimental feature"),
                "needs --experimental",
            )
            .with_help("pass `--experimental` to `kiln build` (or set KILN_EXPERIMENTAL=1)"))
    }

    pub(super) fn expand_output_conditionals<'n>(
        &self,
        item: &'n Node,
        r: &Renderer,
        out: &mut Vec<&'n Node>,
    ) -> PResult<()> {
        if let Some(m) = item.as_mapping() {
            if let Some(cond) = m.get_scalar("if") {
                let truthy = r
                    .jinja
                    .eval(cond.as_str())
                    .map_err(|e| r.jinja_error(e, cond.span(), cond.as_str()))?
                    .is_true();
                match if truthy { m.get_node("then") } else { m.get_node("else") } {
                    Some(Node::Sequence(s)) => {
                        for n in s.iter() {
                            self.expand_output_conditionals(n, r, out)?;
                        }
                    }
                    Some(n) => self.expand_output_conditionals(n, r, out)?,
                    None => {}
                }
                return Ok(());
            }
        }
        out.push(item);
        Ok(())
    }
}

/// Render `key` of a raw mapping; absent or rendering to nothing is `None`.
pub(super) fn render_key(r: &Renderer, map: &MarkedMappingNode, key: &str) -> PResult<Option<RNode>> {
    match key {
        // `build` sections render `skip` and `steps` their own way.
        "build" => map
            .get_node(key)
            .map(|n| r.render_build(n))
            .transpose()
            .map(Option::flatten),
        _ => map.get_node(key).map(|n| r.render(n)).transpose().map(Option::flatten),
    }
}
