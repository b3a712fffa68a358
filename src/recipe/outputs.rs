//! From the YAML tree to outputs: single-output recipes, multi-output
//! recipes whose package outputs inherit top-level sections, staging
//! outputs (`staging:`, gated behind `--experimental`) and the legacy
//! top-level `cache:`, which is one staging output every package inherits.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use marked_yaml::types::MarkedMappingNode;
use marked_yaml::{Node, Span};
use minijinja::value::Value;
use rattler_conda_types::VersionWithSource;

use super::model::*;
use super::parse::{PResult, Reader};
use super::LoadOptions;
use crate::diagnostics::SourceFile;
use crate::syntax::jinja::Jinja;
use crate::syntax::node::{coerce_plain, RNode, Renderer};

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
    "cache",
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
const STAGING_KEYS: &[&str] = &["staging", "inherit", "source", "requirements", "build"];
const CACHE_KEYS: &[&str] = &["source", "requirements", "build"];

/// Which variant keys expressions read: directly, or through `context`
/// variables (whose own reads are recorded when they are evaluated).
#[derive(Default)]
struct Usage {
    /// Variant keys in play (every key of the variant config).
    keys: BTreeSet<String>,
    /// For each context variable, the variant keys its value depends on.
    context: BTreeMap<String, BTreeSet<String>>,
}

impl Usage {
    /// The variant keys behind the names an evaluation read.
    fn resolve(&self, accessed: BTreeSet<String>) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for name in accessed {
            // Context variables shadow variant keys of the same name.
            if let Some(deps) = self.context.get(&name) {
                out.extend(deps.iter().cloned());
            } else if self.keys.contains(&name) {
                out.insert(name);
            }
        }
        out
    }
}

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
struct TopLevel {
    build: BuildSection,
    source: Vec<Source>,
    about: About,
    tests: Vec<serde_json::Value>,
    extra: serde_json::Value,
    version: Option<VersionWithSource>,
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
        let reader = Reader { file: self.file };
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

    /// Fill `used_variant`: `used` (keys read by the output's expressions),
    /// bare build/host names that are variant keys (substituted with their
    /// value), `use_keys` minus `ignore_keys`, then the keys of the staging
    /// outputs it inherits.
    fn with_used_variant(
        &self,
        mut output: Output,
        mut used: BTreeSet<String>,
        variant: &Variant,
        staging: &[StagingOutput],
    ) -> PResult<Output> {
        used.extend(substitute_variant(&mut output.requirements, variant));
        used.extend(crate::syntax::variant::implied_keys(&used, variant));
        let keys = &output.build.variant;
        for (key, span) in keys.use_keys.iter().zip(&keys.use_key_spans) {
            if !variant.contains_key(key) {
                return Err(self
                    .file
                    .error(
                        span,
                        format!("`use_keys` names `{key}`, which is not in the variant config"),
                        "unknown variant key",
                    )
                    .with_help(format!(
                        "add `{key}: [...]` to variants.yaml next to the recipe or to a `-m` file"
                    )));
            }
            used.insert(key.clone());
        }
        for key in &keys.ignore_keys {
            used.remove(key);
        }
        output.used_variant = used
            .into_iter()
            .filter_map(|k| variant.get(&k).map(|v| (k, v.clone())))
            .collect();
        if let Some(name) = output.inherit.staging_name() {
            if let Some(s) = staging.iter().find(|s| s.name == name) {
                for (k, v) in &s.used_variant {
                    output.used_variant.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
        Ok(output)
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
            });
        }
        if build.skip {
            return Ok(None);
        }
        Ok(Some(Output {
            package,
            source: top.source,
            build: finish_build(build, BuildSection::default()),
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
    fn check_keys(&self, map: &MarkedMappingNode, allowed: &[&str], what: &str) -> PResult<()> {
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

    fn require_experimental(&self, span: &Span, what: &str) -> PResult<()> {
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

    /// `inherit:` of an output: the top level, or a staging output with its span.
    fn inherit(&self, node: &Node, r: &Renderer, reader: &Reader) -> PResult<(Inherit, Span)> {
        let span = *node.span();
        if let Some(s) = node.as_scalar() {
            if s.may_coerce() && coerce_plain(s.as_str()).is_none() {
                return Ok((Inherit::TopLevel, span));
            }
        }
        let Some(rendered) = r.render(node)? else {
            return Ok((Inherit::TopLevel, span));
        };
        if rendered.as_map().is_some() {
            let mut from = None;
            let mut run_exports = true;
            for (k, v) in reader.map(&rendered, "inherit", &["from", "run_exports"])? {
                if k.name == "from" {
                    from = Some(reader.string(v, "inherit.from")?);
                } else {
                    run_exports = reader.bool(v, "inherit.run_exports")?;
                }
            }
            let name = from.ok_or_else(|| {
                self.file
                    .error(&span, "`inherit` needs `from`", "name the staging output here")
            })?;
            return Ok((Inherit::Staging { name, run_exports }, span));
        }
        let name = reader.string(&rendered, "inherit")?;
        Ok((
            Inherit::Staging {
                name,
                run_exports: true,
            },
            span,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn staging_output(
        &self,
        node: &Node,
        name: String,
        parent: Option<(String, Span)>,
        r: &Renderer,
        reader: &Reader,
        top: &TopLevel,
        allowed: &[&str],
    ) -> PResult<StagingOutput> {
        let omap = node
            .as_mapping()
            .ok_or_else(|| self.file.error(node.span(), "expected a mapping", "here"))?;
        self.check_keys(omap, allowed, "a staging output")?;
        let render = |key: &str| render_key(r, omap, key);
        let requirements = match render("requirements")? {
            Some(n) => {
                if let Some(entries) = n.as_map() {
                    for (k, _) in entries {
                        if matches!(k.name.as_str(), "run" | "run_constraints" | "run_exports") {
                            return Err(self
                                .file
                                .error(&k.span, format!("`{}` is not allowed in staging requirements", k.name), "not allowed here")
                                .with_help("staging outputs take `build`, `host` and `ignore_run_exports`; put runtime requirements on the package outputs"));
                        }
                    }
                }
                reader.requirements(&n)?
            }
            None => Requirements::default(),
        };
        let script = match render("build")? {
            Some(n) => {
                let entries = n
                    .as_map()
                    .ok_or_else(|| self.file.error(&n.span, "`build` must be a mapping", "here"))?;
                if let Some((k, _)) = entries.iter().find(|(k, _)| k.name != "script") {
                    return Err(self
                        .file
                        .error(&k.span, format!("`build.{}` is not allowed in a staging output", k.name), "not allowed here")
                        .with_help("a staging output's `build` takes only `script`; set other build options on the package outputs"));
                }
                reader.build(&n, None)?.script
            }
            None => None,
        };
        // Top-level sources belong to the first staging build; a nested one finds them in the restored work dir.
        let mut source = if parent.is_none() {
            top.source.clone()
        } else {
            Vec::new()
        };
        if let Some(n) = render("source")? {
            source.extend(reader.sources(&n)?);
        }
        Ok(StagingOutput {
            name,
            source,
            requirements,
            script,
            inherit: parent.map(|(n, _)| n),
            used_variant: Variant::new(),
            span: *node.span(),
        })
    }

    fn package_output(
        &self,
        raw: &Node,
        r: &Renderer,
        reader: &Reader,
        top: &TopLevel,
        cache_name: Option<&str>,
    ) -> PResult<Option<Output>> {
        let omap = raw.as_mapping().expect("checked by caller");
        self.check_keys(omap, OUTPUT_KEYS, "output")?;
        let render = |key: &str| render_key(r, omap, key);
        let (inherit, inherit_span) = match (omap.get_node("inherit"), cache_name) {
            (Some(node), _) => {
                let (i, span) = self.inherit(node, r, reader)?;
                (i, Some(span))
            }
            (None, Some(cache)) => (
                Inherit::Staging {
                    name: cache.to_string(),
                    run_exports: true,
                },
                None,
            ),
            (None, None) => (Inherit::TopLevel, None),
        };
        let pkg_node = render("package")?.ok_or_else(|| {
            self.file
                .error(raw.span(), "output without `package`", "this output")
                .with_help("each output needs `package: {name: ...}`")
        })?;
        let package = reader.package(&pkg_node, "package", top.version.as_ref())?;
        let own_build = match omap.get_node("build").map(|n| r.render_build(n)).transpose()?.flatten() {
            Some(n) => reader.build(&n, raw_build_string(omap.get_node("build")))?,
            None => BuildSection::default(),
        };
        if own_build.skip || top.build.skip {
            return Ok(None);
        }
        let from_staging = inherit.staging_name().is_some();
        // A staging inheritor gets top-level sources through the staging work dir, and no top-level script or tests.
        let mut source = if from_staging { Vec::new() } else { top.source.clone() };
        if let Some(n) = render("source")? {
            source.extend(reader.sources(&n)?);
        }
        let mut tests = if from_staging { Vec::new() } else { top.tests.clone() };
        if let Some(n) = render("tests")? {
            tests.extend(reader.tests(&n)?);
        }
        let about = match render("about")? {
            Some(n) => merge_about(reader.about(&n)?, &top.about),
            None => top.about.clone(),
        };
        let requirements = render("requirements")?
            .map(|n| reader.requirements(&n))
            .transpose()?
            .unwrap_or_default();
        let mut fallback = top.build.clone();
        if from_staging {
            fallback.script = None;
        }
        Ok(Some(Output {
            package,
            source,
            build: finish_build(own_build, fallback),
            requirements,
            tests,
            about,
            extra: top.extra.clone(),
            inherit,
            inherit_span,
            used_variant: Variant::new(),
            span: *raw.span(),
        }))
    }

    /// Names must be unique, inherit targets must exist, nesting must not loop.
    fn check_names(&self, outputs: &[Output], staging: &[StagingOutput]) -> PResult<()> {
        for (i, s) in staging.iter().enumerate() {
            if staging[..i].iter().any(|o| o.name == s.name) {
                return Err(self.file.error(
                    &s.span,
                    format!("two staging outputs are named `{}`", s.name),
                    "second one",
                ));
            }
        }
        for (i, a) in outputs.iter().enumerate() {
            let name = a.package.name.as_normalized();
            if outputs[..i].iter().any(|b| b.package.name == a.package.name) {
                return Err(self.file.error(
                    &a.span,
                    format!("two outputs are named `{name}`"),
                    "second output with this name",
                ));
            }
            if staging.iter().any(|s| s.name == name) {
                return Err(self.file.error(
                    &a.span,
                    format!("package output `{name}` has the name of a staging output"),
                    "rename one of them",
                ));
            }
        }
        let available = || {
            let names: Vec<&str> = staging.iter().map(|s| s.name.as_str()).collect();
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        };
        for o in outputs {
            if let Some(name) = o.inherit.staging_name() {
                if !staging.iter().any(|s| s.name == name) {
                    let span = o.inherit_span.unwrap_or(o.span);
                    return Err(self
                        .file
                        .error(
                            &span,
                            format!("staging cache '{name}' not found. Available caches: {}", available()),
                            "unknown name",
                        )
                        .with_help(
                            "`inherit:` names a `staging:` output of this recipe, or is `null` for the top-level build",
                        ));
                }
            }
        }
        for s in staging {
            let chain = staging_chain(staging, &s.name);
            let last = chain.last().copied().unwrap_or(s);
            if let Some(parent) = &last.inherit {
                if !chain.iter().any(|c| &c.name == parent) {
                    return Err(self.file.error(
                        &last.span,
                        format!("staging cache '{parent}' not found. Available caches: {}", available()),
                        "inherits an unknown staging output",
                    ));
                }
                // The chain stopped at a name it had seen: a cycle.
                let mut seen: Vec<&str> = chain.iter().map(|c| c.name.as_str()).collect();
                seen.push(parent);
                return Err(self.file.error(
                    &s.span,
                    format!(
                        "staging outputs inherit from each other in a cycle: {}",
                        seen.join(" -> ")
                    ),
                    "part of the cycle",
                ));
            }
        }
        Ok(())
    }

    fn expand_output_conditionals<'n>(&self, item: &'n Node, r: &Renderer, out: &mut Vec<&'n Node>) -> PResult<()> {
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

    fn context(
        &self,
        node: Option<&Node>,
        jinja: &mut Jinja,
        usage: &mut Usage,
    ) -> PResult<IndexMap<String, serde_json::Value>> {
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
            jinja.take_accessed();
            let value = match (Renderer { file: self.file, jinja }).render(v)? {
                Some(n) => match n.as_scalar() {
                    Some(s) => s.clone(),
                    None => Value::from_serialize(n.to_json()),
                },
                None => Value::from(()),
            };
            out.insert(
                k.as_str().to_string(),
                serde_json::to_value(&value).unwrap_or(serde_json::Value::Null),
            );
            let deps = usage.resolve(jinja.take_accessed());
            usage.context.insert(k.as_str().to_string(), deps);
            jinja.set_var(k.as_str(), value);
        }
        Ok(out)
    }
}

/// Set a staging output's own used variant: the keys its expressions read
/// and its bare build/host names that are variant keys (substituted).
fn set_staging_variant(s: &mut StagingOutput, mut used: BTreeSet<String>, variant: &Variant) {
    used.extend(substitute_variant(&mut s.requirements, variant));
    used.extend(crate::syntax::variant::implied_keys(&used, variant));
    s.used_variant = used
        .into_iter()
        .filter_map(|k| variant.get(&k).map(|v| (k, v.clone())))
        .collect();
}

/// A nested staging output also uses the keys of the ones it inherits.
fn inherit_staging_variants(staging: &mut [StagingOutput]) {
    let extras: Vec<Variant> = staging
        .iter()
        .map(|s| {
            let mut extra = Variant::new();
            for p in staging_chain(staging, &s.name).into_iter().skip(1) {
                for (k, v) in &p.used_variant {
                    extra.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            extra
        })
        .collect();
    for (s, extra) in staging.iter_mut().zip(extras) {
        for (k, v) in extra {
            s.used_variant.entry(k).or_insert(v);
        }
    }
}

/// Variant substitution (as rattler-build does it): a build or host
/// requirement that is a bare package name which is also a variant key
/// becomes `name =<value>` (or `name <value>` when the value is a full
/// spec such as `3.11.* *_cpython`). Returns the keys substituted.
fn substitute_variant(r: &mut Requirements, variant: &Variant) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for d in r.build.iter_mut().chain(r.host.iter_mut()) {
        if d.pin.is_some() {
            continue;
        }
        let name = d.spec.trim();
        let bare = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !bare {
            continue;
        }
        let key = crate::syntax::variant::normalize_key(&name.to_lowercase());
        let Some(value) = variant.get(&key) else { continue };
        let value = crate::syntax::variant::variant_text(value);
        d.spec = if value.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
            format!("{name} ={value}")
        } else {
            format!("{name} {value}")
        };
        used.insert(key);
    }
    used
}

/// Render `key` of a raw mapping; absent or rendering to nothing is `None`.
fn render_key(r: &Renderer, map: &MarkedMappingNode, key: &str) -> PResult<Option<RNode>> {
    map.get_node(key).map(|n| r.render(n)).transpose().map(Option::flatten)
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
        noarch_span: own.noarch.as_ref().or(top.noarch.as_ref()).map(|(_, s)| *s),
        noarch: own
            .noarch
            .or(top.noarch)
            .map(|(n, _)| n)
            .unwrap_or_else(rattler_conda_types::NoArchType::none),
        files: own.files.or(top.files).unwrap_or_default(),
        always_include_files: if own.always_include_files.is_empty() {
            top.always_include_files
        } else {
            own.always_include_files
        },
        variant: own.variant.or(top.variant).unwrap_or_default(),
    }
}
