//! Writing to disk so that a crash never leaves something a later run
//! trusts: atomic file writes (temporary file, then rename), syncing a
//! finished tree before it is published, and creating directories below a
//! root without following symlinks.

use std::io::{ErrorKind, Write};
use std::path::{Component, Path, PathBuf};

use miette::{miette, IntoDiagnostic, Result};
use rayon::prelude::*;

/// Write `data` to `path` through a temporary file in the same directory,
/// synced before the rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    write_via_temp(path, data, true)
}

/// Replace the content of `path` with a new file (a new inode, so a
/// reflinked or hard-linked original is left alone), through a temporary
/// file whose name no other file shares. Not synced: for files of a build
/// in progress.
pub fn replace_file(path: &Path, data: &[u8]) -> Result<()> {
    write_via_temp(path, data, false)
}

fn write_via_temp(path: &Path, data: &[u8], sync: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .into_diagnostic()?;
    tmp.write_all(data).into_diagnostic()?;
    if sync {
        tmp.as_file().sync_all().into_diagnostic()?;
    }
    tmp.persist(path)
        .map_err(|e| miette!("cannot write {}: {e}", path.display()))?;
    Ok(())
}

/// Make every file and directory below `root` durable, so that a rename
/// published afterwards survives a crash. On Linux one `syncfs` of the file
/// system (a single journal commit; per-file `fsync` of 20,000 files took
/// five times as long, see BENCHMARKS.md); elsewhere, or when that fails,
/// an `fsync` per file (in parallel) and directory, skipping what we may
/// not open (a build left a mode-000 file).
pub fn sync_tree(root: &Path) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        if let Ok(dir) = std::fs::File::open(root) {
            // SAFETY: `dir` is an open file descriptor for the whole call.
            if unsafe { libc::syncfs(dir.as_raw_fd()) } == 0 {
                return Ok(());
            }
        }
    }
    sync_each(root)
}

fn sync_each(root: &Path) -> Result<()> {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for e in walkdir::WalkDir::new(root).follow_links(false) {
        let e = match e {
            Ok(e) => e,
            Err(err)
                if err
                    .io_error()
                    .is_some_and(|io| io.kind() == ErrorKind::PermissionDenied) =>
            {
                continue
            }
            Err(err) => return Err(miette!("cannot read {}: {err}", root.display())),
        };
        if e.file_type().is_dir() {
            dirs.push(e.into_path());
        } else if e.file_type().is_file() {
            files.push(e.into_path());
        }
    }
    files.par_iter().try_for_each(|f| sync_path(f))?;
    dirs.iter().try_for_each(|d| sync_path(d))
}

/// `fsync` a directory (its entries' names).
pub fn sync_dir(dir: &Path) -> Result<()> {
    sync_path(dir)
}

fn sync_path(path: &Path) -> Result<()> {
    match std::fs::File::open(path).and_then(|f| f.sync_all()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => Ok(()),
        Err(e) => Err(miette!("cannot sync {}: {e}", path.display())),
    }
}

/// Create the directories of `rel` (relative) below `root`, refusing to go
/// through a symlink or to leave `root`; returns `root/rel`.
pub fn create_dirs_inside(root: &Path, rel: &Path) -> Result<PathBuf> {
    let mut current = root.to_path_buf();
    for c in rel.components() {
        match c {
            Component::Normal(n) => current.push(n),
            Component::CurDir => continue,
            _ => return Err(miette!("{} leaves {}", rel.display(), root.display())),
        }
        match current.symlink_metadata() {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(miette!(
                    "refusing to write through the symlinked directory {}",
                    current.display()
                ))
            }
            Ok(_) => return Err(miette!("{} is not a directory", current.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match std::fs::create_dir(&current) {
                Ok(()) => {}
                // Created by a parallel restore in the meantime: check again.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if !current.symlink_metadata().into_diagnostic()?.is_dir() {
                        return Err(miette!("{} is not a directory", current.display()));
                    }
                }
                Err(e) => return Err(miette!("cannot create {}: {e}", current.display())),
            },
            Err(e) => return Err(miette!("cannot read {}: {e}", current.display())),
        }
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_never_go_through_symlinks() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("lib")).unwrap();
        assert!(create_dirs_inside(root.path(), Path::new("lib/sub")).is_err());
        assert!(create_dirs_inside(root.path(), Path::new("../x")).is_err());
        let made = create_dirs_inside(root.path(), Path::new("a/b")).unwrap();
        assert!(made.is_dir());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        let f = root.path().join("a/b/f");
        write_atomic(&f, b"x").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"x");
        sync_tree(root.path()).unwrap();
        sync_each(root.path()).unwrap();
    }
}
