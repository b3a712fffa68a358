//! Moving selected prefix files into a package directory and describing
//! them for `info/paths.json`.
//!
//! Files are hard-linked (copied only across file systems), never read
//! twice: one streaming pass computes the SHA-256 and looks for the build
//! prefix. Symlinks stay symlinks; absolute ones into the prefix become
//! relative, and any link that would leave the prefix is refused.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use memchr::memmem;
use miette::{miette, IntoDiagnostic, Result};
use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::glob::GlobList;

/// How a packaged file must be relocated at install time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileMode {
    /// Plain-text replacement.
    Text,
    /// Binary (NUL-padded) replacement.
    Binary,
}

/// One entry of `info/paths.json`.
#[derive(Debug, Clone, Serialize)]
pub struct PathEntry {
    /// Path relative to the prefix, `/`-separated.
    #[serde(rename = "_path")]
    pub path: String,
    /// `hardlink` or `softlink`.
    pub path_type: &'static str,
    /// Text or binary, when the file contains the build prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_mode: Option<FileMode>,
    /// The build prefix, when the file contains it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_placeholder: Option<String>,
    /// SHA-256 of the content (of the target for symlinks).
    pub sha256: String,
    /// Size in bytes (link-text length for symlinks).
    pub size_in_bytes: u64,
    /// Installers must copy the file, never link it (`always_copy_files`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_link: bool,
}

/// How packaged paths are described: where the build prefix is looked for
/// (`build.prefix_detection`) and which files must be copied on install
/// (`build.always_copy_files`).
pub struct Detection {
    always_copy: GlobList,
    ignore_all: bool,
    ignore: GlobList,
    text: GlobList,
    binary: GlobList,
    ignore_binary_files: bool,
}

impl Detection {
    /// The rules a recipe's build section asks for (invalid globs are
    /// errors; preflight reports them at their line first).
    pub fn new(build: &crate::recipe::model::Build) -> Result<Self> {
        let config = &build.prefix_detection;
        let set = |globs: &[crate::recipe::model::Glob]| -> Result<GlobList> {
            GlobList::new(globs).map_err(|(msg, _)| miette!("{msg}"))
        };
        Ok(Self {
            always_copy: set(&build.always_copy_files)?,
            ignore_all: config.ignore_all,
            ignore: set(&config.ignore)?,
            text: set(&config.force_text)?,
            binary: set(&config.force_binary)?,
            ignore_binary_files: config.ignore_binary_files,
        })
    }

    fn searched(&self, rel: &str) -> bool {
        // Byte-code records its source's path, but an installer rewriting
        // it would break the file: it is never searched (as rattler-build).
        let bytecode = rel.ends_with(".pyc") || rel.ends_with(".pyo");
        !self.ignore_all && !bytecode && !self.ignore.is_match(rel)
    }

    /// The mode a file that holds the prefix is relocated with.
    fn mode(&self, rel: &str, found: Option<FileMode>) -> Option<FileMode> {
        let forced = if self.text.is_match(rel) {
            found.map(|_| FileMode::Text)
        } else if self.binary.is_match(rel) {
            found.map(|_| FileMode::Binary)
        } else {
            found
        };
        forced.filter(|m| !(self.ignore_binary_files && *m == FileMode::Binary))
    }
}

/// Place `files` (relative to `prefix`) into `pkg_dir` and describe them.
pub fn assemble(prefix: &Path, files: &[PathBuf], pkg_dir: &Path, detection: &Detection) -> Result<Vec<PathEntry>> {
    let placeholder = prefix.to_string_lossy().into_owned();
    let mut entries: Vec<PathEntry> = files
        .par_iter()
        .map(|rel| place(prefix, rel, pkg_dir, &placeholder, detection))
        .collect::<Result<_>>()?;
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(entries)
}

fn place(prefix: &Path, rel: &Path, pkg_dir: &Path, placeholder: &str, detection: &Detection) -> Result<PathEntry> {
    let src = prefix.join(rel);
    let dst = pkg_dir.join(rel);
    if let Some(parent) = dst.parent() {
        fs_err::create_dir_all(parent).into_diagnostic()?;
    }
    let meta = fs_err::symlink_metadata(&src).into_diagnostic()?;
    let path = rel.to_string_lossy().replace('\\', "/");
    if meta.file_type().is_symlink() {
        let target = fs_err::read_link(&src).into_diagnostic()?;
        let target = contained_link_target(prefix, rel, &target).ok_or_else(|| {
            miette!(
                help = "symlinks in a package must point inside the package's prefix; make the link relative or package its target",
                "symlink {path} -> {} points outside $PREFIX",
                target.display()
            )
        })?;
        std::os::unix::fs::symlink(&target, &dst).into_diagnostic()?;
        let sha256 = match std::fs::metadata(&src) {
            Ok(m) if m.is_file() => scan(&src, None)?.0,
            _ => hex::encode(Sha256::digest(b"")),
        };
        return Ok(PathEntry {
            path,
            path_type: "softlink",
            file_mode: None,
            prefix_placeholder: None,
            sha256,
            size_in_bytes: target.as_os_str().len() as u64,
            no_link: false,
        });
    }
    if std::fs::hard_link(&src, &dst).is_err() {
        crate::disk::copy_file(&src, &dst)?;
    }
    let needle = detection.searched(&path).then_some(placeholder.as_bytes());
    let (sha256, size, found) = scan(&src, needle)?;
    let mode = detection.mode(&path, found);
    let no_link = detection.always_copy.is_match(&path);
    Ok(PathEntry {
        path,
        path_type: "hardlink",
        file_mode: mode,
        prefix_placeholder: mode.map(|_| placeholder.to_string()),
        sha256,
        size_in_bytes: size,
        no_link,
    })
}

/// The link target to package: absolute targets inside the prefix become
/// the shortest relative link (`bin/tool -> tool-1.0`); `None` when the
/// link, or any link it goes through, leaves the prefix.
fn contained_link_target(prefix: &Path, rel: &Path, target: &Path) -> Option<PathBuf> {
    let link_dir = rel.parent().unwrap_or(Path::new(""));
    let packaged = if target.is_absolute() {
        let inside = normalize(target.strip_prefix(prefix).ok()?)?;
        relative_path(link_dir, &inside)
    } else {
        target.to_path_buf()
    };
    crate::disk::resolve_within(prefix, &link_dir.join(&packaged))?;
    Some(packaged)
}

/// The relative path from directory `from` to `to` (both relative to one root).
pub(super) fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for c in &to[common..] {
        out.push(c);
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// Lexically normalize a relative path; `None` if it climbs above its root.
pub(crate) fn normalize(p: &Path) -> Option<PathBuf> {
    let mut out: Vec<&std::ffi::OsStr> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop()?;
            }
            _ => return None,
        }
    }
    Some(out.iter().collect())
}

/// Whether `data` is binary, as conda decides it: it contains a NUL byte.
pub fn is_binary(data: &[u8]) -> bool {
    memchr::memchr(0, data).is_some()
}

/// One pass over a file: SHA-256, size, and whether it contains `needle`
/// (binary if the file has a NUL byte anywhere, text otherwise).
fn scan(path: &Path, needle: Option<&[u8]>) -> Result<(String, u64, Option<FileMode>)> {
    let mut f = fs_err::File::open(path).into_diagnostic()?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let keep = needle.map_or(0, |n| n.len().saturating_sub(1));
    let finder = needle.map(memmem::Finder::new);
    // `window` holds the tail of the previous chunk so matches across chunk boundaries are found.
    let mut window: Vec<u8> = Vec::new();
    let mut size = 0u64;
    let mut found = false;
    let mut binary = false;
    loop {
        let n = f.read(&mut buf).into_diagnostic()?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        hasher.update(chunk);
        binary = binary || is_binary(chunk);
        size += n as u64;
        if let (Some(finder), false) = (&finder, found) {
            window.extend_from_slice(chunk);
            found = finder.find(&window).is_some();
            let cut = window.len().saturating_sub(keep);
            window.drain(..cut);
        }
    }
    let mode = found.then_some(if binary { FileMode::Binary } else { FileMode::Text });
    Ok((hex::encode(hasher.finalize()), size, mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_targets() {
        let prefix = Path::new("/p/host");
        let rel = Path::new("lib/link");
        assert_eq!(
            contained_link_target(prefix, rel, Path::new("/p/host/lib/x.so")),
            Some(PathBuf::from("x.so"))
        );
        assert_eq!(
            contained_link_target(prefix, rel, Path::new("x.so")),
            Some(PathBuf::from("x.so"))
        );
        assert_eq!(contained_link_target(prefix, rel, Path::new("../../etc/passwd")), None);
        assert_eq!(contained_link_target(prefix, rel, Path::new("/etc/passwd")), None);
        assert_eq!(
            contained_link_target(prefix, rel, Path::new("missing")),
            Some(PathBuf::from("missing"))
        );
        // Absolute links become the shortest relative link.
        assert_eq!(
            contained_link_target(prefix, Path::new("bin/tool"), Path::new("/p/host/bin/tool-1.0")),
            Some(PathBuf::from("tool-1.0"))
        );
        assert_eq!(
            contained_link_target(prefix, Path::new("tool"), Path::new("/p/host/bin/tool-1.0")),
            Some(PathBuf::from("bin/tool-1.0"))
        );
    }

    #[test]
    fn link_chains_that_leave_the_prefix_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let prefix = root.path().join("prefix");
        std::fs::create_dir_all(prefix.join("lib")).unwrap();
        std::os::unix::fs::symlink("../..", prefix.join("lib/up")).unwrap();
        std::os::unix::fs::symlink("/etc", prefix.join("lib/etc")).unwrap();
        std::os::unix::fs::symlink("b", prefix.join("lib/a")).unwrap();
        std::os::unix::fs::symlink("a", prefix.join("lib/b")).unwrap();
        let rel = Path::new("bin/x");
        // Through a link that climbs out, or one that points outside.
        assert_eq!(contained_link_target(&prefix, rel, Path::new("../lib/up/secret")), None);
        assert_eq!(
            contained_link_target(&prefix, rel, Path::new("../lib/etc/passwd")),
            None
        );
        // A loop is a broken link, not an escape.
        assert!(contained_link_target(&prefix, rel, Path::new("../lib/a")).is_some());
    }

    #[test]
    fn byte_code_is_never_searched_for_the_prefix() {
        let none = GlobList::new(&[]).unwrap();
        let d = Detection {
            always_copy: GlobList::new(&[]).unwrap(),
            ignore_all: false,
            ignore: none,
            text: GlobList::new(&[]).unwrap(),
            binary: GlobList::new(&[]).unwrap(),
            ignore_binary_files: false,
        };
        assert!(d.searched("lib/python3.11/site-packages/a.py"));
        assert!(!d.searched("lib/python3.11/site-packages/__pycache__/a.cpython-311.pyc"));
        assert!(!d.searched("lib/python2.7/site-packages/a.pyo"));
    }

    #[test]
    fn scan_finds_prefix_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let mut data = vec![b'a'; (1 << 20) - 3];
        data.extend_from_slice(b"/my/prefix/here");
        std::fs::write(&p, &data).unwrap();
        let (_, size, mode) = scan(&p, Some(b"/my/prefix")).unwrap();
        assert_eq!(size, data.len() as u64);
        assert_eq!(mode, Some(FileMode::Text));
        let mut bin = vec![0xffu8, 0xfe, 0];
        bin.extend_from_slice(b"/my/prefix\0");
        std::fs::write(&p, &bin).unwrap();
        assert_eq!(scan(&p, Some(b"/my/prefix")).unwrap().2, Some(FileMode::Binary));
        // As conda decides: a NUL byte anywhere (even after the first KiB) makes it binary,
        // and invalid UTF-8 without one is still text.
        let mut late = vec![b'a'; 5000];
        late.extend_from_slice(b"/my/prefix\0");
        std::fs::write(&p, &late).unwrap();
        assert_eq!(scan(&p, Some(b"/my/prefix")).unwrap().2, Some(FileMode::Binary));
        std::fs::write(&p, b"\xff\xfe latin-1 /my/prefix").unwrap();
        assert_eq!(scan(&p, Some(b"/my/prefix")).unwrap().2, Some(FileMode::Text));
        std::fs::write(&p, b"nothing").unwrap();
        assert_eq!(scan(&p, Some(b"/my/prefix")).unwrap().2, None);
    }
}
