//! Script interpreters besides bash (`python`, `perl`, `nushell`,
//! `rscript`, `ruby`, `node`): named by `script.interpreter` or by a
//! script file's extension (`build.py`, `build.pl`, `build.nu`), and run
//! from the build prefix, else the host prefix, else `PATH`, as
//! rattler-build looks them up. kiln still starts every script from bash,
//! which activates the environments and then runs the interpreter on the
//! script's text, written next to (never into) the work directory.

use std::path::{Path, PathBuf};

/// An interpreter a script can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interpreter {
    /// The name a recipe uses (`python`).
    pub name: &'static str,
    /// The executable (`python`, `Rscript`).
    pub exe: &'static str,
    /// The extension of the script file kiln writes (`py`).
    pub ext: &'static str,
    /// The conda package that provides it (for the error when it is missing).
    pub package: &'static str,
}

/// bash, which runs every script's wrapper.
pub const BASH: Interpreter = Interpreter {
    name: "bash",
    exe: "bash",
    ext: "sh",
    package: "bash",
};

const OTHERS: &[Interpreter] = &[
    Interpreter {
        name: "python",
        exe: "python",
        ext: "py",
        package: "python",
    },
    Interpreter {
        name: "perl",
        exe: "perl",
        ext: "pl",
        package: "perl",
    },
    Interpreter {
        name: "nushell",
        exe: "nu",
        ext: "nu",
        package: "nushell",
    },
    Interpreter {
        name: "rscript",
        exe: "Rscript",
        ext: "R",
        package: "r-base",
    },
    Interpreter {
        name: "ruby",
        exe: "ruby",
        ext: "rb",
        package: "ruby",
    },
    Interpreter {
        name: "node",
        exe: "node",
        ext: "js",
        package: "nodejs",
    },
];

/// The interpreter a recipe names (`bash`, `python`, `nu`, `nodejs`, ...).
/// `Err` carries the reason for a name kiln cannot run here.
pub fn by_name(name: &str) -> Result<Interpreter, &'static str> {
    let canonical = match name {
        "nu" => "nushell",
        "nodejs" => "node",
        "r" => "rscript",
        other => other,
    };
    if canonical == "bash" {
        return Ok(BASH);
    }
    if let Some(i) = OTHERS.iter().find(|i| i.name == canonical) {
        return Ok(*i);
    }
    match canonical {
        "cmd" | "powershell" => Err("runs only on Windows, and kiln builds on Linux and macOS"),
        "brush" => Err("is not supported yet"),
        _ => Err("is not a known interpreter (bash, python, perl, nushell, rscript, ruby, node)"),
    }
}

/// The interpreter a script file's extension names; `None` for a shell
/// script or an extension that names none (`install.step` is shell text).
pub fn by_extension(path: &Path) -> Option<Result<Interpreter, &'static str>> {
    let ext = path.extension()?.to_string_lossy().to_lowercase();
    let name = match ext.as_str() {
        "sh" | "bash" => return Some(Ok(BASH)),
        "py" => "python",
        "pl" => "perl",
        "nu" => "nushell",
        "r" => "rscript",
        "rb" => "ruby",
        "js" => "node",
        "bat" | "cmd" => "cmd",
        "ps1" => "powershell",
        _ => return None,
    };
    Some(by_name(name))
}

/// Where `i` runs from: the build prefix, the host prefix, then `PATH`.
pub fn locate(i: &Interpreter, build_prefix: &Path, host_prefix: &Path, path_var: &str) -> Option<PathBuf> {
    let prefixes = [build_prefix.join("bin"), host_prefix.join("bin")];
    use std::os::unix::fs::PermissionsExt;
    prefixes
        .into_iter()
        .chain(std::env::split_paths(path_var).filter(|d| d.is_absolute()))
        .map(|dir| dir.join(i.exe))
        .find(|exe| std::fs::metadata(exe).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_extensions() {
        assert_eq!(by_name("nu").unwrap().exe, "nu");
        assert_eq!(by_name("python").unwrap().ext, "py");
        assert!(by_name("cmd").unwrap_err().contains("Windows"));
        assert!(by_name("cobol").is_err());
        assert_eq!(by_extension(Path::new("build.py")).unwrap().unwrap().name, "python");
        assert_eq!(by_extension(Path::new("build.sh")).unwrap().unwrap(), BASH);
        assert!(by_extension(Path::new("install.step")).is_none());
        assert!(by_extension(Path::new("build.bat")).unwrap().is_err());
    }

    #[test]
    fn the_build_prefix_comes_first() {
        let build = tempfile::tempdir().unwrap();
        let host = tempfile::tempdir().unwrap();
        let python = by_name("python").unwrap();
        for p in [build.path(), host.path()] {
            std::fs::create_dir_all(p.join("bin")).unwrap();
            std::fs::write(p.join("bin/python"), "").unwrap();
            std::fs::set_permissions(
                p.join("bin/python"),
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )
            .unwrap();
        }
        assert_eq!(
            locate(&python, build.path(), host.path(), ""),
            Some(build.path().join("bin/python"))
        );
        std::fs::remove_file(build.path().join("bin/python")).unwrap();
        assert_eq!(
            locate(&python, build.path(), host.path(), ""),
            Some(host.path().join("bin/python"))
        );
        std::fs::remove_file(host.path().join("bin/python")).unwrap();
        assert_eq!(locate(&python, build.path(), host.path(), ""), None);
    }
}
