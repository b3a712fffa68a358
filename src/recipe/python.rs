//! `build.python`: entry points, byte-code compilation settings and the
//! `python` package's own site-packages path.

use marked_yaml::Span;
use serde::Serialize;

use super::model::Glob;
use super::parse::{PResult, Reader};
use crate::syntax::node::RNode;

/// The `build.python` section.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PythonSettings {
    /// `entry_points`: console commands (`name = module:function`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entry_points: Vec<EntryPoint>,
    /// `skip_pyc_compilation`: `.py` files not compiled to byte-code.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skip_pyc_compilation: Vec<Glob>,
    /// `use_python_app_entrypoint`: launchers run `python.app` (macOS only).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub use_python_app_entrypoint: bool,
    /// `site_packages_path`: where the `python` package being built keeps
    /// site-packages (recorded as `python_site_packages_path`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site_packages_path: Option<String>,
    /// Where `site_packages_path` is written.
    #[serde(skip)]
    pub site_packages_span: Option<Span>,
    /// `version_independent`: an abi3 package, built per platform but laid
    /// out and installed like `noarch: python`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub version_independent: bool,
}

impl PythonSettings {
    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        self.entry_points.is_empty()
            && self.skip_pyc_compilation.is_empty()
            && !self.use_python_app_entrypoint
            && self.site_packages_path.is_none()
            && !self.version_independent
    }
}

/// One console entry point.
#[derive(Debug, Clone, Serialize)]
#[serde(into = "String")]
pub struct EntryPoint {
    /// The command (`bin/<command>`).
    pub command: String,
    /// The module to import.
    pub module: String,
    /// The function (or `object.attribute`) to call.
    pub function: String,
    /// Where it is written.
    pub span: Span,
}

impl From<EntryPoint> for String {
    fn from(e: EntryPoint) -> String {
        e.to_string()
    }
}

impl std::fmt::Display for EntryPoint {
    /// The canonical `command = module:function` form (`link.json`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} = {}:{}", self.command, self.module, self.function)
    }
}

/// Parse `command = module:function`; `None` when malformed.
pub fn parse_entry_point(text: &str, span: Span) -> Option<EntryPoint> {
    let (command, target) = text.split_once('=')?;
    let (module, function) = target.split_once(':')?;
    let (command, module, function) = (command.trim(), module.trim(), function.trim());
    let identifier = |s: &str| {
        s.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_alphanumeric() || c == '_')
    };
    let dotted = |s: &str| s.split('.').all(identifier);
    let command_ok = !command.is_empty()
        && !command.starts_with(['.', '-'])
        && command
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'));
    let valid = command_ok && dotted(module) && dotted(function);
    valid.then(|| EntryPoint {
        command: command.to_string(),
        module: module.to_string(),
        function: function.to_string(),
        span,
    })
}

/// An abi3 package (`version_independent`) works with every python: the
/// host python's run exports (which pin one version) do not apply, both
/// ways, as in rattler-build.
pub fn ignore_python_exports(build: &super::model::Build, requirements: &mut super::model::Requirements) {
    if !build.python.version_independent {
        return;
    }
    let ignore = &mut requirements.ignore_run_exports;
    for list in [&mut ignore.from_package, &mut ignore.by_name] {
        if !list.iter().any(|n| n == "python") {
            list.push("python".to_string());
        }
    }
}

impl Reader<'_> {
    /// The `build.python` section.
    pub fn python(&self, node: &RNode) -> PResult<PythonSettings> {
        let keys = [
            "entry_points",
            "skip_pyc_compilation",
            "use_python_app_entrypoint",
            "version_independent",
            "site_packages_path",
        ];
        let mut p = PythonSettings::default();
        for (k, v) in self.map(node, "build.python", &keys)? {
            match k.name.as_str() {
                "entry_points" => {
                    for (text, span) in self.string_list(v, "entry_points")? {
                        let e = parse_entry_point(&text, span).ok_or_else(|| {
                            self.file
                                .error(
                                    &span,
                                    format!("invalid entry point `{text}`"),
                                    "expected `command = module:function`",
                                )
                                .with_help("for example `mytool = mypackage.cli:main`")
                        })?;
                        p.entry_points.push(e);
                    }
                }
                "skip_pyc_compilation" => p.skip_pyc_compilation = self.globs(v, "skip_pyc_compilation")?,
                "use_python_app_entrypoint" => {
                    p.use_python_app_entrypoint = self.bool(v, "build.python.use_python_app_entrypoint")?
                }
                "site_packages_path" => {
                    let path = self.string(v, "build.python.site_packages_path")?;
                    if path.is_empty()
                        || crate::disk::safe_join(std::path::Path::new("/"), std::path::Path::new(&path)).is_none()
                    {
                        return Err(self
                            .file
                            .error(&v.span, "`site_packages_path` must be a path inside the prefix", "here")
                            .with_help("write it relative to the prefix, e.g. `lib/python3.13t/site-packages`"));
                    }
                    p.site_packages_path = Some(path);
                    p.site_packages_span = Some(v.span);
                }
                _ => p.version_independent = self.bool(v, "build.python.version_independent")?,
            }
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_points_parse_in_their_canonical_form() {
        let span = Span::new_blank();
        let e = parse_entry_point("my-tool =  pkg.cli:main ", span).unwrap();
        assert_eq!(
            (e.command.as_str(), e.module.as_str(), e.function.as_str()),
            ("my-tool", "pkg.cli", "main")
        );
        assert_eq!(e.to_string(), "my-tool = pkg.cli:main");
        for bad in [
            "tool",
            "tool = pkg",
            "= pkg:main",
            "tool = pkg:",
            "../x = pkg:main",
            "a b = pkg:main",
            "tool = pkg:main.",
            "tool = pkg..cli:main",
            "tool = 1pkg:main",
        ] {
            assert!(parse_entry_point(bad, span).is_none(), "{bad}");
        }
    }
}
