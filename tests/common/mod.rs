//! Helpers shared by the integration tests: run the real `kiln` binary on
//! recipes under `tests/recipes/` and look inside the packages it writes.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

/// Path of a test recipe.
pub fn recipe(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/recipes").join(rel)
}

/// A `kiln` command with a clean, deterministic environment.
pub fn kiln() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"));
    cmd.env_remove("SOURCE_DATE_EPOCH")
        .env_remove("CONDA_BLD_PATH")
        .env("NO_COLOR", "1");
    cmd
}

/// Run `kiln build --recipe <recipe> --output-dir <out> <extra>`.
pub fn build(recipe: &Path, out: &Path, extra: &[&str]) -> Output {
    kiln()
        .arg("build")
        .arg("--recipe")
        .arg(recipe)
        .arg("--output-dir")
        .arg(out)
        .args(extra)
        .output()
        .expect("kiln runs")
}

/// Like [`build`], but panics with kiln's stderr when the build fails.
pub fn build_ok(recipe: &Path, out: &Path, extra: &[&str]) -> Output {
    let o = build(recipe, out, extra);
    assert!(o.status.success(), "kiln failed:\n{}", stderr(&o));
    o
}

/// Stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// All package files (`.conda`, `.tar.bz2`) below `out/<subdir>` dirs, sorted by name.
pub fn packages(out: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walkdir::WalkDir::new(out)
        .max_depth(2)
        .into_iter()
        .filter_map(|e| e.ok())
        .map(|e| e.path().to_path_buf())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.ends_with(".conda") || n.ends_with(".tar.bz2")
        })
        .collect();
    v.sort();
    v
}

/// File names of [`packages`].
pub fn package_names(out: &Path) -> Vec<String> {
    packages(out)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// Extract a package into a fresh directory.
pub fn extract(pkg: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    rattler_package_streaming::fs::extract(pkg, dir.path()).expect("package extracts");
    dir
}

/// Read a JSON file.
pub fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// Non-`info/` files of an extracted package, relative and sorted.
pub fn content_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_type().is_dir())
        .map(|e| e.path().strip_prefix(dir).unwrap().to_string_lossy().into_owned())
        .filter(|p| !p.starts_with("info/"))
        .collect();
    v.sort();
    v
}

/// The `paths` array of `info/paths.json`, keyed by `_path`.
pub fn paths_json(dir: &Path) -> std::collections::BTreeMap<String, Value> {
    let pj = json(&dir.join("info/paths.json"));
    assert_eq!(pj["paths_version"], 1);
    pj["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["_path"].as_str().unwrap().to_string(), e.clone()))
        .collect()
}

/// The platform kiln builds for on this machine.
pub fn subdir() -> &'static str {
    rattler_conda_types::Subdir::current().unwrap().as_str()
}

/// The three symlinks of the `symlinks` recipes: relative kept, absolute
/// into the prefix made relative, broken kept.
pub fn assert_three_symlinks(d: &Path) {
    assert_eq!(
        std::fs::read_link(d.join("lib/relative.txt")).unwrap(),
        Path::new("real.txt")
    );
    assert_eq!(
        std::fs::read_link(d.join("bin/absolute.txt")).unwrap(),
        Path::new("../lib/real.txt")
    );
    assert_eq!(
        std::fs::read_link(d.join("lib/broken.txt")).unwrap(),
        Path::new("does-not-exist.txt")
    );
    let paths = paths_json(d);
    for link in ["lib/relative.txt", "bin/absolute.txt", "lib/broken.txt"] {
        assert_eq!(paths[link]["path_type"], "softlink", "{link}");
    }
}
