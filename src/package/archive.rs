//! Writing the archive: `.conda` or `.tar.bz2` via `rattler_package_streaming`,
//! into a temporary file in the target directory that is renamed into place
//! only when complete.

use std::path::{Path, PathBuf};

use miette::{miette, IntoDiagnostic, Result};
use rattler_conda_types::compression_level::CompressionLevel;

/// Package file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `.conda` (zip of zstd tarballs).
    #[value(name = "conda")]
    Conda,
    /// `.tar.bz2` (legacy).
    #[value(name = "tar.bz2", alias = "tar-bz2")]
    TarBz2,
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

/// Archive every file (and empty directory) below `pkg_dir` into
/// `<dest_dir>/<stem><ext>`.
pub fn write(pkg_dir: &Path, dest_dir: &Path, stem: &str, format: Format, timestamp: i64) -> Result<PathBuf> {
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
        Format::Conda => rattler_package_streaming::write::write_conda_package(
            writer,
            pkg_dir,
            &paths,
            CompressionLevel::Default,
            None,
            stem,
            Some(&ts),
            None,
        ),
        Format::TarBz2 => rattler_package_streaming::write::write_tar_bz2_package(
            writer,
            pkg_dir,
            &paths,
            CompressionLevel::Default,
            Some(&ts),
            None,
        ),
    };
    result.map_err(|e| miette!("writing {}: {e}", final_path.display()))?;
    tmp.as_file().sync_all().into_diagnostic()?;
    tmp.persist(&final_path)
        .map_err(|e| miette!("moving package into {}: {e}", final_path.display()))?;
    Ok(final_path)
}
