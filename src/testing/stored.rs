//! Tests as packages carry them, in rattler-build's layout:
//! `info/tests/tests.yaml` (a list; `package_contents` left out, script
//! files inlined, the test files of test N shipped in the package payload
//! at `etc/conda/test-files/<name>/<N>/`, which is the script's `cwd`), and
//! conda-build's `info/test/` (`run_test.sh`, `run_test.py`, `run_test.pl`,
//! `test_time_dependencies.json`), which is read but never written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use miette::{miette, IntoDiagnostic, Result};
use serde_json::{json, Map, Value};

use crate::recipe::model::ScriptBody;
use crate::recipe::package_tests::{PackageTest, TestFiles};
use crate::recipe::Recipe;

/// A test read from a package, ready to run.
#[derive(Debug, Clone)]
pub enum Stored {
    /// Commands.
    Script {
        /// The script text.
        body: String,
        /// `bash` (default), `python` or `perl`.
        interpreter: String,
        /// Extra environment variables.
        env: BTreeMap<String, String>,
        /// Variables forwarded from kiln's environment, masked.
        secrets: Vec<String>,
        /// Working directory relative to the test prefix.
        cwd: Option<String>,
        /// Test environment specs (besides the package).
        run: Vec<String>,
        /// Build-platform tool specs.
        build: Vec<String>,
    },
    /// Python imports and `pip check`.
    Python {
        /// Modules.
        imports: Vec<String>,
        /// Run `pip check`.
        pip_check: bool,
        /// One environment per version.
        versions: Vec<String>,
    },
    /// `use` Perl modules.
    Perl(Vec<String>),
    /// `library()` R packages.
    R(Vec<String>),
    /// `require` Ruby gems.
    Ruby(Vec<String>),
    /// Run a downstream package's tests against this one.
    Downstream(String),
    /// conda-build's `info/test/` (a copy of that folder is the working directory).
    Legacy {
        /// The extracted `info/test` folder.
        dir: PathBuf,
        /// `test_time_dependencies.json`.
        deps: Vec<String>,
    },
}

impl Stored {
    /// A short name for messages (`script`, `python`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Stored::Script { .. } => "script",
            Stored::Python { .. } => "python",
            Stored::Perl(_) => "perl",
            Stored::R(_) => "r",
            Stored::Ruby(_) => "ruby",
            Stored::Downstream(_) => "downstream",
            Stored::Legacy { .. } => "conda-build info/test",
        }
    }
}

/// Where test `index`'s files go in the package.
pub fn files_dir(name: &str, index: usize) -> String {
    format!("etc/conda/test-files/{name}/{index}")
}

/// The files a stored test ships, by its index in `tests.yaml`.
pub type Shipped<'a> = Vec<(usize, &'a TestFiles)>;

/// The tests to store (all but `package_contents`) in rattler-build's
/// shape, and the files each test with `files` ships (by stored index).
pub fn stored_form<'a>(recipe: &Recipe, tests: &'a [PackageTest], name: &str) -> Result<(Vec<Value>, Shipped<'a>)> {
    let mut out = Vec::new();
    let mut files = Vec::new();
    for test in tests {
        let index = out.len();
        let value = match test {
            PackageTest::PackageContents(_) => continue,
            PackageTest::Script(t) => {
                let mut script = Map::new();
                if !t.script.env.is_empty() {
                    script.insert("env".into(), json!(t.script.env));
                }
                if !t.script.secrets.is_empty() {
                    script.insert("secrets".into(), json!(t.script.secrets));
                }
                let content = match &t.script.body {
                    ScriptBody::Inline(_) if !t.script.lines.is_empty() => {
                        json!(t.script.lines.iter().map(|(l, _)| l).collect::<Vec<_>>())
                    }
                    ScriptBody::Inline(body) => json!(body),
                    ScriptBody::Steps(_) => unreachable!("test scripts are read without `steps`"),
                    ScriptBody::File { file } => {
                        let path = recipe.dir.join(file);
                        json!(fs_err::read_to_string(&path).map_err(|e| {
                            miette!(
                                "{}: test script {}: {e}",
                                recipe.file.location(&t.script.span),
                                file.display()
                            )
                        })?)
                    }
                };
                script.insert("content".into(), content);
                // Named, or implied by a test file's extension (`test.py`).
                let implied = match &t.script.body {
                    ScriptBody::File { file } => match file.extension().and_then(|e| e.to_str()) {
                        Some("py") => Some("python"),
                        Some("pl") => Some("perl"),
                        Some("R" | "r") => Some("rscript"),
                        _ => None,
                    },
                    _ => None,
                };
                if let Some(i) = t.script.interpreter.as_deref().or(implied).filter(|i| *i != "bash") {
                    script.insert("interpreter".into(), json!(i));
                }
                if !t.files.is_empty() {
                    script.insert("cwd".into(), json!(files_dir(name, index)));
                    files.push((index, &t.files));
                }
                let mut entry = Map::new();
                entry.insert("script".into(), Value::Object(script));
                if !t.requirements.run.is_empty() || !t.requirements.build.is_empty() {
                    entry.insert("requirements".into(), json!(t.requirements));
                }
                if !t.files.is_empty() {
                    entry.insert("files".into(), json!(t.files));
                }
                Value::Object(entry)
            }
            PackageTest::Python(t) => {
                let mut p = Map::new();
                p.insert("imports".into(), json!(t.imports));
                if !t.pip_check {
                    p.insert("pip_check".into(), json!(false));
                }
                if !t.python_version.is_empty() {
                    p.insert("python_version".into(), json!(t.python_version));
                }
                json!({ "python": p })
            }
            PackageTest::Downstream(spec) => json!({ "downstream": spec }),
            PackageTest::Perl(t) => json!({"perl": {"uses": t.names}}),
            PackageTest::R(t) => json!({"r": {"libraries": t.names}}),
            PackageTest::Ruby(t) => json!({"ruby": {"requires": t.names}}),
        };
        out.push(value);
    }
    Ok((out, files))
}

/// The tests of the package extracted at `pkg`: conda-build's first, then
/// `info/tests/tests.yaml`.
pub fn read(pkg: &Path) -> Result<Vec<Stored>> {
    let mut out = Vec::new();
    let legacy = pkg.join("info/test");
    if legacy.is_dir() {
        let deps_file = legacy.join("test_time_dependencies.json");
        let deps: Vec<String> = if deps_file.is_file() {
            serde_json::from_str(&fs_err::read_to_string(&deps_file).into_diagnostic()?)
                .map_err(|e| miette!("{}: {e}", deps_file.display()))?
        } else {
            Vec::new()
        };
        let runnable = ["run_test.sh", "run_test.py", "run_test.pl"]
            .iter()
            .any(|f| legacy.join(f).is_file());
        if runnable {
            out.push(Stored::Legacy { dir: legacy, deps });
        }
    }
    let file = pkg.join("info/tests/tests.yaml");
    if file.is_file() {
        let text = fs_err::read_to_string(&file).into_diagnostic()?;
        let list: Vec<Value> = serde_yaml_ng::from_str(&text).map_err(|e| miette!("{}: {e}", file.display()))?;
        for (i, v) in list.iter().enumerate() {
            if let Some(t) = parse(pkg, v).map_err(|e| miette!("{} (test {i}): {e}", file.display()))? {
                out.push(t);
            }
        }
    }
    Ok(out)
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|i| match i {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// One stored test; `None` for kinds that only run at build time.
fn parse(pkg: &Path, v: &Value) -> std::result::Result<Option<Stored>, String> {
    let obj = v.as_object().ok_or("a test must be a mapping")?;
    if let Some(script) = obj.get("script") {
        let mut interpreter = "bash".to_string();
        let mut env = BTreeMap::new();
        let mut secrets = Vec::new();
        let mut cwd = None;
        let body = match script {
            // A bare string is a file in the package, or a command.
            Value::String(s) => match crate::disk::safe_join(pkg, Path::new(s)) {
                Some(p) if p.is_file() && !s.contains('\n') => std::fs::read_to_string(p).map_err(|e| e.to_string())?,
                _ => s.clone(),
            },
            Value::Array(_) => strings(script).join("\n"),
            Value::Object(m) => {
                if let Some(i) = m.get("interpreter").and_then(Value::as_str) {
                    interpreter = i.to_string();
                }
                if let Some(Value::Object(e)) = m.get("env") {
                    env = e
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string)))
                        .collect();
                }
                secrets = m.get("secrets").map(strings).unwrap_or_default();
                cwd = m.get("cwd").and_then(Value::as_str).map(str::to_string);
                if let Some(c) = &cwd {
                    if crate::disk::safe_join(Path::new("/"), Path::new(c)).is_none() {
                        return Err(format!("`cwd` {c} leaves the test environment"));
                    }
                }
                match (m.get("content"), m.get("file")) {
                    (Some(c), _) => strings(c).join("\n"),
                    (None, Some(Value::String(f))) => {
                        let path = crate::disk::safe_join(pkg, Path::new(f))
                            .ok_or_else(|| format!("script file {f} is outside the package"))?;
                        std::fs::read_to_string(path).map_err(|e| format!("script file {f}: {e}"))?
                    }
                    _ => return Err("a script test has neither `content` nor `file`".into()),
                }
            }
            _ => return Err("`script` must be a string, a list or a mapping".into()),
        };
        let req = obj.get("requirements");
        let get = |k: &str| req.and_then(|r| r.get(k)).map(strings).unwrap_or_default();
        return Ok(Some(Stored::Script {
            body,
            interpreter,
            env,
            secrets,
            cwd,
            run: get("run"),
            build: get("build"),
        }));
    }
    if let Some(p) = obj.get("python") {
        return Ok(Some(Stored::Python {
            imports: p.get("imports").map(strings).unwrap_or_default(),
            pip_check: p.get("pip_check").and_then(Value::as_bool).unwrap_or(true),
            versions: p.get("python_version").map(strings).unwrap_or_default(),
        }));
    }
    let names = |kind: &str, key: &str| obj.get(kind).and_then(|t| t.get(key)).map(strings);
    if let Some(n) = names("perl", "uses") {
        return Ok(Some(Stored::Perl(n)));
    }
    if let Some(n) = names("r", "libraries").or_else(|| names("rscript", "libraries")) {
        return Ok(Some(Stored::R(n)));
    }
    if let Some(n) = names("ruby", "requires") {
        return Ok(Some(Stored::Ruby(n)));
    }
    if let Some(d) = obj.get("downstream") {
        return Ok(Some(Stored::Downstream(strings(d).join(" "))));
    }
    if obj.contains_key("package_contents") {
        return Ok(None);
    }
    Err(format!(
        "unknown test kind ({})",
        obj.keys().cloned().collect::<Vec<_>>().join(", ")
    ))
}

/// Copy the files a script test ships (`files.source` from `work_dir`,
/// `files.recipe` from the recipe directory, walked as `info/recipe` is:
/// hidden and git-ignored files and the output directory left out, the
/// recipe file masked) into `prefix` at [`files_dir`]; returns their paths
/// relative to `prefix`.
pub fn ship_files(
    recipe: &Recipe,
    name: &str,
    shipped: &[(usize, &TestFiles)],
    work_dir: &Path,
    prefix: &Path,
    output_dir: &Path,
) -> Result<Vec<PathBuf>> {
    use crate::package::glob::Selector;
    use crate::recipe::model::FileFilter;
    let mut out = Vec::new();
    let recipe_file = std::fs::canonicalize(&recipe.file.path).unwrap_or_else(|_| recipe.file.path.clone());
    let output_dir = std::fs::canonicalize(output_dir).unwrap_or_else(|_| output_dir.to_path_buf());
    for (index, files) in shipped {
        let dest = PathBuf::from(files_dir(name, *index));
        for (root, globs, from_recipe) in [
            (work_dir, &files.source, false),
            (recipe.dir.as_path(), &files.recipe, true),
        ] {
            if globs.is_empty() {
                continue;
            }
            let filter = FileFilter {
                include: globs.to_vec(),
                exclude: Vec::new(),
            };
            let mut selector =
                Selector::new(&filter).map_err(|(msg, g)| miette!("{}: {msg}", recipe.file.location(&g.span)))?;
            // The work directory lives in the output directory; only a recipe
            // walk must not descend into it.
            let skip = from_recipe.then(|| output_dir.clone());
            let walker = ignore::WalkBuilder::new(root)
                .standard_filters(false)
                .hidden(from_recipe)
                .git_ignore(from_recipe)
                .require_git(false)
                .follow_links(false)
                .sort_by_file_name(|a, b| a.cmp(b))
                .filter_entry(move |e| match &skip {
                    Some(skip) => std::fs::canonicalize(e.path()).map_or(true, |p| !p.starts_with(skip)),
                    None => true,
                })
                .build();
            for entry in walker {
                let entry = entry.into_diagnostic()?;
                if entry.file_type().is_some_and(|t| t.is_dir()) {
                    continue;
                }
                let rel = entry.path().strip_prefix(root).into_diagnostic()?;
                if rel.starts_with(".git") || !selector.select(&rel.to_string_lossy()) {
                    continue;
                }
                let target = dest.join(rel);
                let canonical = std::fs::canonicalize(entry.path()).unwrap_or_else(|_| entry.path().to_path_buf());
                if from_recipe && canonical == recipe_file {
                    let text = fs_err::read_to_string(entry.path()).into_diagnostic()?;
                    let to = prefix.join(&target);
                    fs_err::create_dir_all(to.parent().expect("inside the prefix")).into_diagnostic()?;
                    crate::disk::replace_file(&to, crate::redact::mask(&text).as_bytes())?;
                } else {
                    crate::disk::copy_file(entry.path(), &prefix.join(&target))?;
                }
                out.push(target);
            }
            if let Some(g) = selector.unmatched().into_iter().next() {
                return Err(miette!(
                    "{}: test file glob `{}` matched no file in {}",
                    recipe.file.location(&g.span),
                    g.pattern,
                    root.display()
                ));
            }
        }
    }
    Ok(out)
}
