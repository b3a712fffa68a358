//! Moving bytes into and out of the staging cache.
//!
//! Capture *moves* the staging build's new prefix files and its work
//! directory into the cache entry (a rename on the same file system; a copy
//! only across file systems). Restore clones them into a build's prefix and
//! work directory with reflinks where the file system supports them, plain
//! copies otherwise, keeping modes and modification times (so `make` sees
//! nothing to rebuild), and relocates paths when the entry was built at a
//! different `$PREFIX` or work directory.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use memchr::memmem;
use miette::{miette, IntoDiagnostic, Result};
use rayon::prelude::*;

use super::store::{CachedFile, Entry, FileKind};
use crate::build::sources::copy_file;
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
        return copy_file(from, to);
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
    /// Files cloned by reflink (the rest were copied).
    pub reflinked: usize,
    /// Files whose content was rewritten to the new paths.
    pub relocated: usize,
}

/// Restore `entry` into `prefix` and `work_dir`.
pub fn restore(entry: &Entry, prefix: &Path, work_dir: &Path) -> Result<RestoreStats> {
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
    entry.meta.files.par_iter().try_for_each(|f| {
        let rel = Path::new(&f.path);
        if crate::build::sources::safe_join(prefix, rel).is_none() {
            return Err(miette!(
                "cache entry {} lists a path outside the prefix: {}",
                entry.dir.display(),
                f.path
            ));
        }
        restore_one(&cached_prefix.join(rel), &prefix.join(rel), &relocations, &stats)
    })?;

    let cached_work = entry.work_dir();
    let mut files = Vec::new();
    for e in walkdir::WalkDir::new(&cached_work).follow_links(false) {
        let e = e.into_diagnostic()?;
        let target = work_dir.join(e.path().strip_prefix(&cached_work).into_diagnostic()?);
        if e.file_type().is_dir() {
            fs_err::create_dir_all(&target).into_diagnostic()?;
        } else {
            files.push((e.path().to_path_buf(), target));
        }
    }
    files
        .par_iter()
        .try_for_each(|(from, to)| restore_one(from, to, &relocations, &stats))?;
    Ok(stats.into_stats())
}

#[derive(Default)]
struct Counters {
    entries: AtomicUsize,
    bytes: AtomicU64,
    reflinked: AtomicUsize,
    relocated: AtomicUsize,
}

impl Counters {
    fn into_stats(self) -> RestoreStats {
        RestoreStats {
            entries: self.entries.into_inner(),
            bytes: self.bytes.into_inner(),
            reflinked: self.reflinked.into_inner(),
            relocated: self.relocated.into_inner(),
        }
    }
}

fn restore_one(from: &Path, to: &Path, relocations: &[(Vec<u8>, Vec<u8>)], stats: &Counters) -> Result<()> {
    if let Some(parent) = to.parent() {
        fs_err::create_dir_all(parent).into_diagnostic()?;
    }
    if to.symlink_metadata().is_ok() {
        fs_err::remove_file(to).into_diagnostic()?;
    }
    let meta = fs_err::symlink_metadata(from).into_diagnostic()?;
    stats.entries.fetch_add(1, Ordering::Relaxed);
    if meta.file_type().is_symlink() {
        let target = fs_err::read_link(from).into_diagnostic()?;
        let target = relocate_link(&target, relocations);
        std::os::unix::fs::symlink(&target, to).into_diagnostic()?;
        return Ok(());
    }
    if reflink_copy::reflink_or_copy(from, to).into_diagnostic()?.is_none() {
        stats.reflinked.fetch_add(1, Ordering::Relaxed);
    }
    stats.bytes.fetch_add(meta.len(), Ordering::Relaxed);
    if !relocations.is_empty() && relocate_content(to, relocations)? {
        stats.relocated.fetch_add(1, Ordering::Relaxed);
    }
    fs_err::set_permissions(to, std::fs::Permissions::from_mode(meta.permissions().mode())).into_diagnostic()?;
    filetime::set_file_mtime(to, filetime::FileTime::from_last_modification_time(&meta)).into_diagnostic()?;
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

/// Replace old paths by new ones in a file; returns whether it changed.
/// Text files get a plain replacement. In binary files a path sits in a
/// NUL-terminated string: a shorter replacement is padded with NULs at the
/// end of that string (as conda does); a longer one cannot be done safely.
fn relocate_content(path: &Path, relocations: &[(Vec<u8>, Vec<u8>)]) -> Result<bool> {
    let data = fs_err::read(path).into_diagnostic()?;
    if !relocations.iter().any(|(old, _)| memmem::find(&data, old).is_some()) {
        return Ok(false);
    }
    let is_text = crate::package::contents::looks_like_text(&data);
    let mut out = data;
    for (old, new) in relocations {
        out = if is_text {
            replace_all(&out, old, new)
        } else {
            replace_binary(&out, old, new, path)?
        };
    }
    // The file may be a reflink or hard to overwrite in place: write a new inode.
    let tmp = path.with_extension("kiln-relocate");
    fs_err::write(&tmp, &out).into_diagnostic()?;
    fs_err::rename(&tmp, path).into_diagnostic()?;
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

fn replace_binary(data: &[u8], old: &[u8], new: &[u8], path: &Path) -> Result<Vec<u8>> {
    if new.len() > old.len() {
        return Err(miette!(
            help = "keep the output directory at a path no longer than the one the cache was built in, or delete the cache entry",
            "cannot relocate {} in binary file {}: the new path is longer",
            String::from_utf8_lossy(old),
            path.display()
        ));
    }
    let mut out = data.to_vec();
    let mut search_from = 0;
    while let Some(pos) = memmem::find(&out[search_from..], old).map(|p| p + search_from) {
        let end = out[pos..].iter().position(|&b| b == 0).map_or(out.len(), |p| pos + p);
        let tail: Vec<u8> = out[pos + old.len()..end].to_vec();
        let mut replacement = new.to_vec();
        replacement.extend_from_slice(&tail);
        replacement.resize(end - pos, 0);
        out[pos..end].copy_from_slice(&replacement);
        search_from = pos + new.len();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_relocation_pads_with_nul() {
        let data = b"xx/old/prefix/lib\0yy".to_vec();
        let out = replace_binary(&data, b"/old/prefix", b"/new", Path::new("f")).unwrap();
        assert_eq!(out.len(), data.len());
        assert_eq!(&out[..], b"xx/new/lib\0\0\0\0\0\0\0\0yy");
        assert!(replace_binary(&data, b"/old", b"/much/longer", Path::new("f")).is_err());
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
