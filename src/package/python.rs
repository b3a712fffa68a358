//! Python packaging steps after the build: the `noarch: python` layout
//! (`site-packages/`, `python-scripts/`, no byte-code), console launchers
//! for entry points, `INSTALLER` files, and byte-code compilation with the
//! host interpreter.
//!
//! These steps work in the output's own host prefix (renaming, writing and
//! deleting there, never copying), which is discarded after packaging.

use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use miette::{miette, IntoDiagnostic, Result};

use crate::recipe::python::EntryPoint;

/// Whether a path is byte-code (`*.pyc`, anything in `__pycache__`).
fn is_bytecode(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "pyc")
        || path
            .components()
            .any(|c| c == Component::Normal("__pycache__".as_ref()))
}

/// Where a file of a `noarch: python` build goes in the package: the
/// part below `lib/pythonX.Y/site-packages/` (or `Lib/site-packages/`)
/// under `site-packages/`, `bin/` and `Scripts/` under `python-scripts/`,
/// the rest unchanged. `None` drops it (byte-code; the launchers of
/// entry points, which installers write).
pub fn noarch_destination(rel: &Path, entry_points: &[EntryPoint]) -> Option<PathBuf> {
    if is_bytecode(rel) {
        return None;
    }
    let parts: Vec<&str> = rel.iter().filter_map(|p| p.to_str()).collect();
    match parts.as_slice() {
        ["lib", py, "site-packages", rest @ ..] if py.starts_with("python") && !rest.is_empty() => {
            Some(Path::new("site-packages").join(rest.join("/")))
        }
        ["Lib", "site-packages", rest @ ..] if !rest.is_empty() => {
            Some(Path::new("site-packages").join(rest.join("/")))
        }
        ["bin" | "Scripts", rest @ ..] if !rest.is_empty() => {
            let name = rest[rest.len() - 1];
            let command = name.strip_suffix(".exe").unwrap_or(name);
            let command = command.strip_suffix("-script.py").unwrap_or(command);
            if rest.len() == 1 && entry_points.iter().any(|e| e.command == command) {
                None
            } else {
                Some(Path::new("python-scripts").join(rest.join("/")))
            }
        }
        _ => Some(rel.to_path_buf()),
    }
}

/// Lay out the files of a `noarch: python` build (relative to `prefix`)
/// as [`noarch_destination`] says, renaming inside the prefix; returns
/// the packaged paths.
pub fn noarch_layout(prefix: &Path, files: &[PathBuf], entry_points: &[EntryPoint]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::with_capacity(files.len());
    for rel in files {
        if rel.to_str().is_none() {
            return Err(miette!(
                "noarch python: {} is not a UTF-8 path, which installers cannot place",
                rel.display()
            ));
        }
        match noarch_destination(rel, entry_points) {
            None => {}
            Some(to) if &to == rel => out.push(to),
            Some(to) => {
                let target = prefix.join(&to);
                if target.symlink_metadata().is_ok() {
                    return Err(miette!(
                        "noarch python: {} and {} both go to {}",
                        rel.display(),
                        to.display(),
                        to.display()
                    ));
                }
                if let Some(parent) = target.parent() {
                    fs_err::create_dir_all(parent).into_diagnostic()?;
                }
                fs_err::rename(prefix.join(rel), &target).into_diagnostic()?;
                out.push(to);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The launcher script for an entry point, run by `python` (an absolute
/// path in the prefix: installers replace it, and shorten a shebang that
/// grows too long).
pub fn launcher(python: &Path, e: &EntryPoint) -> String {
    let (import, call) = match e.function.split_once('.') {
        Some((first, _)) => (first, e.function.as_str()),
        None => (e.function.as_str(), e.function.as_str()),
    };
    format!(
        "#!{python}\n# -*- coding: utf-8 -*-\nimport re\nimport sys\n\nfrom {module} import {import}\n\nif __name__ == '__main__':\n    sys.argv[0] = re.sub(r'(-script\\.pyw?|\\.exe)?$', '', sys.argv[0])\n    sys.exit({call}())\n",
        python = python.display(),
        module = e.module,
    )
}

/// Write a launcher into `bin/` of `prefix` for each entry point (a
/// per-platform python package); returns the written paths. A file in
/// the way that the build did not make (`made`: one a dependency
/// installed, such as `bin/python`) is an error, never replaced.
pub fn write_launchers(prefix: &Path, entry_points: &[EntryPoint], made: &[PathBuf]) -> Result<Vec<PathBuf>> {
    use std::os::unix::fs::PermissionsExt;
    let python = prefix.join("bin/python");
    let mut written = Vec::new();
    for e in entry_points {
        let rel = Path::new("bin").join(&e.command);
        let path = prefix.join(&rel);
        if path.symlink_metadata().is_ok() && !made.contains(&rel) {
            return Err(miette!(
                help = "rename the entry point's command",
                "entry point `{e}` would replace {}, which the build did not make (a dependency installed it)",
                rel.display()
            ));
        }
        fs_err::create_dir_all(prefix.join("bin")).into_diagnostic()?;
        // pip's own launcher for the same command is replaced.
        let _ = fs_err::remove_file(&path);
        crate::disk::replace_file(&path, launcher(&python, e).as_bytes())?;
        fs_err::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).into_diagnostic()?;
        written.push(rel);
    }
    Ok(written)
}

/// Record conda as the installer of every `*.dist-info` in `files`.
pub fn mark_installer(prefix: &Path, files: &[PathBuf]) -> Result<()> {
    for rel in files {
        let is_installer = rel.file_name().is_some_and(|n| n == "INSTALLER")
            && rel
                .parent()
                .and_then(Path::file_name)
                .is_some_and(|d| d.to_string_lossy().ends_with(".dist-info"));
        if is_installer && prefix.join(rel).is_file() {
            crate::disk::replace_file(&prefix.join(rel), b"conda\n")?;
        }
    }
    Ok(())
}

/// Compiles each path read from standard input (relative to the current
/// directory) to its checked-hash `.pyc`, printing the byte-code path or
/// a warning. Checked-hash byte-code stays valid however installers set
/// the source's modification time.
const COMPILE: &str = r#"
import py_compile, sys
mode = py_compile.PycInvalidationMode.CHECKED_HASH
for line in sys.stdin:
    source = line.rstrip("\n")
    try:
        print("ok", py_compile.compile(source, doraise=True, invalidation_mode=mode))
    except Exception as e:
        print("skipped", source, "--", str(e).replace("\n", " "))
"#;

/// Compile the `.py` files among `files` (relative to `prefix`), except
/// scripts in `bin/` and those `skip` matches, with `python`; stale
/// byte-code is replaced. Returns the byte-code files, relative to
/// `prefix`.
pub fn compile(
    python: &Path,
    prefix: &Path,
    files: &[PathBuf],
    skip: &dyn Fn(&str) -> bool,
    label: &str,
) -> Result<Vec<PathBuf>> {
    let sources: Vec<String> = files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "py") && !f.starts_with("bin"))
        .map(|f| f.to_string_lossy().into_owned())
        .filter(|f| !skip(f))
        .filter(|f| prefix.join(f).symlink_metadata().is_ok_and(|m| m.is_file()))
        .collect();
    if sources.is_empty() {
        return Ok(Vec::new());
    }
    let mut child = Command::new(python)
        .args(["-I", "-c", COMPILE])
        .current_dir(prefix)
        .env_clear()
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| miette!("{label}: cannot run {} to compile byte-code: {e}", python.display()))?;
    let mut stdin = child.stdin.take().expect("piped");
    let list = sources.join("\n") + "\n";
    let writer = std::thread::spawn(move || stdin.write_all(list.as_bytes()));
    let out = child.wait_with_output().into_diagnostic()?;
    let _ = writer.join();
    if !out.status.success() {
        return Err(miette!(
            "{label}: compiling byte-code with {} failed: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let mut compiled = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(pyc) = line.strip_prefix("ok ") {
            compiled.push(PathBuf::from(pyc));
        } else if let Some(why) = line.strip_prefix("skipped ") {
            tracing::warn!("{label}: not compiled to byte-code: {why}");
        }
    }
    Ok(compiled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::python::parse_entry_point;

    fn ep(text: &str) -> EntryPoint {
        parse_entry_point(text, marked_yaml::Span::new_blank()).unwrap()
    }

    #[test]
    fn noarch_python_destinations() {
        let eps = [ep("hello = hello.cli:main")];
        let d = |p: &str| noarch_destination(Path::new(p), &eps).map(|p| p.to_string_lossy().into_owned());
        assert_eq!(
            d("lib/python3.11/site-packages/hello/__init__.py").unwrap(),
            "site-packages/hello/__init__.py"
        );
        assert_eq!(
            d("lib/python3.11/site-packages/hello-1.0.dist-info/RECORD").unwrap(),
            "site-packages/hello-1.0.dist-info/RECORD"
        );
        assert_eq!(
            d("lib/python3.11/site-packages/hello/__pycache__/__init__.cpython-311.pyc"),
            None
        );
        assert_eq!(d("bin/hello"), None, "installers write entry-point launchers");
        assert_eq!(d("bin/other-script").unwrap(), "python-scripts/other-script");
        assert_eq!(d("share/man/man1/hello.1").unwrap(), "share/man/man1/hello.1");
        assert_eq!(d("lib/libhello.so").unwrap(), "lib/libhello.so");
    }

    #[test]
    fn launchers_import_the_first_name_and_call_the_whole_path() {
        let text = launcher(Path::new("/p/bin/python"), &ep("tool = pkg.cli:App.run"));
        assert!(text.starts_with("#!/p/bin/python\n"), "{text}");
        assert!(text.contains("from pkg.cli import App\n"), "{text}");
        assert!(text.contains("sys.exit(App.run())"), "{text}");
    }
}
