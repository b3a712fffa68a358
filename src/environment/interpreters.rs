//! The interpreters an environment holds (python, numpy, perl, R, lua) and
//! the variables that name them for scripts (`PYTHON`, `PY_VER`, `SP_DIR`,
//! `NPY_VER`, ...), as conda-build and rattler-build set them.
//!
//! Versions come from the prefix's `conda-meta` records (what was really
//! installed), else from the variant (a `python: 3.12` key names the
//! interpreter even before it is installed, as in `--render-only`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rattler_conda_types::Subdir;

/// An installed package, as its `conda-meta` record describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// Version string (`3.11.7`).
    pub version: String,
    /// `python_site_packages_path` of a python record (CPython builds
    /// whose site-packages is not `lib/pythonX.Y/site-packages`).
    pub site_packages_path: Option<String>,
}

/// The interpreter packages [`variables`] asks about.
const INTERPRETERS: &[&str] = &["python", "numpy", "perl", "r-base", "lua"];

/// The interpreter packages installed in a prefix, from one pass over its
/// `conda-meta` (only the records whose file names could be theirs are read).
#[derive(Debug, Default)]
pub struct Records(BTreeMap<String, Installed>);

impl Records {
    /// Read the records of [`INTERPRETERS`] in `prefix` (none if it has no `conda-meta`).
    pub fn read(prefix: &Path) -> Self {
        let mut found = BTreeMap::new();
        let Ok(entries) = std::fs::read_dir(prefix.join("conda-meta")) else {
            return Records(found);
        };
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            // `python-3.11.7-h1234_0.json`, but also `python-dateutil-...`:
            // the record's own name decides.
            let candidate = file.ends_with(".json")
                && INTERPRETERS
                    .iter()
                    .any(|n| file.strip_prefix(n).is_some_and(|r| r.starts_with('-')));
            if !candidate {
                continue;
            }
            let Some(record) = std::fs::read_to_string(entry.path())
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            else {
                continue;
            };
            let (Some(name), Some(version)) = (record["name"].as_str(), record["version"].as_str()) else {
                continue;
            };
            if INTERPRETERS.contains(&name) {
                found.insert(
                    name.to_string(),
                    Installed {
                        version: version.to_string(),
                        // A record pointing outside the prefix is not trusted.
                        site_packages_path: record["python_site_packages_path"]
                            .as_str()
                            .filter(|p| !p.is_empty() && crate::disk::safe_join(Path::new("/"), Path::new(p)).is_some())
                            .map(str::to_string),
                    },
                );
            }
        }
        Records(found)
    }

    /// The record of `name`, if installed.
    pub fn get(&self, name: &str) -> Option<&Installed> {
        self.0.get(name)
    }

    /// `X.Y` of `name` if installed, else of the variant's `key`.
    fn version(&self, name: &str, variant: &BTreeMap<String, String>, key: &str) -> Option<String> {
        self.get(name)
            .map(|i| major_minor(&i.version))
            .or_else(|| variant_version(variant, key))
    }
}

/// `3.11.7` → `3.11` (a version's first two components).
pub fn major_minor(version: &str) -> String {
    version.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// Where a prefix's python keeps its standard library and site-packages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonLayout {
    /// `X.Y`.
    pub version: String,
    /// Standard library, relative to the prefix (`lib/python3.11`).
    pub stdlib: PathBuf,
    /// site-packages, relative to the prefix.
    pub site_packages: PathBuf,
}

impl PythonLayout {
    /// The layout of python `version` (`X.Y` or longer) on `platform`, with
    /// the record's own site-packages path when it has one.
    pub fn new(version: &str, platform: Subdir, site_packages_path: Option<&str>) -> Self {
        let version = major_minor(version);
        let stdlib = if platform.is_windows() {
            PathBuf::from("Lib")
        } else {
            PathBuf::from(format!("lib/python{version}"))
        };
        let site_packages = match site_packages_path {
            Some(p) => PathBuf::from(p),
            None => stdlib.join("site-packages"),
        };
        PythonLayout {
            version,
            stdlib,
            site_packages,
        }
    }

    /// The layout of an installed python.
    fn of(p: &Installed, platform: Subdir) -> Self {
        Self::new(&p.version, platform, p.site_packages_path.as_deref())
    }
}

/// The version a variant key names (`python: "3.11.* *_cpython"` → `3.11`).
fn variant_version(variant: &BTreeMap<String, String>, key: &str) -> Option<String> {
    let value = variant.get(key)?;
    let version: String = value
        .split_whitespace()
        .next()?
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let version = version.trim_end_matches('.');
    (!version.is_empty()).then(|| major_minor(version))
}

/// The path of an interpreter executable in `prefix`.
fn executable(prefix: &Path, platform: Subdir, name: &str) -> PathBuf {
    if platform.is_windows() {
        prefix.join(format!("{name}.exe"))
    } else {
        prefix.join("bin").join(name)
    }
}

/// The interpreter variables for a script whose `PREFIX` is `host` (of
/// platform `platform`) and whose `BUILD_PREFIX` is `build`. An interpreter
/// only the build environment holds (a cross build's python) is run from
/// there; its packages still go into `host`.
pub fn variables(
    host: &Path,
    build: &Path,
    platform: Subdir,
    variant: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let (in_host, in_build) = (Records::read(host), Records::read(build));
    let mut vars = BTreeMap::new();
    let s = |p: PathBuf| p.to_string_lossy().into_owned();
    let runs_from = |name: &str, package: &str| {
        if in_host.get(package).is_none() && in_build.get(package).is_some() {
            executable(build, platform, name)
        } else {
            executable(host, platform, name)
        }
    };
    vars.insert("PYTHON".into(), s(runs_from("python", "python")));
    let python = match (in_host.get("python"), in_build.get("python")) {
        (Some(p), _) => Some(PythonLayout::of(p, platform)),
        (None, built) => variant_version(variant, "python")
            .map(|v| PythonLayout::new(&v, platform, None))
            .or_else(|| built.map(|p| PythonLayout::of(p, platform))),
    };
    if let Some(py) = python {
        let py3k = if py.version.starts_with("3.") { "1" } else { "0" };
        vars.insert("PY3K".into(), py3k.into());
        vars.insert("STDLIB_DIR".into(), s(host.join(&py.stdlib)));
        vars.insert("SP_DIR".into(), s(host.join(&py.site_packages)));
        vars.insert("PY_VER".into(), py.version);
    }
    if let Some(v) = in_host.version("numpy", variant, "numpy") {
        vars.insert("NPY_VER".into(), v);
        vars.insert("NPY_DISTUTILS_APPEND_FLAGS".into(), "1".into());
    }
    vars.insert("PERL".into(), s(runs_from("perl", "perl")));
    if let Some(p) = in_host.get("perl") {
        vars.insert("PL_VER".into(), p.version.clone());
    }
    if let Some(v) = in_host.version("r-base", variant, "r_base") {
        vars.insert("R".into(), s(runs_from("R", "r-base")));
        vars.insert("R_VER".into(), v);
        vars.insert("R_USER".into(), s(host.join("Libs/R")));
    }
    if let Some(v) = in_host.version("lua", variant, "lua") {
        vars.insert("LUA".into(), s(runs_from("lua", "lua")));
        vars.insert("LUA_VER".into(), v);
        vars.insert("LUA_INCLUDE_DIR".into(), s(host.join("include")));
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(prefix: &Path, name: &str, version: &str, extra: &str) {
        let meta = prefix.join("conda-meta");
        std::fs::create_dir_all(&meta).unwrap();
        let text = format!(r#"{{"name": "{name}", "version": "{version}", "build": "h0_0"{extra}}}"#);
        std::fs::write(meta.join(format!("{name}-{version}-h0_0.json")), text).unwrap();
    }

    #[test]
    fn python_variables_follow_the_installed_record() {
        let host = tempfile::tempdir().unwrap();
        let build = tempfile::tempdir().unwrap();
        record(host.path(), "python-dateutil", "2.9.0", "");
        record(host.path(), "python", "3.11.7", "");
        let variant = BTreeMap::from([("python".to_string(), "3.12".to_string())]);
        let v = variables(host.path(), build.path(), Subdir::Linux64, &variant);
        assert_eq!(v["PY_VER"], "3.11", "the installed python wins over the variant");
        assert_eq!(v["PY3K"], "1");
        assert_eq!(v["PYTHON"], host.path().join("bin/python").to_string_lossy());
        assert_eq!(
            v["SP_DIR"],
            host.path().join("lib/python3.11/site-packages").to_string_lossy()
        );
        assert_eq!(v["STDLIB_DIR"], host.path().join("lib/python3.11").to_string_lossy());
        assert!(!v.contains_key("NPY_VER"));
    }

    #[test]
    fn site_packages_path_and_variant_versions() {
        let host = tempfile::tempdir().unwrap();
        let build = tempfile::tempdir().unwrap();
        record(
            host.path(),
            "python",
            "3.13.1",
            r#", "python_site_packages_path": "lib/python3.13t/site-packages""#,
        );
        let variant = BTreeMap::from([("numpy".to_string(), "2.0.* *_np".to_string())]);
        let v = variables(host.path(), build.path(), Subdir::Linux64, &variant);
        assert_eq!(
            v["SP_DIR"],
            host.path().join("lib/python3.13t/site-packages").to_string_lossy()
        );
        assert_eq!(v["NPY_VER"], "2.0");
        assert_eq!(v["NPY_DISTUTILS_APPEND_FLAGS"], "1");
    }

    #[test]
    fn a_cross_build_runs_the_build_environments_python() {
        let host = tempfile::tempdir().unwrap();
        let build = tempfile::tempdir().unwrap();
        record(build.path(), "python", "3.10.2", "");
        let v = variables(host.path(), build.path(), Subdir::Linux64, &BTreeMap::new());
        assert_eq!(v["PYTHON"], build.path().join("bin/python").to_string_lossy());
        assert_eq!(v["PY_VER"], "3.10");
        assert_eq!(
            v["SP_DIR"],
            host.path().join("lib/python3.10/site-packages").to_string_lossy()
        );
    }

    #[test]
    fn no_python_anywhere_sets_only_the_conventional_path() {
        let host = tempfile::tempdir().unwrap();
        let v = variables(host.path(), host.path(), Subdir::Linux64, &BTreeMap::new());
        assert!(v.contains_key("PYTHON") && v.contains_key("PERL"));
        assert!(!v.contains_key("SP_DIR") && !v.contains_key("PY_VER") && !v.contains_key("R"));
    }
}
