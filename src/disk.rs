//! File mechanisms, each with one home: writing so that a crash never
//! leaves something a later run trusts (atomic writes: temporary file, then
//! rename; syncing a finished tree before it is published), creating
//! directories below a root without following symlinks, following links
//! without leaving a root, copying a file with its metadata (by reflink
//! where the file system can), and a file's SHA-256.

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
/// file whose name no other file shares, keeping the original's mode (a
/// new file gets 0644). Not synced: for files of a build in progress.
pub fn replace_file(path: &Path, data: &[u8]) -> Result<()> {
    write_via_temp(path, data, false)
}

fn write_via_temp(path: &Path, data: &[u8], sync: bool) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .into_diagnostic()?;
    tmp.write_all(data).into_diagnostic()?;
    let mode = std::fs::metadata(path).map_or(0o644, |m| m.permissions().mode() & 0o7777);
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .into_diagnostic()?;
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

/// How [`copy_file`] copied a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Copied {
    /// Cloned by reflink: no bytes were copied.
    Reflinked,
    /// The bytes were copied.
    Copied,
    /// A symlink, recreated with the same target.
    Symlink,
}

/// Copy one file or symlink to `to` (replacing what is there), keeping the
/// file's mode and modification time (so `make` sees nothing to rebuild);
/// a reflink where the file system supports it. Parent directories are
/// created (follow [`create_dirs_inside`] first where that matters).
pub fn copy_file(from: &Path, to: &Path) -> Result<Copied> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = to.parent() {
        fs_err::create_dir_all(parent).into_diagnostic()?;
    }
    let meta = fs_err::symlink_metadata(from).into_diagnostic()?;
    if to.symlink_metadata().is_ok() {
        fs_err::remove_file(to).into_diagnostic()?;
    }
    if meta.file_type().is_symlink() {
        let target = fs_err::read_link(from).into_diagnostic()?;
        std::os::unix::fs::symlink(&target, to).into_diagnostic()?;
        return Ok(Copied::Symlink);
    }
    let how = match reflink_copy::reflink_or_copy(from, to) {
        Ok(None) => Copied::Reflinked,
        Ok(Some(_)) => Copied::Copied,
        Err(e) => return Err(miette!("cannot copy {} to {}: {e}", from.display(), to.display())),
    };
    fs_err::set_permissions(to, std::fs::Permissions::from_mode(meta.permissions().mode())).into_diagnostic()?;
    filetime::set_file_mtime(to, filetime::FileTime::from_last_modification_time(&meta)).into_diagnostic()?;
    Ok(how)
}

/// Copy the tree `from` into `to` (created), keeping symlinks and modes.
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    for entry in walkdir::WalkDir::new(from).follow_links(false) {
        let entry = entry.into_diagnostic()?;
        let rel = entry.path().strip_prefix(from).into_diagnostic()?;
        let target = to.join(rel);
        if entry.file_type().is_dir() {
            fs_err::create_dir_all(&target).into_diagnostic()?;
        } else {
            copy_file(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Hex SHA-256 of a file's content.
pub fn file_sha256(path: &Path) -> Result<String> {
    let digest = rattler_digest::compute_file_digest::<rattler_digest::Sha256>(path)
        .map_err(|e| miette!("cannot read {}: {e}", path.display()))?;
    Ok(hex::encode(digest))
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

/// Follow `path` (relative to `prefix`) through the symlinks below
/// `prefix`, one component at a time against the real files; `None` when
/// some step leaves `prefix`. A missing path is fine (a broken link stays
/// broken), and so is a loop of links.
pub fn resolve_within(prefix: &Path, path: &Path) -> Option<PathBuf> {
    let mut pending: Vec<std::ffi::OsString> = Vec::new();
    let push = |pending: &mut Vec<std::ffi::OsString>, p: &Path| {
        for c in p.components().rev() {
            pending.push(c.as_os_str().to_os_string());
        }
    };
    push(&mut pending, path);
    let mut resolved = PathBuf::new();
    let mut hops = 0;
    while let Some(c) = pending.pop() {
        match c.to_str() {
            Some(".") => continue,
            Some("..") => {
                if !resolved.pop() {
                    return None;
                }
                continue;
            }
            _ => {}
        }
        if Path::new(&c).is_absolute() {
            return None;
        }
        resolved.push(&c);
        let here = prefix.join(&resolved);
        let Ok(meta) = here.symlink_metadata() else {
            continue;
        };
        if !meta.file_type().is_symlink() {
            continue;
        }
        hops += 1;
        if hops > 40 {
            return Some(resolved);
        }
        let target = std::fs::read_link(&here).ok()?;
        resolved.pop();
        if target.is_absolute() {
            let inside = target.strip_prefix(prefix).ok()?;
            resolved = PathBuf::new();
            push(&mut pending, inside);
        } else {
            push(&mut pending, &target);
        }
    }
    Some(resolved)
}

/// `base/rel` if `rel` is relative and stays inside `base`.
pub fn safe_join(base: &Path, rel: &Path) -> Option<PathBuf> {
    let mut out = base.to_path_buf();
    for c in rel.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
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
