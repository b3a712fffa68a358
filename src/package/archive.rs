//! Writing the archive: `.conda` or `.tar.bz2`, into a temporary file in
//! the target directory that is renamed into place only when complete.
//!
//! `.tar.bz2` goes through `rattler_package_streaming`. `.conda` is
//! streamed here: each file is read once, straight through the tar builder
//! into a multi-threaded zstd encoder inside the outer zip, with no
//! temporary tarball (rattler_package_streaming writes one per inner
//! archive). The bytes are the same as that crate's, whose headers,
//! ordering and zstd settings (content size pledged up front, so the tar
//! size is computed first from the headers and file sizes) this follows.

use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

use miette::{miette, IntoDiagnostic, Result};
use rattler_conda_types::compression_level::CompressionLevel;

/// Package file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.conda` (zip of zstd tarballs).
    Conda,
    /// `.tar.bz2` (legacy).
    TarBz2,
}

/// `--package-format`: a format and its compression level, as
/// rattler-build writes it (`conda`, `conda:19`, `tar.bz2:max`; zstd
/// levels -7 to 22, default 15; bzip2 1 to 9, default 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackageFormat {
    /// The archive format.
    pub format: Format,
    /// Its compression level.
    pub level: CompressionLevel,
}

impl Default for PackageFormat {
    /// `.conda` at the default level.
    fn default() -> Self {
        PackageFormat {
            format: Format::Conda,
            level: CompressionLevel::Default,
        }
    }
}

impl std::str::FromStr for PackageFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (name, level) = s.split_once(':').map_or((s, None), |(n, l)| (n, Some(l)));
        let format = match name {
            "conda" => Format::Conda,
            "tar.bz2" | "tar-bz2" => Format::TarBz2,
            _ => {
                return Err(format!(
                    "unknown package format `{name}` (expected `conda` or `tar.bz2`)"
                ))
            }
        };
        let level = match level {
            None | Some("default") => CompressionLevel::Default,
            Some("min") => CompressionLevel::Lowest,
            Some("max") => CompressionLevel::Highest,
            Some(n) => CompressionLevel::Numeric(
                n.parse()
                    .map_err(|_| format!("compression level `{n}` is not a number, `min`, `max` or `default`"))?,
            ),
        };
        let valid = match format {
            Format::Conda => level.to_zstd_level().map(|_| ()),
            Format::TarBz2 => level.to_bzip2_level().map(|_| ()),
        };
        valid.map_err(|e| e.to_string())?;
        Ok(PackageFormat { format, level })
    }
}

impl Format {
    /// File extension including the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Conda => ".conda",
            Format::TarBz2 => ".tar.bz2",
        }
    }
}

/// How packages are compressed.
#[derive(Debug, Clone, Copy)]
pub struct Compression {
    /// Format and level.
    pub format: PackageFormat,
    /// zstd worker threads (`--compression-threads`, default all cores).
    pub threads: u32,
}

/// Archive every file (and empty directory) below `pkg_dir` into
/// `<dest_dir>/<stem><ext>`.
pub fn write(pkg_dir: &Path, dest_dir: &Path, stem: &str, compression: Compression, timestamp: i64) -> Result<PathBuf> {
    let format = compression.format.format;
    let level = compression.format.level;
    let mut paths = Vec::new();
    for e in walkdir::WalkDir::new(pkg_dir).min_depth(1).follow_links(false) {
        let e = e.into_diagnostic()?;
        if e.file_type().is_dir() && fs_err::read_dir(e.path()).into_diagnostic()?.next().is_some() {
            continue;
        }
        // rattler_package_streaming wants absolute paths below `pkg_dir`.
        paths.push(e.path().to_path_buf());
    }
    paths.sort();
    fs_err::create_dir_all(dest_dir).into_diagnostic()?;
    let final_path = dest_dir.join(format!("{stem}{}", format.extension()));
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{stem}"))
        .suffix(".partial")
        .tempfile_in(dest_dir)
        .into_diagnostic()?;
    let ts = jiff::Timestamp::from_second(timestamp).map_err(|e| miette!("invalid timestamp {timestamp}: {e}"))?;
    let file = tmp.as_file().try_clone().into_diagnostic()?;
    let writer = std::io::BufWriter::new(file);
    let result = match format {
        Format::Conda => write_conda(writer, pkg_dir, &paths, stem, &ts, level, compression.threads),
        Format::TarBz2 => {
            rattler_package_streaming::write::write_tar_bz2_package(writer, pkg_dir, &paths, level, Some(&ts), None)
        }
    };
    result.map_err(|e| miette!("writing {}: {e}", final_path.display()))?;
    // A channel is read by others (a web server, other users): not the
    // temporary file's owner-only mode.
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .into_diagnostic()?;
    }
    tmp.as_file().sync_all().into_diagnostic()?;
    tmp.persist(&final_path)
        .map_err(|e| miette!("moving package into {}: {e}", final_path.display()))?;
    Ok(final_path)
}

/// The default number of zstd worker threads: all cores (as
/// rattler_package_streaming and rattler-build).
pub fn all_cores() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// Write a `.conda` package of `paths` (absolute, below `base`): the outer
/// stored zip with `metadata.json`, `pkg-<stem>.tar.zst` and
/// `info-<stem>.tar.zst`.
pub fn write_conda<W: Write + Seek>(
    writer: W,
    base: &Path,
    paths: &[PathBuf],
    stem: &str,
    timestamp: &jiff::Timestamp,
    level: CompressionLevel,
    threads: u32,
) -> std::io::Result<()> {
    let dt = timestamp.to_zoned(jiff::tz::TimeZone::UTC).datetime();
    let modified = zip::DateTime::from_date_and_time(
        dt.year() as u16,
        dt.month() as u8,
        dt.day() as u8,
        dt.hour() as u8,
        dt.minute() as u8,
        dt.second() as u8,
    )
    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("timestamp: {e}")))?;
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .last_modified_time(modified)
        .large_file(true);
    let mut zip = zip::ZipWriter::new(writer);
    zip.start_file("metadata.json", options)?;
    let metadata = serde_json::to_string(&rattler_conda_types::package::PackageMetadata::default())?;
    zip.write_all(metadata.as_bytes())?;

    let mut relative: Vec<PathBuf> = paths
        .iter()
        .map(|p| p.strip_prefix(base).map(Path::to_path_buf))
        .collect::<Result<_, _>>()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    relative.sort();
    let (info, pkg): (Vec<PathBuf>, Vec<PathBuf>) = relative.into_iter().partition(|p| p.starts_with("info/"));
    for (name, group) in [
        (format!("pkg-{stem}.tar.zst"), &pkg),
        (format!("info-{stem}.tar.zst"), &info),
    ] {
        zip.start_file(name, options)?;
        let size = tar_size(base, group, timestamp)?;
        let mut zst = zstd::Encoder::new(&mut zip, level.to_zstd_level()?)?;
        zst.multithread(threads)?;
        zst.set_pledged_src_size(Some(size))?;
        zst.include_contentsize(true)?;
        let mut tar = tar::Builder::new(zst);
        tar.follow_symlinks(false);
        for rel in group {
            append(&mut tar, base, rel, timestamp, true)?;
        }
        tar.into_inner()?.finish()?;
    }
    zip.finish()?;
    Ok(())
}

/// The tar header of `base/rel`, as rattler_package_streaming makes it
/// (GNU, deterministic mode, the build's timestamp).
fn header(path: &Path, timestamp: &jiff::Timestamp) -> std::io::Result<tar::Header> {
    let mut header = tar::Header::new_gnu();
    let name = b"././@LongLink";
    header.as_gnu_mut().expect("a GNU header").name[..name.len()].clone_from_slice(name);
    let stat = fs_err::symlink_metadata(path)?;
    header.set_metadata_in_mode(&stat, tar::HeaderMode::Deterministic);
    header.set_mtime(timestamp.as_second().unsigned_abs());
    Ok(header)
}

/// Add `base/rel` to `tar`; with `data` false, a file's header only (for
/// measuring). Returns the size of the file's data (0 for others).
fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    base: &Path,
    rel: &Path,
    timestamp: &jiff::Timestamp,
    data: bool,
) -> std::io::Result<u64> {
    let path = base.join(rel);
    let mut h = header(&path, timestamp)?;
    let kind = h.entry_type();
    if kind.is_file() {
        let size = h.size()?;
        if data {
            tar.append_data(&mut h, rel, fs_err::File::open(&path)?)?;
        } else {
            tar.append_data(&mut h, rel, std::io::empty())?;
        }
        Ok(size)
    } else if kind.is_symlink() || kind.is_hard_link() {
        tar.append_link(&mut h, rel, fs_err::read_link(&path)?).map(|()| 0)
    } else if kind.is_dir() {
        tar.append_data(&mut h, rel, std::io::empty()).map(|()| 0)
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{}: unsupported file type", path.display()),
        ))
    }
}

/// The exact size of the tar stream of `group`: every header block (long
/// names included), each file's data rounded up to 512 bytes, and the two
/// closing blocks. Nothing but metadata is read.
fn tar_size(base: &Path, group: &[PathBuf], timestamp: &jiff::Timestamp) -> std::io::Result<u64> {
    let mut headers = tar::Builder::new(Counter(0));
    let mut data = 0u64;
    for rel in group {
        data += append(&mut headers, base, rel, timestamp, false)?.div_ceil(512) * 512;
    }
    Ok(headers.into_inner()?.0 + data)
}

/// A writer that only counts bytes.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A package directory with long names, a symlink, an empty
    /// directory, an empty file and files of awkward sizes.
    fn sample() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let long = "a-rather-long-directory-name-that-needs-more-than-one-hundred-bytes/".repeat(2);
        for (rel, size) in [
            ("info/index.json", 10usize),
            ("info/paths.json", 513),
            ("lib/libx.so", 100_000),
            ("share/empty.txt", 0),
            (&format!("share/{long}file.txt")[..], 512),
        ] {
            let p = d.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, (0..size).map(|i| (i * 7 % 251) as u8).collect::<Vec<_>>()).unwrap();
        }
        std::os::unix::fs::symlink("libx.so", d.path().join("lib/libx.so.1")).unwrap();
        std::fs::create_dir_all(d.path().join("share/keep")).unwrap();
        d
    }

    fn paths(d: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = walkdir::WalkDir::new(d)
            .min_depth(1)
            .into_iter()
            .map(|e| e.unwrap())
            .filter(|e| !e.file_type().is_dir() || std::fs::read_dir(e.path()).unwrap().next().is_none())
            .map(|e| e.path().to_path_buf())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn package_formats_with_levels() {
        let f = |s: &str| s.parse::<PackageFormat>();
        assert_eq!(f("conda").unwrap().level, CompressionLevel::Default);
        assert_eq!(f("conda:19").unwrap().level, CompressionLevel::Numeric(19));
        assert_eq!(f("tar-bz2:max").unwrap().format, Format::TarBz2);
        assert!(f("conda:23").unwrap_err().contains("between -7 and 22"));
        assert!(f("tar.bz2:0").unwrap_err().contains("between 1 and 9"));
        assert!(f("zip").is_err() && f("conda:fast").is_err());
    }

    #[test]
    fn streamed_conda_packages_are_byte_identical_to_rattlers() {
        let d = sample();
        let ts = jiff::Timestamp::from_second(1_700_000_000).unwrap();
        let paths = paths(d.path());
        let mut theirs = std::io::Cursor::new(Vec::new());
        rattler_package_streaming::write::write_conda_package(
            &mut theirs,
            d.path(),
            &paths,
            CompressionLevel::Default,
            Some(2),
            "x-1.0-0",
            Some(&ts),
            None,
        )
        .unwrap();
        // The temporary tarballs rattler writes into the directory are gone again.
        assert_eq!(paths, super::tests::paths(d.path()));
        for threads in [1, 2] {
            let mut ours = std::io::Cursor::new(Vec::new());
            write_conda(
                &mut ours,
                d.path(),
                &paths,
                "x-1.0-0",
                &ts,
                CompressionLevel::Default,
                threads,
            )
            .unwrap();
            assert!(
                ours.get_ref() == theirs.get_ref(),
                "{threads} thread(s): the bytes differ"
            );
        }
    }
}
