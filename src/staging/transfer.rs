//! Moving bytes into and out of the staging cache.
//!
//! Capture *moves* the staging build's new prefix files and its work
//! directory into the cache entry (a rename on the same file system; a copy
//! only across file systems). Restore clones them into a build's prefix and
//! work directory with reflinks where the file system supports them, plain
//! copies otherwise, keeping modes and modification times (so `make` sees
//! nothing to rebuild), or hard-links a selection of the prefix files for an
//! output that only packages them; either way it relocates paths when the
//! entry was built at a different `$PREFIX` or work directory.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use memchr::memmem;
use miette::{miette, IntoDiagnostic, Result};
use rayon::prelude::*;

use super::store::{CachedFile, Entry, FileKind};
use crate::disk::{copy_file, Copied};
use crate::package::contents::is_binary;
use crate::package::select::Snapshot;

/// Move the files added to `prefix` since `before`, and the whole work dir, into `dest`.
pub fn capture(prefix: &Path, before: &Snapshot, work_dir: &Path, dest: &Path) -> Result<Vec<CachedFile>> {
    let after = crate::package::select::snapshot(prefix)?;
    let mut files = Vec::new();
    for rel in after.difference(before) {
        if rel.components().any(|c| c.as_os_str() == "conda-meta") {
            continue;
        }
        let src = prefix.join(rel);
        let meta = fs_err::symlink_metadata(&src).into_diagnostic()?;
        let (kind, target) = if meta.file_type().is_symlink() {
            (
                FileKind::Symlink,
                Some(
                    fs_err::read_link(&src)
                        .into_diagnostic()?
                        .to_string_lossy()
                        .into_owned(),
                ),
            )
        } else if meta.is_dir() {
            (FileKind::Directory, None)
        } else {
            (FileKind::File, None)
        };
        move_path(&src, &dest.join("prefix").join(rel))?;
        files.push(CachedFile {
            path: rel.to_string_lossy().into_owned(),
            kind,
            target,
        });
    }
    move_path(work_dir, &dest.join("work_dir"))?;
    Ok(files)
}

/// Rename, or copy and delete when `from` and `to` are on different file systems.
fn move_path(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        fs_err::create_dir_all(parent).into_diagnostic()?;
    }
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(18) => {
            // EXDEV: the cache lives on another file system.
            copy_tree(from, to)?;
            if from.is_dir() {
                fs_err::remove_dir_all(from)
            } else {
                fs_err::remove_file(from)
            }
            .into_diagnostic()
        }
        Err(e) => Err(miette!("moving {} to {}: {e}", from.display(), to.display())),
    }
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    if !fs_err::symlink_metadata(from).into_diagnostic()?.is_dir() {
        return copy_file(from, to).map(|_| ());
    }
    for e in walkdir::WalkDir::new(from).follow_links(false) {
        let e = e.into_diagnostic()?;
        let target = to.join(e.path().strip_prefix(from).into_diagnostic()?);
        if e.file_type().is_dir() {
            fs_err::create_dir_all(&target).into_diagnostic()?;
        } else {
            copy_file(e.path(), &target)?;
        }
    }
    Ok(())
}

/// What a restore did.
#[derive(Debug, Default)]
pub struct RestoreStats {
    /// Files and links restored (prefix and work dir).
    pub entries: usize,
    /// Bytes of regular files restored.
    pub bytes: u64,
    /// Files cloned by reflink.
    pub reflinked: usize,
    /// Files hard-linked to the entry's (no bytes copied, no new inode).
    pub linked: usize,
    /// Files whose content was rewritten to the new paths.
    pub relocated: usize,
}

/// How a restore places regular files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Reflinked where the file system can, copied otherwise: a build
    /// script may write into them.
    Copy,
    /// Hard-linked to the entry's file (copied across file systems). Only
    /// for outputs without a script: kiln's own steps replace a file
    /// (new inode) instead of writing into it, so the entry stays intact.
    Link,
}

/// What a restore places.
#[derive(Debug, Clone, Copy)]
pub struct Selection<'a> {
    /// The entry's prefix paths to place; all of them when `None`.
    pub paths: Option<&'a BTreeSet<String>>,
    /// Whether the work directory is restored too (always by copy).
    pub work_dir: bool,
    /// How the prefix's regular files are placed.
    pub placement: Placement,
}

impl Selection<'_> {
    /// Everything, copied: what a build script may change.
    pub const ALL: Selection<'static> = Selection {
        paths: None,
        work_dir: true,
        placement: Placement::Copy,
    };
}

/// Restore what `what` selects of `entry` into `prefix` and `work_dir`.
pub fn restore(entry: &Entry, prefix: &Path, work_dir: &Path, what: Selection) -> Result<RestoreStats> {
    let relocations: Vec<(Vec<u8>, Vec<u8>)> = [(&entry.meta.prefix, prefix), (&entry.meta.work_dir, work_dir)]
        .into_iter()
        .filter(|(old, new)| old.as_path() != *new)
        .map(|(old, new)| {
            (
                old.to_string_lossy().into_owned().into_bytes(),
                new.to_string_lossy().into_owned().into_bytes(),
            )
        })
        .collect();
    let stats = Counters::default();

    let cached_prefix = entry.prefix_dir();
    let chosen = |f: &&CachedFile| what.paths.is_none_or(|p| p.contains(&f.path));
    let files: Vec<&CachedFile> = entry.meta.files.iter().filter(chosen).collect();
    files.par_iter().try_for_each(|f| {
        let rel = Path::new(&f.path);
        if crate::disk::safe_join(prefix, rel).is_none() {
            return Err(miette!(
                "cache entry {} lists a path outside the prefix: {}",
                entry.dir.display(),
                f.path
            ));
        }
        restore_one(
            &cached_prefix.join(rel),
            prefix,
            rel,
            &relocations,
            what.placement,
            &stats,
        )
    })?;
    if !what.work_dir {
        return Ok(stats.into_stats());
    }

    let cached_work = entry.work_dir();
    let mut files = Vec::new();
    for e in walkdir::WalkDir::new(&cached_work).follow_links(false) {
        let e = e.into_diagnostic()?;
        let rel = e.path().strip_prefix(&cached_work).into_diagnostic()?.to_path_buf();
        if e.file_type().is_dir() {
            crate::disk::create_dirs_inside(work_dir, &rel)?;
        } else {
            files.push((e.path().to_path_buf(), rel));
        }
    }
    files
        .par_iter()
        .try_for_each(|(from, rel)| restore_one(from, work_dir, rel, &relocations, Placement::Copy, &stats))?;
    Ok(stats.into_stats())
}

#[derive(Default)]
struct Counters {
    entries: AtomicUsize,
    bytes: AtomicU64,
    reflinked: AtomicUsize,
    linked: AtomicUsize,
    relocated: AtomicUsize,
}

impl Counters {
    fn into_stats(self) -> RestoreStats {
        RestoreStats {
            entries: self.entries.into_inner(),
            bytes: self.bytes.into_inner(),
            reflinked: self.reflinked.into_inner(),
            linked: self.linked.into_inner(),
            relocated: self.relocated.into_inner(),
        }
    }
}

/// Restore `from` to `root/rel`, never writing through a symlinked directory.
fn restore_one(
    from: &Path,
    root: &Path,
    rel: &Path,
    relocations: &[(Vec<u8>, Vec<u8>)],
    placement: Placement,
    stats: &Counters,
) -> Result<()> {
    let meta = fs_err::symlink_metadata(from).into_diagnostic()?;
    if meta.is_dir() {
        // An empty directory the staging build made.
        crate::disk::create_dirs_inside(root, rel)?;
        stats.entries.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    let parent = crate::disk::create_dirs_inside(root, rel.parent().unwrap_or(Path::new("")))?;
    let to = &parent.join(rel.file_name().ok_or_else(|| miette!("empty path in a cache entry"))?);
    if to.symlink_metadata().is_ok() {
        fs_err::remove_file(to).into_diagnostic()?;
    }
    stats.entries.fetch_add(1, Ordering::Relaxed);
    if meta.file_type().is_symlink() {
        let target = fs_err::read_link(from).into_diagnostic()?;
        let target = relocate_link(&target, relocations);
        std::os::unix::fs::symlink(&target, to).into_diagnostic()?;
        return Ok(());
    }
    let linked = placement == Placement::Link && std::fs::hard_link(from, to).is_ok();
    if linked {
        stats.linked.fetch_add(1, Ordering::Relaxed);
    } else if crate::disk::copy_file(from, to)? == Copied::Reflinked {
        stats.reflinked.fetch_add(1, Ordering::Relaxed);
    }
    stats.bytes.fetch_add(meta.len(), Ordering::Relaxed);
    if !relocations.is_empty() && relocate_content(to, relocations)? {
        stats.relocated.fetch_add(1, Ordering::Relaxed);
        // Relocation wrote a new file: give it the original's mode and time again.
        fs_err::set_permissions(to, std::fs::Permissions::from_mode(meta.permissions().mode())).into_diagnostic()?;
        filetime::set_file_mtime(to, filetime::FileTime::from_last_modification_time(&meta)).into_diagnostic()?;
    }
    Ok(())
}

/// Absolute link targets into an old location point into the new one.
fn relocate_link(target: &Path, relocations: &[(Vec<u8>, Vec<u8>)]) -> PathBuf {
    let t = target.to_string_lossy();
    for (old, new) in relocations {
        let old = String::from_utf8_lossy(old);
        if let Some(rest) = t.strip_prefix(old.as_ref()) {
            if rest.is_empty() || rest.starts_with('/') {
                return PathBuf::from(format!("{}{rest}", String::from_utf8_lossy(new)));
            }
        }
    }
    target.to_path_buf()
}

/// Why `entry` cannot be restored into `prefix` and `work_dir`, if it cannot:
/// a path that gets longer cannot be rewritten inside a binary file.
pub fn unrelocatable(entry: &Entry, prefix: &Path, work_dir: &Path) -> Result<Option<String>> {
    let longer: Vec<(Vec<u8>, &Path)> = [(&entry.meta.prefix, prefix), (&entry.meta.work_dir, work_dir)]
        .into_iter()
        .filter(|(old, new)| new.as_os_str().len() > old.as_os_str().len())
        .map(|(old, _)| (old.to_string_lossy().into_owned().into_bytes(), old.as_path()))
        .collect();
    if longer.is_empty() {
        return Ok(None);
    }
    let mut files: Vec<PathBuf> = entry
        .meta
        .files
        .iter()
        .filter(|f| f.kind == FileKind::File)
        .map(|f| entry.prefix_dir().join(&f.path))
        .collect();
    for e in walkdir::WalkDir::new(entry.work_dir()).follow_links(false) {
        let e = e.into_diagnostic()?;
        if e.file_type().is_file() {
            files.push(e.into_path());
        }
    }
    let blocking = files.par_iter().find_map_any(|f| {
        if !std::fs::symlink_metadata(f).is_ok_and(|m| m.is_file()) {
            return None;
        }
        let data = std::fs::read(f).ok()?;
        if !is_binary(&data) {
            return None;
        }
        longer
            .iter()
            .find(|(old, _)| in_c_string(&data, old))
            .map(|(_, old)| (f.clone(), *old))
    });
    Ok(blocking.map(|(file, old)| {
        format!(
            "the binary file {} holds the path {}, and this build's path is longer",
            file.strip_prefix(&entry.dir).unwrap_or(&file).display(),
            old.display()
        )
    }))
}

/// Replace old paths by new ones in a file; returns whether it changed.
/// Text files get a plain replacement. In binary files only NUL-terminated
/// strings are rewritten, padded with NULs to their old length (as conda
/// does); nothing after a string moves.
fn relocate_content(path: &Path, relocations: &[(Vec<u8>, Vec<u8>)]) -> Result<bool> {
    let data = fs_err::read(path).into_diagnostic()?;
    if !relocations.iter().any(|(old, _)| memmem::find(&data, old).is_some()) {
        return Ok(false);
    }
    let binary = is_binary(&data);
    let mut out = data;
    for (old, new) in relocations {
        out = if binary {
            replace_binary(&out, old, new).ok_or_else(|| {
                miette!(
                    "cannot relocate {} in binary file {}: the new path is longer",
                    String::from_utf8_lossy(old),
                    path.display()
                )
            })?
        } else {
            replace_all(&out, old, new)
        };
    }
    crate::disk::replace_file(path, &out)?;
    Ok(true)
}

fn replace_all(data: &[u8], old: &[u8], new: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut last = 0;
    for i in memmem::find_iter(data, old) {
        out.extend_from_slice(&data[last..i]);
        out.extend_from_slice(new);
        last = i + old.len();
    }
    out.extend_from_slice(&data[last..]);
    out
}

/// Whether `old` occurs in `data` with a NUL after it (in a C string that
/// relocation would rewrite).
fn in_c_string(data: &[u8], old: &[u8]) -> bool {
    memmem::find_iter(data, old).any(|pos| memchr::memchr(0, &data[pos + old.len()..]).is_some())
}

/// Rewrite each NUL-terminated string that contains `old`, from the first
/// occurrence to its NUL, padded with NULs to its old length. An
/// occurrence without a terminating NUL is left alone. `None` when `new`
/// is longer than `old` and a string would have to grow.
fn replace_binary(data: &[u8], old: &[u8], new: &[u8]) -> Option<Vec<u8>> {
    let mut out = data.to_vec();
    let mut from = 0;
    while let Some(pos) = memmem::find(&data[from..], old).map(|p| p + from) {
        let Some(nul) = memchr::memchr(0, &data[pos..]).map(|p| pos + p) else {
            break;
        };
        if new.len() > old.len() {
            return None;
        }
        let rewritten = replace_all(&data[pos..nul], old, new);
        out[pos..pos + rewritten.len()].copy_from_slice(&rewritten);
        out[pos + rewritten.len()..nul].fill(0);
        from = nul + 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_relocation_pads_with_nul() {
        let data = b"xx/old/prefix/lib:/old/prefix/x\0yy/old/prefix".to_vec();
        let out = replace_binary(&data, b"/old/prefix", b"/new").unwrap();
        assert_eq!(out.len(), data.len());
        // Both occurrences in the string; the one without a NUL stays.
        assert_eq!(
            &out[..],
            b"xx/new/lib:/new/x\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0yy/old/prefix"
        );
        assert!(replace_binary(&data, b"/old", b"/much/longer").is_none());
        assert_eq!(replace_binary(b"/old", b"/old", b"/much/longer").unwrap(), b"/old");
    }

    #[test]
    fn links_follow_the_new_location() {
        let rel = vec![(b"/a/old".to_vec(), b"/b/new".to_vec())];
        assert_eq!(
            relocate_link(Path::new("/a/old/lib/x"), &rel),
            PathBuf::from("/b/new/lib/x")
        );
        assert_eq!(
            relocate_link(Path::new("/a/older/x"), &rel),
            PathBuf::from("/a/older/x")
        );
        assert_eq!(relocate_link(Path::new("x"), &rel), PathBuf::from("x"));
    }
}
