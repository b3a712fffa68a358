//! The `tests` section: the typed test kinds and their strict parsing.
//! Every key has its effect (see `crate::testing`) or is an error at its
//! line. Serialized in the recipe's own shape for the rendered recipe.

use marked_yaml::Span;
use serde::Serialize;

use super::model::{Glob, Script, ScriptBody};
use super::parse::{PResult, Reader};
use crate::syntax::node::RNode;

/// One entry of `tests:`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PackageTest {
    /// Commands run in an environment with the package.
    Script(ScriptTest),
    /// Python imports and `pip check`.
    Python(PythonTest),
    /// What the package contains, checked right after packaging.
    PackageContents(ContentsTest),
    /// Run the tests of a downstream package against this one.
    Downstream(String),
    /// `use` Perl modules.
    Perl(LanguageTest),
    /// `library()` R packages.
    R(LanguageTest),
    /// `require` Ruby gems.
    Ruby(LanguageTest),
}

/// A `script` test.
#[derive(Debug, Clone, Serialize)]
pub struct ScriptTest {
    /// The commands (`content`/`file`, `env`, `secrets`), bash.
    pub script: Script,
    /// `requirements.run` (the test environment) and `requirements.build`
    /// (tools for the build platform, on `PATH` first).
    pub requirements: TestRequirements,
    /// `files.source` (from the work directory) and `files.recipe`.
    pub files: TestFiles,
}

/// `requirements` of a script test.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TestRequirements {
    /// Specs for the environment the package is tested in.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub run: Vec<String>,
    /// Specs for an environment of the build platform, stacked on top.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub build: Vec<String>,
}

/// `files` of a script test: globs copied into the package for the test.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TestFiles {
    /// From the work directory after the build.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source: Vec<Glob>,
    /// From the recipe directory.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recipe: Vec<Glob>,
}

impl TestFiles {
    /// No files to ship.
    pub fn is_empty(&self) -> bool {
        self.source.is_empty() && self.recipe.is_empty()
    }
}

/// A `python` test.
#[derive(Debug, Clone, Serialize)]
pub struct PythonTest {
    /// Modules to import.
    pub imports: Vec<String>,
    /// Run `pip check` (default true).
    pub pip_check: bool,
    /// One test environment per version (none: whatever python resolves to).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub python_version: Vec<String>,
}

/// A `perl`, `r` or `ruby` test: names to load.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct LanguageTest {
    /// Modules, libraries or gems.
    pub names: Vec<String>,
}

/// A `package_contents` test.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ContentsTest {
    /// Paths anywhere in the package.
    pub files: Presence,
    /// Python modules (`a.b`) in site-packages.
    pub site_packages: Presence,
    /// Executables in `bin/`.
    pub bin: Presence,
    /// Libraries in `lib/` (`foo` matches `libfoo.so`, `libfoo.so.1`).
    pub lib: Presence,
    /// Headers in `include/` (`foo` matches `foo.h`, `foo.hpp`).
    pub include: Presence,
    /// Every file of the package must be matched by some `exists` glob.
    pub strict: bool,
    /// Where the test is declared.
    #[serde(skip)]
    pub span: Option<Span>,
}

/// Globs that must match something, and globs that must match nothing.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Presence {
    /// Each must match at least one file.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exists: Vec<Glob>,
    /// None may match any file.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_exists: Vec<Glob>,
}

const KINDS: &[&str] = &[
    "script",
    "python",
    "package_contents",
    "downstream",
    "perl",
    "r",
    "ruby",
];

impl Reader<'_> {
    /// The `tests` section: a list of tests.
    pub fn tests(&self, node: &RNode) -> PResult<Vec<PackageTest>> {
        let items = node
            .as_seq()
            .ok_or_else(|| self.file.error(&node.span, "`tests` must be a list", "expected a list"))?;
        items.iter().map(|item| self.test(item)).collect()
    }

    fn test(&self, item: &RNode) -> PResult<PackageTest> {
        let entries = item
            .as_map()
            .ok_or_else(|| self.file.error(&item.span, "each test must be a mapping", "here"))?;
        let Some((kind, value)) = entries.iter().find(|(k, _)| KINDS.contains(&k.name.as_str())) else {
            return Err(self
                .file
                .error(&item.span, "unknown test kind", "no known test key")
                .with_help(format!("a test has one of: {}", KINDS.join(", "))));
        };
        if kind.name != "script" {
            // Only a script test has sibling keys.
            self.map(item, &format!("{} test", kind.name), &[kind.name.as_str()])?;
        }
        Ok(match kind.name.as_str() {
            "script" => PackageTest::Script(self.script_test(item)?),
            "python" => PackageTest::Python(self.python_test(value)?),
            "package_contents" => PackageTest::PackageContents(self.contents_test(value)?),
            "downstream" => PackageTest::Downstream(self.string(value, "downstream")?),
            "perl" => PackageTest::Perl(self.language_test(value, "perl", "uses")?),
            "r" => PackageTest::R(self.language_test(value, "r", "libraries")?),
            _ => PackageTest::Ruby(self.language_test(value, "ruby", "requires")?),
        })
    }

    fn script_test(&self, item: &RNode) -> PResult<ScriptTest> {
        let mut test = ScriptTest {
            script: Script {
                body: ScriptBody::Inline(String::new()),
                env: Default::default(),
                secrets: Vec::new(),
                span: item.span,
                lines: Vec::new(),
                cwd: None,
                interpreter: None,
                interpreter_span: None,
            },
            requirements: TestRequirements::default(),
            files: TestFiles::default(),
        };
        for (k, v) in self.map(item, "script test", &["script", "requirements", "files"])? {
            match k.name.as_str() {
                "script" => {
                    test.script = self.script(v)?;
                    if test.script.interpreter.as_deref() == Some("r") {
                        test.script.interpreter = Some("rscript".into());
                    }
                    if let (Some(i), Some(at)) = (&test.script.interpreter, test.script.interpreter_span) {
                        if !matches!(i.as_str(), "bash" | "python" | "perl" | "rscript" | "r") {
                            return Err(self
                                .file
                                .error(
                                    &at,
                                    format!("interpreter `{i}` in a test script is not supported yet"),
                                    "here",
                                )
                                .with_help("tests run with bash, python, perl or rscript"));
                        }
                    }
                    if test.script.cwd.is_some() {
                        let at = v
                            .as_map()
                            .and_then(|m| m.iter().find(|(k, _)| k.name == "cwd"))
                            .map_or(v.span, |(k, _)| k.span);
                        return Err(self
                            .file
                            .error(&at, "`cwd` in a test script is not supported yet", "remove it")
                            .with_help("a test runs where its `files` are shipped"));
                    }
                }
                "requirements" => {
                    for (rk, rv) in self.map(v, "tests.requirements", &["run", "build"])? {
                        let specs = self
                            .string_list(rv, &rk.name)?
                            .into_iter()
                            .map(|(s, span)| self.test_spec(&s, &span))
                            .collect::<PResult<Vec<_>>>()?;
                        if rk.name == "run" {
                            test.requirements.run = specs;
                        } else {
                            test.requirements.build = specs;
                        }
                    }
                }
                _ => {
                    for (fk, fv) in self.map(v, "tests.files", &["source", "recipe"])? {
                        let globs = self.globs(fv, &fk.name)?;
                        if fk.name == "source" {
                            test.files.source = globs;
                        } else {
                            test.files.recipe = globs;
                        }
                    }
                }
            }
        }
        Ok(test)
    }

    /// A match spec of a test requirement, read as conda reads it.
    fn test_spec(&self, spec: &str, span: &Span) -> PResult<String> {
        if spec.starts_with('{') {
            // The JSON a pin function rendered to.
            return Err(self
                .file
                .error(span, "pin functions in test requirements are not supported yet", "here")
                .with_help("name the package instead (the package under test is pinned exactly anyway)"));
        }
        self.match_spec(spec.to_string(), span, "tests.requirements")
    }

    fn python_test(&self, node: &RNode) -> PResult<PythonTest> {
        let mut test = PythonTest {
            imports: Vec::new(),
            pip_check: true,
            python_version: Vec::new(),
        };
        for (k, v) in self.map(node, "python test", &["imports", "pip_check", "python_version"])? {
            match k.name.as_str() {
                "imports" => test.imports = self.string_list(v, "imports")?.into_iter().map(|(s, _)| s).collect(),
                "pip_check" => test.pip_check = self.bool(v, "pip_check")?,
                _ => {
                    test.python_version = self
                        .string_list(v, "python_version")?
                        .into_iter()
                        .map(|(s, _)| s)
                        .collect()
                }
            }
        }
        if test.imports.is_empty() && !test.pip_check {
            return Err(self.file.error(
                &node.span,
                "this python test checks nothing",
                "no `imports` and `pip_check: false`",
            ));
        }
        Ok(test)
    }

    fn language_test(&self, node: &RNode, kind: &str, key: &str) -> PResult<LanguageTest> {
        let entries = self.map(node, &format!("{kind} test"), &[key])?;
        let names: Vec<String> = match entries.first() {
            Some((_, v)) => self.string_list(v, key)?.into_iter().map(|(s, _)| s).collect(),
            None => Vec::new(),
        };
        if names.is_empty() {
            return Err(self.file.error(
                &node.span,
                format!("this {kind} test checks nothing"),
                format!("`{key}` lists nothing"),
            ));
        }
        Ok(LanguageTest { names })
    }

    fn contents_test(&self, node: &RNode) -> PResult<ContentsTest> {
        let mut test = ContentsTest {
            span: Some(node.span),
            ..Default::default()
        };
        let keys = ["files", "site_packages", "bin", "lib", "include", "strict"];
        for (k, v) in self.map(node, "package_contents", &keys)? {
            if k.name == "strict" {
                test.strict = self.bool(v, "strict")?;
                continue;
            }
            let presence = if v.as_map().is_some() {
                let mut p = Presence::default();
                for (pk, pv) in self.map(v, &k.name, &["exists", "not_exists"])? {
                    let globs = self.globs(pv, &pk.name)?;
                    if pk.name == "exists" {
                        p.exists = globs;
                    } else {
                        p.not_exists = globs;
                    }
                }
                p
            } else {
                Presence {
                    exists: self.globs(v, &k.name)?,
                    not_exists: Vec::new(),
                }
            };
            match k.name.as_str() {
                "files" => test.files = presence,
                "site_packages" => test.site_packages = presence,
                "bin" => test.bin = presence,
                "lib" => test.lib = presence,
                _ => test.include = presence,
            }
        }
        Ok(test)
    }
}
