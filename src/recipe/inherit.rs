//! Output sections and inheritance: staging outputs, package outputs and
//! what they take from the top level (`source`, `build`, `about`, `tests`)
//! or from the staging output named by `inherit:`, and the checks that
//! names are unique and `inherit:` chains end.

use marked_yaml::{Node, Span};

use super::model::*;
use super::outputs::*;
use super::parse::{PResult, Reader};
use crate::syntax::node::{coerce_plain, Renderer};

impl Loader<'_> {
    /// `inherit:` of an output: the top level, or a staging output with its span.
    pub(super) fn inherit(&self, node: &Node, r: &Renderer, reader: &Reader) -> PResult<(Inherit, Span)> {
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
    pub(super) fn staging_output(
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
        // Checked on the written keys: rendering a `build` section drops `string`.
        if let Some(build) = omap.get_node("build") {
            let entries = build
                .as_mapping()
                .ok_or_else(|| self.file.error(build.span(), "`build` must be a mapping", "here"))?;
            if let Some((k, _)) = entries
                .iter()
                .find(|(k, _)| k.as_str() != "script" && k.as_str() != "steps")
            {
                return Err(self
                    .file
                    .error(k.span(), format!("`build.{}` is not allowed in a staging output", k.as_str()), "not allowed here")
                    .with_help("a staging output's `build` takes only `script` or `steps`; set other build options on the package outputs"));
            }
        }
        let script = match render("build")? {
            Some(n) => reader.build(&n, None)?.script,
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

    pub(super) fn package_output(
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
        let mut requirements = render("requirements")?
            .map(|n| reader.requirements(&n))
            .transpose()?
            .unwrap_or_default();
        let mut fallback = top.build.clone();
        if from_staging {
            fallback.script = None;
        }
        let build = finish_build(own_build, fallback);
        super::python::ignore_python_exports(&build, &mut requirements);
        Ok(Some(Output {
            package,
            source,
            build,
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
    pub(super) fn check_names(&self, outputs: &[Output], staging: &[StagingOutput]) -> PResult<()> {
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
}

pub(super) fn raw_build_string(build: Option<&Node>) -> Option<(String, Span)> {
    let s = build?.as_mapping()?.get_scalar("string")?;
    Some((s.as_str().to_string(), *s.span()))
}

pub(super) fn merge_about(own: About, top: &About) -> About {
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
pub(super) fn finish_build(own: BuildSection, top: BuildSection) -> Build {
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
        dynamic_linking: own.dynamic_linking.or(top.dynamic_linking).unwrap_or_default(),
        prefix_detection: own.prefix_detection.or(top.prefix_detection).unwrap_or_default(),
        post_process: own.post_process.or(top.post_process).unwrap_or_default(),
        always_copy_files: own.always_copy_files.or(top.always_copy_files).unwrap_or_default(),
        merge_build_and_host_envs: own
            .merge_build_and_host_envs
            .or(top.merge_build_and_host_envs)
            .unwrap_or_default(),
        python: own.python.or(top.python).unwrap_or_default(),
    }
}
