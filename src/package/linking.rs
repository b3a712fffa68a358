//! Linking checks after the build, in the manner of conda-build and
//! rattler-build: every `DT_NEEDED` library of every ELF file in the
//! package is resolved (through the file's run paths, then `lib/`) against
//! the package itself, the host environment (library → the package that
//! installed it), the staging output's other packages, the sysroots of the
//! build and host environments and glibc's libraries. A library from a
//! package that is not a run dependency is *overlinking*, as is one found
//! nowhere or in no package; a run dependency added by a host package's run
//! exports whose libraries in `lib/` none is linked is *overdepending*.
//! `missing_dso_allowlist` accepts a library whatever its origin.
//!
//! Mach-O files are not checked yet (kiln builds on Linux).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use miette::{miette, IntoDiagnostic, Result};

use super::elf::{is_elf, is_system_library, Dynamic};
use super::glob::GlobList;
use crate::recipe::model::{DynamicLinking, LinkingBehavior};
use crate::recipe::Recipe;

/// Shared library path (relative to the prefix, `/`-separated) → the
/// package that provides it.
pub type LibraryMap = BTreeMap<String, String>;

/// The libraries in the sysroots of a prefix (`<triple>/sysroot/{lib,lib64,usr/lib,usr/lib64}`), by name.
pub fn sysroot_libraries(prefix: &Path) -> BTreeSet<String> {
    let Ok(entries) = std::fs::read_dir(prefix) else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .map(|e| e.path().join("sysroot"))
        .filter(|s| s.is_dir())
        .flat_map(|s| ["lib", "lib64", "usr/lib", "usr/lib64"].map(|d| s.join(d)))
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|entries| entries.flatten())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| is_shared_library(Path::new(n)))
        .collect()
}

/// Where the build machine keeps its own libraries (named in messages
/// about libraries found only there).
const MACHINE_LIBRARY_DIRS: &[&str] = &[
    "/lib64",
    "/usr/lib64",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/lib",
    "/usr/lib",
];

/// Whether a file name looks like a shared library.
pub fn is_shared_library(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    name.ends_with(".so") || name.contains(".so.") || name.ends_with(".dylib")
}

/// The shared libraries of the packages installed in `prefix`.
pub fn installed_libraries(prefix: &Path) -> Result<LibraryMap> {
    let mut map = LibraryMap::new();
    for (name, files) in super::select::installed(prefix)? {
        for f in files.iter().filter(|f| is_shared_library(f)) {
            map.insert(f.to_string_lossy().replace('\\', "/"), name.clone());
        }
    }
    Ok(map)
}

/// What the check looks at.
pub struct Inputs<'a> {
    /// The host prefix the files are in.
    pub prefix: &'a Path,
    /// Library names in the sysroots of the build and host environments
    /// (and of the inherited staging output's).
    pub sysroot: &'a BTreeSet<String>,
    /// The package's files, relative to `prefix`.
    pub files: &'a [PathBuf],
    /// Libraries of the host environment (and of the inherited staging
    /// output's host environment).
    pub host: &'a LibraryMap,
    /// Libraries of the staging output that other outputs package, with
    /// those outputs' names.
    pub siblings: &'a BTreeMap<String, Vec<String>>,
    /// Names of the package's run dependencies.
    pub run: &'a BTreeSet<String>,
    /// Run dependencies that host packages' run exports added: the ones
    /// checked for overdepending.
    pub exported: &'a BTreeSet<String>,
    /// The recipe's `dynamic_linking`.
    pub config: &'a DynamicLinking,
}

/// Which check a finding belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A linked library the run dependencies do not bring.
    Overlinking,
    /// A run dependency whose libraries are not linked.
    Overdepending,
}

/// One problem, with a message naming the binary, the library and the package.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Overlinking or overdepending.
    pub kind: Kind,
    /// What is wrong.
    pub message: String,
}

/// Where a needed library was found.
enum Origin {
    /// In the package itself.
    Own,
    /// In a host package.
    Host(String),
    /// In other outputs of the staging output.
    Sibling(Vec<String>),
    /// In the prefix, but in no package.
    Unowned(String),
    /// In the sysroot or glibc.
    System,
    /// Through a run path entry outside the prefix that `rpath_allowlist` keeps.
    Allowlisted,
    /// Nowhere.
    Missing,
}

/// Run the checks over the ELF files among `inputs.files`.
pub fn check(inputs: &Inputs) -> Result<Vec<Finding>> {
    let globs = |g| GlobList::new(g).map_err(|(msg, _)| miette!("{msg}"));
    let allow = globs(&inputs.config.missing_dso_allowlist)?;
    let kept = globs(&inputs.config.rpath_allowlist)?;
    let own: BTreeSet<String> = inputs.files.iter().map(|f| slashed(f)).collect();
    let mut findings = Vec::new();
    let mut linked_packages: BTreeSet<String> = BTreeSet::new();
    let mut any_binary = false;
    for rel in inputs.files {
        let path = inputs.prefix.join(rel);
        if !path.symlink_metadata().is_ok_and(|m| m.is_file()) || !is_elf(&path) {
            continue;
        }
        let data = fs_err::read(&path).into_diagnostic()?;
        let Some(dynamic) = Dynamic::parse(&data) else { continue };
        any_binary = any_binary || !dynamic.needed.is_empty();
        let dirs = search_dirs(rel, &dynamic, inputs.prefix, &kept);
        for lib in &dynamic.needed {
            let (found_at, origin) = if lib.contains('/') {
                locate_path(lib, inputs, &own)
            } else {
                locate(lib, &dirs, inputs, &own)
            };
            let origin = match origin {
                Origin::Missing if !lib.contains('/') && (inputs.sysroot.contains(lib) || is_system_library(lib)) => {
                    Origin::System
                }
                o => o,
            };
            let machine = match origin {
                Origin::Missing => on_machine(lib),
                _ => None,
            };
            let name = lib.rsplit('/').next().unwrap_or(lib);
            let candidates = [
                Some(lib.to_string()),
                Some(format!("$RPATH/{name}")),
                found_at.clone(),
                machine.as_ref().map(|m| m.display().to_string()),
            ];
            let allowed = candidates.iter().flatten().any(|c| allow.is_match(c));
            let binary = rel.display();
            let message = match origin {
                Origin::Own | Origin::System | Origin::Allowlisted => None,
                Origin::Host(pkg) => {
                    linked_packages.insert(pkg.clone());
                    (!inputs.run.contains(&pkg)).then(|| {
                        format!(
                            "{binary} links {lib} ({} from the host package `{pkg}`), but `{pkg}` is not a run dependency",
                            found_at.as_deref().unwrap_or(lib)
                        )
                    })
                }
                Origin::Sibling(pkgs) => (!pkgs.iter().any(|p| inputs.run.contains(p))).then(|| {
                    format!(
                        "{binary} links {lib} ({}, packaged by `{}`), but `{}` is not a run dependency",
                        found_at.as_deref().unwrap_or(lib),
                        pkgs.join("`, `"),
                        pkgs[0]
                    )
                }),
                Origin::Unowned(at) => Some(format!(
                    "{binary} links {lib} ({at} in the prefix), but no package of this recipe or the host environment contains it"
                )),
                Origin::Missing => Some(match machine {
                    Some(at) => format!(
                        "{binary} links {lib}, which is not in the package, a host package or a sysroot; the build machine has it at {}, a user's machine may not",
                        at.display()
                    ),
                    None => format!("{binary} links {lib}, which is not in the package, a host package or a sysroot"),
                }),
            };
            if let Some(message) = message.filter(|_| !allowed) {
                findings.push(Finding {
                    kind: Kind::Overlinking,
                    message,
                });
            }
        }
    }
    if any_binary {
        // Libraries the loader finds: those directly in `lib/` (not Python
        // extension modules, plugins or lib-dynload).
        let mut provides: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (lib, pkg) in inputs.host {
            if lib.strip_prefix("lib/").is_some_and(|rest| !rest.contains('/')) {
                provides.entry(pkg).or_default().push(lib);
            }
        }
        for pkg in inputs.run.intersection(inputs.exported) {
            if let Some(libs) = provides.get(pkg.as_str()) {
                if !linked_packages.contains(pkg) {
                    findings.push(Finding {
                        kind: Kind::Overdepending,
                        message: format!(
                            "the run dependency `{pkg}` (a host package's run export) provides shared libraries ({}), but no binary in the package links any of them",
                            preview(libs)
                        ),
                    });
                }
            }
        }
    }
    Ok(findings)
}

/// Shared libraries in an inheritor's prefix → the other outputs (not
/// `own`) that package them. `chain` is the inherited staging output and
/// the ones it was restored on top of, nearest first, each with the files
/// of its cache entry. Another output shares the files of the nearest
/// staging output in `chain` that its own staging chain also holds (its
/// prefix was restored from that entry too), and packages those its
/// `files` selects.
pub fn sibling_libraries(recipe: &Recipe, own: &str, chain: &[(&str, Vec<&str>)]) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for o in &recipe.outputs {
        let name = o.package.name.as_normalized();
        let Some(theirs) = o.inherit.staging_name().filter(|_| name != own) else {
            continue;
        };
        let theirs = recipe.staging_chain(theirs);
        let Some((_, files)) = chain.iter().find(|(s, _)| theirs.iter().any(|c| c.name == *s)) else {
            continue;
        };
        // Invalid globs were reported in preflight.
        let Ok(mut selector) = super::glob::Selector::new(&o.build.files) else {
            continue;
        };
        for lib in files.iter().filter(|f| is_shared_library(Path::new(f))) {
            if selector.select(lib) {
                map.entry(lib.to_string()).or_default().push(name.to_string());
            }
        }
    }
    map
}

/// Warn about findings whose behavior is `ignore`; fail, listing them,
/// when any is `error`.
pub fn report(id: &str, findings: &[Finding], config: &DynamicLinking) -> Result<()> {
    let behavior = |k: Kind| match k {
        Kind::Overlinking => config.overlinking_behavior,
        Kind::Overdepending => config.overdepending_behavior,
    };
    let label = |k: Kind| match k {
        Kind::Overlinking => "overlinking",
        Kind::Overdepending => "overdepending",
    };
    let mut errors = Vec::new();
    for f in findings {
        match behavior(f.kind) {
            LinkingBehavior::Ignore => tracing::warn!("{id}: {}: {}", label(f.kind), f.message),
            LinkingBehavior::Error => errors.push(format!("{}: {}", label(f.kind), f.message)),
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    Err(miette!(
        help = "add the package to `requirements.run` (for an output of this recipe, with `pin_subpackage`), \
                remove the dependency that is not linked, or accept the library with \
                `dynamic_linking.missing_dso_allowlist`",
        "{id}: linking check failed:\n  {}",
        errors.join("\n  ")
    ))
}

/// Find `lib` in the first directory that has it.
fn locate(lib: &str, dirs: &[SearchDir], inputs: &Inputs, own: &BTreeSet<String>) -> (Option<String>, Origin) {
    for dir in dirs {
        let rel = match dir {
            SearchDir::Outside(abs) => {
                if abs.join(lib).exists() {
                    return (Some(abs.join(lib).display().to_string()), Origin::Allowlisted);
                }
                continue;
            }
            SearchDir::Prefix(d) if d.is_empty() => lib.to_string(),
            SearchDir::Prefix(d) => format!("{d}/{lib}"),
        };
        if let Some(origin) = origin_in_prefix(&rel, inputs, own) {
            return (Some(rel), origin);
        }
        if inputs.prefix.join(&rel).exists() {
            return (Some(rel.clone()), Origin::Unowned(rel));
        }
    }
    (None, Origin::Missing)
}

/// Who provides the prefix path `rel`: the package, a host package or a sibling output.
fn origin_in_prefix(rel: &str, inputs: &Inputs, own: &BTreeSet<String>) -> Option<Origin> {
    if own.contains(rel) {
        Some(Origin::Own)
    } else if let Some(pkg) = inputs.host.get(rel) {
        Some(Origin::Host(pkg.clone()))
    } else {
        inputs.siblings.get(rel).map(|pkgs| Origin::Sibling(pkgs.clone()))
    }
}

/// A `DT_NEEDED` entry that is a path (a library linked by its path
/// rather than its soname): inside the prefix it is looked up like a
/// prefix file; outside, it is missing unless allowlisted.
fn locate_path(lib: &str, inputs: &Inputs, own: &BTreeSet<String>) -> (Option<String>, Origin) {
    let inside = Path::new(lib).strip_prefix(inputs.prefix).ok().and_then(normalize);
    let Some(rel) = inside else {
        return (None, Origin::Missing);
    };
    let origin = origin_in_prefix(&rel, inputs, own).unwrap_or_else(|| Origin::Unowned(rel.clone()));
    (Some(rel), origin)
}

/// A directory the dynamic loader searches.
enum SearchDir {
    /// Inside the prefix (relative, `/`-separated).
    Prefix(String),
    /// Outside it, kept by `rpath_allowlist`.
    Outside(PathBuf),
}

/// The run path entries of a file (relative to the prefix), then `lib`.
/// Entries outside the prefix count only when `rpath_allowlist` (`kept`)
/// keeps them.
fn search_dirs(rel: &Path, dynamic: &Dynamic, prefix: &Path, kept: &GlobList) -> Vec<SearchDir> {
    let dir = rel.parent().unwrap_or(Path::new(""));
    let mut out = Vec::new();
    for rp in &dynamic.run_paths {
        for entry in String::from_utf8_lossy(&rp.bytes).split(':').filter(|e| !e.is_empty()) {
            let origin = entry
                .strip_prefix("$ORIGIN")
                .or_else(|| entry.strip_prefix("${ORIGIN}"));
            if let Some(rest) = origin {
                if let Some(d) = normalize(&dir.join(rest.trim_start_matches('/'))) {
                    out.push(SearchDir::Prefix(d));
                }
            } else if let Ok(inside) = Path::new(entry).strip_prefix(prefix) {
                if let Some(d) = normalize(inside) {
                    out.push(SearchDir::Prefix(d));
                }
            } else if kept.is_match(entry) {
                out.push(SearchDir::Outside(PathBuf::from(entry)));
            }
        }
    }
    out.push(SearchDir::Prefix("lib".into()));
    out
}

/// `a/b/../c` → `a/c`; `None` when it climbs out.
fn normalize(p: &Path) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(parts.join("/"))
}

/// Where the build machine itself has `lib`, if it does.
fn on_machine(lib: &str) -> Option<PathBuf> {
    MACHINE_LIBRARY_DIRS
        .iter()
        .map(|d| Path::new(d).join(lib))
        .find(|p| p.exists())
}

fn slashed(p: &Path) -> String {
    p.to_string_lossy().replace('\\', "/")
}

fn preview(items: &[&str]) -> String {
    match items.len() {
        0..=3 => items.join(", "),
        n => format!("{}, … ({n} in all)", items[..3].join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_library_names() {
        for yes in ["lib/libz.so", "lib/libz.so.1", "lib/libz.so.1.3.1", "lib/libz.1.dylib"] {
            assert!(is_shared_library(Path::new(yes)), "{yes}");
        }
        for no in ["lib/libz.a", "bin/zsoft", "include/zlib.h", "lib/python/so.py"] {
            assert!(!is_shared_library(Path::new(no)), "{no}");
        }
    }

    fn inputs<'a>(
        prefix: &'a Path,
        files: &'a [PathBuf],
        host: &'a LibraryMap,
        empty: &'a BTreeSet<String>,
        siblings: &'a BTreeMap<String, Vec<String>>,
        config: &'a DynamicLinking,
    ) -> Inputs<'a> {
        Inputs {
            prefix,
            sysroot: empty,
            files,
            host,
            siblings,
            run: empty,
            exported: empty,
            config,
        }
    }

    fn dynamic(run_path: &str) -> Dynamic {
        Dynamic {
            needed: Vec::new(),
            run_paths: vec![super::super::elf::RunPath {
                offset: 0,
                bytes: run_path.as_bytes().to_vec(),
                is_rpath: false,
                shared: false,
            }],
        }
    }

    #[test]
    fn libraries_are_found_through_origin_paths_and_by_absolute_path() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path();
        std::fs::create_dir_all(prefix.join("lib/private")).unwrap();
        std::fs::write(prefix.join("lib/private/libx.so"), b"").unwrap();
        std::fs::write(prefix.join("lib/liby.so.2"), b"").unwrap();
        let files = vec![PathBuf::from("bin/tool")];
        let host: LibraryMap = [("lib/liby.so.2".to_string(), "ylib".to_string())].into();
        let (empty, siblings, config) = (BTreeSet::new(), BTreeMap::new(), DynamicLinking::default());
        let inputs = inputs(prefix, &files, &host, &empty, &siblings, &config);
        let own = BTreeSet::new();
        let none = GlobList::new(&[]).unwrap();
        let dirs = search_dirs(
            Path::new("bin/tool"),
            &dynamic("$ORIGIN/../lib/private:/usr/lib64"),
            prefix,
            &none,
        );
        // `/usr/lib64` is not kept by rpath_allowlist, so it is not searched.
        assert_eq!(dirs.len(), 2);
        let (at, origin) = locate("libx.so", &dirs, &inputs, &own);
        assert_eq!(at.as_deref(), Some("lib/private/libx.so"));
        assert!(matches!(origin, Origin::Unowned(_)));
        let own: BTreeSet<String> = ["lib/private/libx.so".to_string()].into();
        assert!(matches!(locate("libx.so", &dirs, &inputs, &own).1, Origin::Own));
        // Found through the `lib/` fallback, in a host package.
        assert!(matches!(locate("liby.so.2", &dirs, &inputs, &own).1, Origin::Host(p) if p == "ylib"));
        assert!(matches!(locate("libnone.so", &dirs, &inputs, &own).1, Origin::Missing));
        // A library linked by its path.
        let abs = format!("{}/lib/liby.so.2", prefix.display());
        assert!(matches!(locate_path(&abs, &inputs, &own), (Some(p), Origin::Host(_)) if p == "lib/liby.so.2"));
        assert!(matches!(
            locate_path("/usr/lib64/libGL.so.1", &inputs, &own).1,
            Origin::Missing
        ));
    }

    #[test]
    fn run_path_entries_become_prefix_directories() {
        assert_eq!(normalize(Path::new("bin/../lib")).as_deref(), Some("lib"));
        assert_eq!(normalize(Path::new("lib/./private")).as_deref(), Some("lib/private"));
        assert_eq!(normalize(Path::new("bin/../../etc")), None);
    }
}
