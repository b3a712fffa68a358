//! Running one stored test: a fresh environment solved from the channels
//! (the package's own channel first) with the package pinned to this very
//! file, installed under the test's own directory, activated; then the
//! script, imports or loads, with output streamed like a build script's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use miette::{miette, IntoDiagnostic, Result};
use rattler_conda_types::{RepoDataRecord, Subdir};

use super::stored::Stored;
use crate::build::script::{self, ScriptRun};
use crate::environment::{LazyEnvironments, SolveError};

/// The package under test.
pub struct Subject {
    /// `name-version-build`, for messages.
    pub label: String,
    /// `index.json` values.
    pub name: String,
    /// Version.
    pub version: String,
    /// Build string.
    pub build: String,
    /// Build number.
    pub build_number: u64,
    /// `index.json` subdir (`noarch` for noarch packages).
    pub subdir: String,
    /// SHA-256 of the package file: the pin names this very file.
    pub sha256: String,
    /// `info/hash_input.json` (variant values, exported to scripts).
    pub variant: BTreeMap<String, String>,
}

impl Subject {
    /// The spec that selects exactly this package file.
    pub fn pin(&self) -> String {
        let sha = if self.sha256.is_empty() {
            String::new()
        } else {
            format!(", sha256=\"{}\"", self.sha256)
        };
        format!(
            "{}[version=\"=={}\", build=\"{}\"{sha}]",
            self.name, self.version, self.build
        )
    }
}

/// Where and against what tests run.
pub struct Bench<'a> {
    /// Channels (the package's channel first).
    pub envs: &'a LazyEnvironments,
    /// The platform kiln runs on (build tools, noarch packages).
    pub build_platform: Subdir,
    /// Scratch directory for this package's test environments.
    pub dir: PathBuf,
    /// Forward the `secrets` a stored test names. Only for packages this
    /// run built from the recipe: a package from elsewhere must not get to
    /// read the caller's tokens by naming them.
    pub forward_secrets: bool,
}

/// Why a test did not pass.
pub enum Failure {
    /// The test ran and failed (its output was shown).
    Failed(String),
    /// The test could not be set up (kiln's or the channels' problem).
    Error(miette::Report),
}

impl From<miette::Report> for Failure {
    fn from(e: miette::Report) -> Self {
        Failure::Error(e)
    }
}

/// Run test `index` of `subject`; `extra` are more specs every environment
/// gets (a downstream test pins the upstream package this way).
pub fn run(
    bench: &Bench,
    subject: &Subject,
    index: usize,
    test: &Stored,
    extra: &[String],
) -> std::result::Result<(), Failure> {
    let dir = bench
        .dir
        .join(format!("{index}-{}", test.kind().replace([' ', '/'], "-")));
    if dir.exists() {
        fs_err::remove_dir_all(&dir).into_diagnostic()?;
    }
    fs_err::create_dir_all(&dir).into_diagnostic()?;
    let label = format!("{} test {index} ({})", subject.label, test.kind());
    let target = match subject.subdir.as_str() {
        "noarch" => bench.build_platform,
        s => s
            .parse::<Subdir>()
            .map_err(|e| miette!("{}: subdir `{s}`: {e}", subject.label))?,
    };
    let test_env = |prefix: PathBuf, build_prefix: Option<PathBuf>| Env {
        subject,
        prefix,
        build_prefix,
        target,
        build: bench.build_platform,
    };
    let none = BTreeMap::new();
    let mut specs = vec![subject.pin()];
    specs.extend(extra.iter().cloned());
    let with = |more: &[String]| -> Vec<String> { specs.iter().chain(more).cloned().collect() };
    match test {
        Stored::Script {
            body,
            interpreter,
            env,
            secrets,
            cwd,
            run,
            build,
        } => {
            let prefix = install(bench, &label, target, &with(run), &dir.join("run"))?;
            let build_prefix = if build.is_empty() {
                None
            } else {
                Some(install(bench, &label, bench.build_platform, build, &dir.join("build"))?)
            };
            // A copy of the shipped test files: the installed ones are hard
            // links into the shared package cache, which a test must not change.
            let workdir = dir.join("cwd");
            if let Some(c) = cwd {
                match crate::disk::resolve_within(&prefix, Path::new(c)) {
                    Some(rel) if prefix.join(&rel).is_dir() => crate::disk::copy_tree(&prefix.join(rel), &workdir)?,
                    _ => tracing::warn!("{label}: its working directory {c} is not in the test environment"),
                }
            }
            let tenv = test_env(prefix, build_prefix);
            // Build-time variables (`${{ PYTHON }}`) take the test environment's values.
            let vars = tenv.variables(&dir);
            let late = |text: &str| {
                crate::syntax::deferred::substitute(text, |n| vars.get(n).cloned())
                    .map_err(|m| Failure::Failed(format!("{label}: {m}")))
            };
            let body = late(body)?;
            let body = match interpreter.as_str() {
                "bash" | "" => body,
                other => {
                    let ext = match other {
                        "python" => "py",
                        "perl" => "pl",
                        "rscript" | "r" => "R",
                        _ => "txt",
                    };
                    let file = dir.join(format!("test_script.{ext}"));
                    fs_err::write(&file, &body).into_diagnostic()?;
                    let exe = if matches!(other, "r" | "rscript") {
                        "Rscript"
                    } else {
                        other
                    };
                    format!("{exe} {}", script::shell_quote(&file.to_string_lossy()))
                }
            };
            let secrets = if bench.forward_secrets {
                script::secret_values(secrets, &label)?
            } else {
                if !secrets.is_empty() {
                    tracing::warn!(
                        "{label}: not forwarding the secrets it names ({}): kiln forwards secrets only to tests of packages it just built",
                        secrets.join(", ")
                    );
                }
                BTreeMap::new()
            };
            let mut extra = BTreeMap::new();
            for (k, v) in env {
                extra.insert(k.clone(), late(v)?);
            }
            tenv.execute(&label, &body, &workdir, &dir, &extra, &secrets)
        }
        Stored::Python {
            imports,
            pip_check,
            versions,
        } => {
            let versions: Vec<Option<&String>> = if versions.is_empty() {
                vec![None]
            } else {
                versions.iter().map(Some).collect()
            };
            for (n, version) in versions.into_iter().enumerate() {
                let mut more = vec![match version {
                    Some(v) if v.chars().next().is_some_and(|c| c.is_ascii_digit()) => format!("python {v}.*"),
                    Some(v) => format!("python {v}"),
                    None => "python".to_string(),
                }];
                if *pip_check {
                    more.push("pip".into());
                }
                let sub = dir.join(format!("python-{n}"));
                let prefix = install(bench, &label, target, &with(&more), &sub.join("run"))?;
                let file = sub.join("imports.py");
                let text: String = imports
                    .iter()
                    .map(|m| format!("import {m}\nprint('imported {m}')\n"))
                    .collect();
                fs_err::write(&file, text).into_diagnostic()?;
                let mut body = format!("python {}", script::shell_quote(&file.to_string_lossy()));
                if *pip_check {
                    body.push_str("\npython -m pip check");
                }
                let label = match version {
                    Some(v) => format!("{label} python {v}"),
                    None => label.clone(),
                };
                test_env(prefix, None).execute(&label, &body, &sub.join("cwd"), &sub, &none, &none)?;
            }
            Ok(())
        }
        Stored::Perl(names) | Stored::R(names) | Stored::Ruby(names) => {
            let (package, exe, ext, line): (&str, &str, &str, fn(&str) -> String) = match test {
                Stored::Perl(_) => ("perl", "perl", "pl", |n| format!("use {n};\n")),
                Stored::R(_) => ("r-base", "Rscript", "R", |n| format!("library({n})\n")),
                _ => ("ruby", "ruby", "rb", |n| format!("require '{n}'\n")),
            };
            let prefix = install(bench, &label, target, &with(&[package.to_string()]), &dir.join("run"))?;
            let file = dir.join(format!("load.{ext}"));
            fs_err::write(&file, names.iter().map(|n| line(n)).collect::<String>()).into_diagnostic()?;
            let body = format!("{exe} {}", script::shell_quote(&file.to_string_lossy()));
            test_env(prefix, None).execute(&label, &body, &dir.join("cwd"), &dir, &none, &none)
        }
        Stored::Legacy { dir: info_test, deps } => {
            // As conda-build: the interpreters its test files need.
            let mut deps = deps.clone();
            for (file, package) in [("run_test.py", "python"), ("run_test.pl", "perl")] {
                if info_test.join(file).is_file()
                    && !deps
                        .iter()
                        .any(|d| d.split([' ', '=', '<', '>']).next() == Some(package))
                {
                    deps.push(package.to_string());
                }
            }
            let prefix = install(bench, &label, target, &with(&deps), &dir.join("run"))?;
            let cwd = dir.join("cwd");
            crate::disk::copy_tree(info_test, &cwd)?;
            let mut body = String::new();
            for (file, exe) in [
                ("run_test.sh", "bash"),
                ("run_test.py", "python"),
                ("run_test.pl", "perl"),
            ] {
                if cwd.join(file).is_file() {
                    body.push_str(&format!("{exe} ./{file}\n"));
                }
            }
            test_env(prefix, None).execute(&label, &body, &cwd, &dir, &none, &none)
        }
        Stored::Downstream(_) => Err(Failure::Error(miette!(
            "{label}: downstream tests are run by the caller"
        ))),
    }
}

/// Solve `specs` for `platform` and install them into `prefix`.
pub fn install(bench: &Bench, label: &str, platform: Subdir, specs: &[String], prefix: &Path) -> Result<PathBuf> {
    let records = solve(bench, label, platform, specs)?
        .ok_or_else(|| miette!("{label}: the test environment ({}) cannot be solved", specs.join(", ")))?;
    bench.envs.get()?.install(prefix, platform, &records)?;
    Ok(prefix.to_path_buf())
}

/// The records for `specs`, or `None` when the solver says no.
pub fn solve(bench: &Bench, label: &str, platform: Subdir, specs: &[String]) -> Result<Option<Vec<RepoDataRecord>>> {
    match bench.envs.get()?.solve_local_first(platform, specs) {
        Ok(r) => Ok(Some(r)),
        Err(SolveError::Unsolvable(why)) => {
            tracing::debug!("{label}: {} cannot be solved: {why}", specs.join(", "));
            Ok(None)
        }
        Err(SolveError::Channel(e)) => Err(e),
    }
}

/// The variables a test sees (as conda-build and rattler-build set them).
fn variables(
    subject: &Subject,
    prefix: &Path,
    build_prefix: Option<&Path>,
    target: Subdir,
    build: Subdir,
    dir: &Path,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let s = |p: &Path| p.to_string_lossy().into_owned();
    for (k, v) in &subject.variant {
        env.insert(crate::variants::normalize_key(k), v.clone());
    }
    // PYTHON, PY_VER, SP_DIR, ... of the test environment.
    env.extend(crate::environment::interpreters::variables(
        prefix,
        build_prefix.unwrap_or(prefix),
        target,
        &subject.variant,
    ));
    let mut set = |k: &str, v: String| {
        env.insert(k.to_string(), v);
    };
    set("PATH", std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()));
    set("PREFIX", s(prefix));
    set("CONDA_PREFIX", s(prefix));
    set("BUILD_PREFIX", s(build_prefix.unwrap_or(prefix)));
    set("PKG_NAME", subject.name.clone());
    set("PKG_VERSION", subject.version.clone());
    set("PKG_BUILD_STRING", subject.build.clone());
    set("PKG_BUILDNUM", subject.build_number.to_string());
    set("PKG_BUILD_NUMBER", subject.build_number.to_string());
    set("CONDA_BUILD_STATE", "TEST".into());
    set("SUBDIR", target.as_str().to_string());
    set("target_platform", target.as_str().to_string());
    set("host_platform", target.as_str().to_string());
    set("build_platform", build.as_str().to_string());
    set("ARCH", crate::platform::arch_suffix(target));
    set("SHLIB_EXT", crate::platform::shlib_ext(target).into());
    set(
        "CONDA_BUILD_CROSS_COMPILATION",
        if target != build { "1" } else { "0" }.into(),
    );
    set("PYTHONNOUSERSITE", "1".into());
    set("LANG", "C.UTF-8".into());
    set("LC_ALL", "C.UTF-8".into());
    set("HOME", s(dir));
    set("SHELL", "/bin/bash".into());
    env
}

/// An installed test environment (and its build-platform tools, if any).
struct Env<'a> {
    subject: &'a Subject,
    prefix: PathBuf,
    build_prefix: Option<PathBuf>,
    target: Subdir,
    build: Subdir,
}

impl Env<'_> {
    /// The variables a test in this environment sees; `dir` is its home.
    fn variables(&self, dir: &Path) -> BTreeMap<String, String> {
        variables(
            self.subject,
            &self.prefix,
            self.build_prefix.as_deref(),
            self.target,
            self.build,
            dir,
        )
    }

    /// Run `body` with bash in `cwd`, the environment activated; `dir` holds
    /// the script and its log, `extra` adds variables (`script.env`).
    fn execute(
        &self,
        label: &str,
        body: &str,
        cwd: &Path,
        dir: &Path,
        extra: &BTreeMap<String, String>,
        secrets: &BTreeMap<String, String>,
    ) -> std::result::Result<(), Failure> {
        fs_err::create_dir_all(cwd).into_diagnostic()?;
        let mut vars = self.variables(dir);
        vars.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        let build_prefix = self.build_prefix.as_deref().unwrap_or(&self.prefix);
        let activation = crate::environment::activation::script(&self.prefix, self.target, build_prefix, self.build)?;
        crate::ui::step(label, "running");
        let outcome = script::run(&ScriptRun {
            label,
            body,
            work_dir: cwd,
            script_dir: dir,
            env: &vars,
            secrets,
            activation: &activation,
        })?;
        outcome.map_err(|f| {
            Failure::Failed(match f.command {
                Some(c) => format!("{label} failed: `{c}` exited with {}", f.code),
                None => format!("{label} failed with {}", f.code),
            })
        })
    }
}
