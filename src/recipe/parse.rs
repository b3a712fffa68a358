//! Strict conversion of rendered nodes into the typed model: unknown keys,
//! wrong types and invalid match specs are errors that point at the node.

use std::str::FromStr;

use marked_yaml::Span;
use minijinja::value::ValueKind;
use rattler_conda_types::{MatchSpec, PackageName, ParseStrictness, VersionWithSource};

use super::model::*;
use crate::diagnostics::{SourceError, SourceFile};
use crate::syntax::node::{Key, RNode};

/// Result of parsing: errors are located in the recipe file.
pub type PResult<T> = Result<T, SourceError>;

/// Converts rendered nodes of one file into model types.
pub struct Reader<'a> {
    /// The recipe file.
    pub file: &'a SourceFile,
    /// `--experimental`: unlocks `build.steps`.
    pub experimental: bool,
}

impl<'a> Reader<'a> {
    /// The entries of a mapping, rejecting keys outside `allowed`.
    pub fn map<'n>(&self, node: &'n RNode, what: &str, allowed: &[&str]) -> PResult<&'n [(Key, RNode)]> {
        let entries = node.as_map().ok_or_else(|| {
            self.file
                .error(&node.span, format!("`{what}` must be a mapping"), "expected a mapping")
        })?;
        for (k, _) in entries {
            if !allowed.contains(&k.name.as_str()) {
                return Err(self
                    .file
                    .error(
                        &k.span,
                        format!("unknown key `{}` in `{what}`", k.name),
                        "not allowed here",
                    )
                    .with_help(format!("allowed keys: {}", allowed.join(", "))));
            }
        }
        Ok(entries)
    }

    /// A scalar as text.
    pub fn string(&self, node: &RNode, what: &str) -> PResult<String> {
        match node.as_scalar() {
            Some(v) if v.kind() != ValueKind::Seq && v.kind() != ValueKind::Map => Ok(match v.as_str() {
                Some(s) => s.to_string(),
                // YAML spelling, not Python's (`false`, not `False`).
                None if v.kind() == ValueKind::Bool => if v.is_true() { "true" } else { "false" }.to_string(),
                None => v.to_string(),
            }),
            _ => Err(self
                .file
                .error(&node.span, format!("`{what}` must be a string"), "expected a string")),
        }
    }

    /// A boolean scalar.
    pub fn bool(&self, node: &RNode, what: &str) -> PResult<bool> {
        match node.as_scalar() {
            Some(v) if v.kind() == ValueKind::Bool => Ok(v.is_true()),
            _ => Err(self.file.error(
                &node.span,
                format!("`{what}` must be true or false"),
                "expected a boolean",
            )),
        }
    }

    /// A non-negative integer scalar.
    pub fn u64(&self, node: &RNode, what: &str) -> PResult<u64> {
        let text = self.string(node, what)?;
        text.trim().parse().map_err(|_| {
            self.file.error(
                &node.span,
                format!("`{what}` must be a non-negative integer, got `{text}`"),
                "expected an integer",
            )
        })
    }

    /// A string or a list of strings, each with its span.
    pub fn string_list(&self, node: &RNode, what: &str) -> PResult<Vec<(String, Span)>> {
        match node.as_seq() {
            Some(items) => items.iter().map(|i| Ok((self.string(i, what)?, i.span))).collect(),
            None => Ok(vec![(self.string(node, what)?, node.span)]),
        }
    }

    pub(super) fn globs(&self, node: &RNode, what: &str) -> PResult<Vec<Glob>> {
        Ok(self
            .string_list(node, what)?
            .into_iter()
            .map(|(pattern, span)| Glob { pattern, span })
            .collect())
    }

    /// `package: {name, version}` (version optional when `fallback` is given).
    pub fn package(
        &self,
        node: &RNode,
        what: &str,
        fallback_version: Option<&VersionWithSource>,
    ) -> PResult<PackageId> {
        let entries = self.map(node, what, &["name", "version"])?;
        let get = |k: &str| entries.iter().find(|(key, _)| key.name == k).map(|(_, v)| v);
        let name_node = get("name").ok_or_else(|| {
            self.file
                .error(
                    &node.span,
                    format!("missing `{what}.name`"),
                    "this section needs a `name`",
                )
                .with_help("every package needs a name, e.g. `name: mypackage`")
        })?;
        let name = self.package_name(name_node)?;
        let version = match (get("version"), fallback_version) {
            (Some(v), _) => self.version(v)?,
            (None, Some(v)) => v.clone(),
            (None, None) => {
                return Err(self.file.error(
                    &node.span,
                    format!("missing `{what}.version`"),
                    "no version here or at the top level",
                ))
            }
        };
        Ok(PackageId { name, version })
    }

    /// A package name.
    pub fn package_name(&self, node: &RNode) -> PResult<PackageName> {
        let text = self.string(node, "name")?;
        PackageName::from_str(&text).map_err(|e| {
            self.file
                .error(&node.span, format!("invalid package name `{text}`: {e}"), "here")
        })
    }

    /// A version.
    pub fn version(&self, node: &RNode) -> PResult<VersionWithSource> {
        let text = self.string(node, "version")?;
        VersionWithSource::from_str(&text).map_err(|e| {
            self.file
                .error(&node.span, format!("invalid version `{text}`: {e}"), "here")
        })
    }

    fn dependencies(&self, node: &RNode, what: &str) -> PResult<Vec<Dependency>> {
        let items = node.as_seq().ok_or_else(|| {
            self.file.error(
                &node.span,
                format!("`{what}` must be a list of match specs"),
                "expected a list",
            )
        })?;
        items
            .iter()
            .map(|item| {
                let spec = self.string(item, what)?;
                if spec.starts_with('{') {
                    // The JSON a pin function rendered to.
                    if let Ok(pin) = serde_json::from_str::<Pin>(&spec) {
                        return Ok(Dependency {
                            spec: pin.name.clone(),
                            pin: Some(pin),
                            span: item.span,
                        });
                    }
                }
                let spec = self.match_spec(spec, &item.span, what)?;
                Ok(Dependency {
                    spec,
                    pin: None,
                    span: item.span,
                })
            })
            .collect()
    }

    /// The `requirements` section.
    pub fn requirements(&self, node: &RNode) -> PResult<Requirements> {
        let entries = self.map(
            node,
            "requirements",
            &[
                "build",
                "host",
                "run",
                "run_constraints",
                "run_exports",
                "ignore_run_exports",
            ],
        )?;
        let mut r = Requirements::default();
        for (k, v) in entries {
            let what = format!("requirements.{}", k.name);
            match k.name.as_str() {
                "build" => r.build = self.dependencies(v, &what)?,
                "host" => r.host = self.dependencies(v, &what)?,
                "run" => r.run = self.dependencies(v, &what)?,
                "run_constraints" => r.run_constraints = self.dependencies(v, &what)?,
                "run_exports" => r.run_exports = self.run_exports(v)?,
                "ignore_run_exports" => {
                    for (ik, iv) in self.map(v, &what, &["from_package", "by_name"])? {
                        let names = self.string_list(iv, &ik.name)?.into_iter().map(|(s, _)| s).collect();
                        if ik.name == "from_package" {
                            r.ignore_run_exports.from_package = names;
                        } else {
                            r.ignore_run_exports.by_name = names;
                        }
                    }
                }
                _ => unreachable!("keys checked above"),
            }
        }
        Ok(r)
    }

    fn run_exports(&self, node: &RNode) -> PResult<RunExports> {
        if node.as_seq().is_some() {
            return Ok(RunExports {
                weak: self.dependencies(node, "run_exports")?,
                ..Default::default()
            });
        }
        let mut out = RunExports::default();
        for (k, v) in self.map(
            node,
            "run_exports",
            &["weak", "strong", "noarch", "weak_constraints", "strong_constraints"],
        )? {
            let deps = self.dependencies(v, &format!("run_exports.{}", k.name))?;
            match k.name.as_str() {
                "weak" => out.weak = deps,
                "strong" => out.strong = deps,
                "noarch" => out.noarch = deps,
                "weak_constraints" => out.weak_constraints = deps,
                _ => out.strong_constraints = deps,
            }
        }
        Ok(out)
    }

    /// A match spec in the strict v1 grammar, or one conda reads leniently
    /// (then written in the strict form, with a warning at `span` naming it);
    /// an error at `span` for what conda refuses too.
    pub(super) fn match_spec(&self, spec: String, span: &Span, what: &str) -> PResult<String> {
        match MatchSpec::from_str(&spec, ParseStrictness::Strict) {
            Ok(_) => Ok(spec),
            Err(e) => match as_conda_reads_it(&spec) {
                Some(strict) => {
                    crate::diagnostics::warn_once(format!(
                        "{}: `{spec}` is read as conda reads it, `{strict}`; write that instead",
                        self.file.location(span)
                    ));
                    Ok(strict)
                }
                None => Err(self
                    .file
                    .error(
                        span,
                        format!("invalid match spec `{spec}` in `{what}`: {e}"),
                        "not a valid match spec",
                    )
                    .with_help("a match spec looks like `name`, `name >=1.2,<2` or `name 1.2.* build_string`")),
            },
        }
    }

    /// The `about` section.
    pub fn about(&self, node: &RNode) -> PResult<About> {
        let entries = self.map(
            node,
            "about",
            &[
                "homepage",
                "repository",
                "documentation",
                "license",
                "license_file",
                "license_family",
                "summary",
                "description",
            ],
        )?;
        let mut a = About::default();
        for (k, v) in entries {
            if k.name == "license_file" {
                a.license_file = self.globs(v, "license_file")?;
                continue;
            }
            let s = Some(self.string(v, &k.name)?);
            match k.name.as_str() {
                "homepage" => a.homepage = s,
                "repository" => a.repository = s,
                "documentation" => a.documentation = s,
                "license" => a.license = s,
                "license_family" => a.license_family = s,
                "summary" => a.summary = s,
                _ => a.description = s,
            }
        }
        Ok(a)
    }
}

/// A spec conda accepts but the strict v1 grammar does not (`zlib 1.3.1 *_2`:
/// a bare version means `==`; `x ==1.0.*` means `1.0.*`), in the strict form
/// that means the same. `None` for what conda refuses too: more than the
/// three space-separated parts `name version build`, or no valid reading.
pub fn as_conda_reads_it(spec: &str) -> Option<String> {
    if spec.contains('[') || spec.split_whitespace().count() > 3 {
        return None;
    }
    let parsed = MatchSpec::from_str(spec, ParseStrictness::Lenient).ok()?;
    let strict = parsed.to_string();
    MatchSpec::from_str(&strict, ParseStrictness::Strict).ok()?;
    Some(strict)
}
