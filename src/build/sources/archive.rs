//! Extracting source archives: `.tar`, `.tar.gz`/`.tgz`, `.tar.bz2`/`.tbz2`,
//! `.tar.xz`/`.txz`, `.tar.zst`/`.tzst`, `.zip` (and `.whl`, which is a
//! zip), `.7z`, and `.conda` packages (both inner tarballs). Every entry
//! must stay inside the extraction directory: absolute paths, `..`
//! components, and symlinks or hard links whose target leaves it are
//! refused with an error naming the archive and the entry. Extraction goes
//! into a fresh directory next to the destination, so a refused archive
//! leaves nothing behind; then a single top-level folder is stripped (as
//! rattler-build does) and the result is moved into place.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use miette::{miette, IntoDiagnostic, Result};

/// An archive format kiln extracts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An uncompressed tarball.
    Tar,
    /// gzip-compressed.
    TarGz,
    /// bzip2-compressed.
    TarBz2,
    /// xz-compressed.
    TarXz,
    /// zstd-compressed.
    TarZst,
    /// A zip file (also wheels).
    Zip,
    /// A 7-Zip archive.
    SevenZ,
    /// A `.conda` package: a zip of zstd-compressed tarballs.
    Conda,
}

/// The archive kind of a file name, if it is one kiln extracts.
pub fn kind_of(name: &str) -> Option<Kind> {
    let n = name.to_ascii_lowercase();
    let ends = |exts: &[&str]| exts.iter().any(|e| n.ends_with(e));
    if ends(&[".tar.gz", ".tgz"]) {
        Some(Kind::TarGz)
    } else if ends(&[".tar.bz2", ".tbz2", ".tbz"]) {
        Some(Kind::TarBz2)
    } else if ends(&[".tar.xz", ".txz"]) {
        Some(Kind::TarXz)
    } else if ends(&[".tar.zst", ".tzst"]) {
        Some(Kind::TarZst)
    } else if ends(&[".tar"]) {
        Some(Kind::Tar)
    } else if ends(&[".zip", ".whl"]) {
        Some(Kind::Zip)
    } else if ends(&[".7z"]) {
        Some(Kind::SevenZ)
    } else if ends(&[".conda"]) {
        Some(Kind::Conda)
    } else {
        None
    }
}

/// Extract `archive` into `dest` (created if missing), stripping a single
/// top-level folder and keeping only the files (paths relative to the
/// stripped root) that `keep` accepts. Nothing is written outside `dest`.
pub fn extract(archive: &Path, kind: Kind, dest: &Path, keep: &mut dyn FnMut(&Path) -> bool) -> Result<()> {
    fs_err::create_dir_all(dest).into_diagnostic()?;
    let scratch = tempfile::Builder::new()
        .prefix(".kiln-extract-")
        .tempdir_in(dest)
        .into_diagnostic()?;
    let file = fs_err::File::open(archive).into_diagnostic()?;
    let reader = std::io::BufReader::new(file);
    match kind {
        Kind::Tar => untar(archive, reader, scratch.path())?,
        Kind::TarGz => untar(archive, flate2::read::MultiGzDecoder::new(reader), scratch.path())?,
        Kind::TarBz2 => untar(archive, bzip2::read::MultiBzDecoder::new(reader), scratch.path())?,
        Kind::TarZst => untar(
            archive,
            zstd::stream::read::Decoder::new(reader).into_diagnostic()?,
            scratch.path(),
        )?,
        Kind::TarXz => untar(archive, lzma_rust2::XzReader::new(reader, true), scratch.path())?,
        Kind::Zip => unzip(archive, scratch.path(), &mut |_, _| Ok(false))?,
        Kind::SevenZ => un7z(archive, scratch.path())?,
        Kind::Conda => unzip(archive, scratch.path(), &mut |name, entry| {
            // The inner `info-*.tar.zst` and `pkg-*.tar.zst` are unpacked in place.
            if !name.ends_with(".tar.zst") {
                return Ok(false);
            }
            let decoder = zstd::stream::read::Decoder::new(entry).into_diagnostic()?;
            untar(archive, decoder, scratch.path())?;
            Ok(true)
        })?,
    }
    let top: Vec<PathBuf> = fs_err::read_dir(scratch.path())
        .into_diagnostic()?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .into_diagnostic()?;
    let root = match top.as_slice() {
        [only] if only.symlink_metadata().is_ok_and(|m| m.is_dir()) => only.clone(),
        _ => scratch.path().to_path_buf(),
    };
    // One walk below the root that will land in `dest`: links are checked
    // against what is really there (stripping a folder makes every link
    // shallower), and what `keep` rejects is dropped. Nothing moves into
    // `dest` before the whole tree passed.
    let mut dropped = Vec::new();
    for e in walkdir::WalkDir::new(&root).follow_links(false) {
        let e = e.into_diagnostic()?;
        if e.file_type().is_dir() {
            continue;
        }
        let rel = e.path().strip_prefix(&root).into_diagnostic()?;
        if e.file_type().is_symlink() {
            check_link(archive, &root, rel)?;
        }
        if !keep(rel) {
            dropped.push(e.into_path());
        }
    }
    for path in dropped {
        fs_err::remove_file(path).into_diagnostic()?;
    }
    move_children(&root, dest)
}

/// The symlink `rel`, followed through the real tree, must stay below `root`.
fn check_link(archive: &Path, root: &Path, rel: &Path) -> Result<()> {
    let target = fs_err::read_link(root.join(rel)).into_diagnostic()?;
    let dir = rel.parent().unwrap_or(Path::new(""));
    if target.is_absolute() || crate::disk::resolve_within(root, &dir.join(&target)).is_none() {
        return Err(refuse(
            archive,
            rel,
            &format!("links to {}, outside the extraction directory", target.display()),
        ));
    }
    Ok(())
}

/// Move everything in `from` into `to`, merging directories.
pub(super) fn move_children(from: &Path, to: &Path) -> Result<()> {
    for entry in fs_err::read_dir(from).into_diagnostic()? {
        let entry = entry.into_diagnostic()?;
        let target = to.join(entry.file_name());
        let is_dir = entry.file_type().into_diagnostic()?.is_dir();
        match target.symlink_metadata() {
            Ok(m) if m.is_dir() && is_dir => move_children(&entry.path(), &target)?,
            Ok(m) => {
                if m.is_dir() {
                    fs_err::remove_dir_all(&target).into_diagnostic()?;
                } else {
                    fs_err::remove_file(&target).into_diagnostic()?;
                }
                fs_err::rename(entry.path(), &target).into_diagnostic()?;
            }
            Err(_) => fs_err::rename(entry.path(), &target).into_diagnostic()?,
        }
    }
    Ok(())
}

/// `rel` as a path inside the extraction root, or `None` when it is
/// absolute or climbs out with `..`.
fn inside(rel: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

fn refuse(archive: &Path, entry: &Path, why: &str) -> miette::Report {
    miette!(
        "refusing to extract {} (damaged or hostile; nothing of it was kept): entry `{}` {why}",
        archive.display(),
        entry.display()
    )
}

fn untar(archive: &Path, reader: impl Read, root: &Path) -> Result<()> {
    let mut tar = tar::Archive::new(reader);
    // Modes without setuid/setgid/sticky, and not writable by others.
    tar.set_preserve_permissions(false);
    tar.set_mask(0o022);
    tar.set_preserve_mtime(true);
    tar.set_overwrite(true);
    for entry in tar
        .entries()
        .map_err(|e| miette!("cannot read {}: {e}", archive.display()))?
    {
        let mut entry = entry.map_err(|e| miette!("cannot read {}: {e}", archive.display()))?;
        let path = entry.path().into_diagnostic()?.into_owned();
        let Some(rel) = inside(&path) else {
            return Err(refuse(archive, &path, "leaves the extraction directory"));
        };
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            // Created writable (a read-only folder mode would block its own
            // files, and the cleanup of a refused archive).
            crate::disk::create_dirs_inside(root, &rel).map_err(|e| refuse(archive, &path, &e.to_string()))?;
            continue;
        }
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name()
                .into_diagnostic()?
                .ok_or_else(|| refuse(archive, &path, "is a link without a target"))?
                .into_owned();
            // Symlink targets are relative to the link's directory; hard
            // link targets to the archive root.
            let base = if kind.is_symlink() {
                rel.parent().unwrap_or(Path::new("")).to_path_buf()
            } else {
                PathBuf::new()
            };
            if target.is_absolute() || inside(&base.join(&target)).is_none() {
                return Err(refuse(
                    archive,
                    &path,
                    &format!("links to {}, outside the extraction directory", target.display()),
                ));
            }
        }
        // `unpack_in` also refuses to write through a symlinked directory
        // that would lead outside `root`.
        let written = entry
            .unpack_in(root)
            .map_err(|e| miette!("extracting `{}` from {}: {e}", path.display(), archive.display()))?;
        if !written {
            return Err(refuse(archive, &path, "leaves the extraction directory"));
        }
    }
    Ok(())
}

/// Called with each zip entry's name before it is written; `Ok(true)` means
/// the hook consumed the entry.
type ZipHook<'a> = dyn FnMut(&str, &mut dyn Read) -> Result<bool> + 'a;

fn unzip(archive: &Path, root: &Path, hook: &mut ZipHook) -> Result<()> {
    let file = fs_err::File::open(archive).into_diagnostic()?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| miette!("cannot read {}: {e}", archive.display()))?;
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| miette!("cannot read {}: {e}", archive.display()))?;
        let name = PathBuf::from(
            entry
                .name()
                .map_err(|e| miette!("cannot read an entry name in {}: {e}", archive.display()))?
                .into_owned(),
        );
        let Some(rel) = entry.enclosed_name().and_then(|p| inside(&p)) else {
            return Err(refuse(archive, &name, "leaves the extraction directory"));
        };
        let bad = |e: &dyn std::fmt::Display| refuse(archive, &name, &format!("cannot be extracted: {e}"));
        if hook(&rel.to_string_lossy(), &mut entry)? {
            continue;
        }
        if entry.is_dir() {
            crate::disk::create_dirs_inside(root, &rel).map_err(|e| bad(&e))?;
            continue;
        }
        if rel.as_os_str().is_empty() {
            return Err(refuse(archive, &name, "names the extraction directory itself"));
        }
        crate::disk::create_dirs_inside(root, rel.parent().unwrap_or(Path::new(""))).map_err(|e| bad(&e))?;
        let target = root.join(&rel);
        let mode = entry.unix_mode();
        if mode.is_some_and(|m| m & 0o170000 == 0o120000) {
            // A link's target is its content; checked again with all links below.
            let mut link = String::new();
            (&mut entry).take(4096).read_to_string(&mut link).map_err(|e| bad(&e))?;
            make_link(archive, &name, &rel, &link, &target)?;
            continue;
        }
        let mut out = fresh_file(&target).map_err(|e| bad(&e))?;
        std::io::copy(&mut entry, &mut out).map_err(|e| bad(&e))?;
        if let Some(m) = mode {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(m & 0o755)).map_err(|e| bad(&e))?;
        }
    }
    Ok(())
}

/// Create `target` as a new file: whatever an earlier entry put there (a
/// symlink above all) is removed first, and the open never follows a link.
fn fresh_file(target: &Path) -> std::io::Result<std::fs::File> {
    if let Ok(m) = target.symlink_metadata() {
        if m.is_dir() {
            return Err(std::io::Error::other("a folder of the same name exists"));
        }
        std::fs::remove_file(target)?;
    }
    std::fs::OpenOptions::new().write(true).create_new(true).open(target)
}

/// Create the symlink entry `rel` (at `target`) pointing to `link`, if the
/// link stays inside the extraction directory by its text.
fn make_link(archive: &Path, name: &Path, rel: &Path, link: &str, target: &Path) -> Result<()> {
    let to = Path::new(link);
    if to.is_absolute() || inside(&rel.parent().unwrap_or(Path::new("")).join(to)).is_none() {
        return Err(refuse(
            archive,
            name,
            &format!("links to {link}, outside the extraction directory"),
        ));
    }
    if let Ok(m) = target.symlink_metadata() {
        if m.is_dir() {
            return Err(refuse(
                archive,
                name,
                "is a link where a folder of the same name exists",
            ));
        }
        fs_err::remove_file(target).into_diagnostic()?;
    }
    std::os::unix::fs::symlink(to, target).map_err(|e| refuse(archive, name, &format!("cannot be extracted: {e}")))
}

fn un7z(archive: &Path, root: &Path) -> Result<()> {
    let mut reader = sevenz_rust2::ArchiveReader::open(archive, sevenz_rust2::Password::empty())
        .map_err(|e| miette!("cannot read {}: {e}", archive.display()))?;
    let mut failure: Option<miette::Report> = None;
    let result = reader.for_each_entries(|entry, data| {
        if failure.is_some() {
            return Ok(false);
        }
        let name = PathBuf::from(&entry.name);
        let outcome = (|| -> Result<()> {
            let Some(rel) = inside(&name) else {
                return Err(refuse(archive, &name, "leaves the extraction directory"));
            };
            let bad = |e: &dyn std::fmt::Display| refuse(archive, &name, &format!("cannot be extracted: {e}"));
            if entry.is_directory {
                crate::disk::create_dirs_inside(root, &rel).map_err(|e| bad(&e))?;
                return Ok(());
            }
            if rel.as_os_str().is_empty() {
                return Err(refuse(archive, &name, "names the extraction directory itself"));
            }
            crate::disk::create_dirs_inside(root, rel.parent().unwrap_or(Path::new(""))).map_err(|e| bad(&e))?;
            let target = root.join(&rel);
            // p7zip keeps the Unix mode in the high 16 bits (flag 0x8000).
            let mode = (entry.has_windows_attributes && entry.windows_attributes & 0x8000 != 0)
                .then_some(entry.windows_attributes >> 16);
            if mode.is_some_and(|m| m & 0o170000 == 0o120000) {
                let mut link = String::new();
                data.take(4096).read_to_string(&mut link).map_err(|e| bad(&e))?;
                return make_link(archive, &name, &rel, &link, &target);
            }
            let mut out = fresh_file(&target).map_err(|e| bad(&e))?;
            std::io::copy(data, &mut out).map_err(|e| bad(&e))?;
            if let Some(m) = mode {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(m & 0o755)).map_err(|e| bad(&e))?;
            }
            Ok(())
        })();
        match outcome {
            Ok(()) => Ok(true),
            Err(e) => {
                failure = Some(e);
                Ok(false)
            }
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    result.map_err(|e| miette!("cannot read {}: {e}", archive.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_kinds_and_paths() {
        assert_eq!(kind_of("x-1.0.tar.gz"), Some(Kind::TarGz));
        assert_eq!(kind_of("x.TGZ"), Some(Kind::TarGz));
        assert_eq!(kind_of("x.tar.zst"), Some(Kind::TarZst));
        assert_eq!(kind_of("x-1.0-py3-none-any.whl"), Some(Kind::Zip));
        assert_eq!(kind_of("x.txt"), None);
        assert_eq!(kind_of("x-1.0.tar.xz"), Some(Kind::TarXz));
        assert_eq!(kind_of("x.7z"), Some(Kind::SevenZ));
        assert_eq!(kind_of("zlib-1.3-h0_0.conda"), Some(Kind::Conda));
        assert_eq!(inside(Path::new("a/../b")), Some(PathBuf::from("b")));
        assert_eq!(inside(Path::new("../b")), None);
        assert_eq!(inside(Path::new("/etc/passwd")), None);
    }
}
