//! `kiln package inspect FILE` and `kiln package extract FILE DIR`: reading
//! `.conda` and `.tar.bz2` packages written by any tool (rattler's package
//! streaming does the reading; archive entries never leave `DIR`).

use std::path::{Path, PathBuf};

use miette::{miette, IntoDiagnostic, Result};
use rattler_conda_types::package::{AboutJson, IndexJson, PathsJson};
use rattler_package_streaming::seek::read_package_file;
use serde_json::json;

use crate::cli::PackageCommand;

/// Run `kiln package …`.
pub fn run(cmd: PackageCommand) -> Result<()> {
    match cmd {
        PackageCommand::Inspect { file, json } => inspect(&file, json),
        PackageCommand::Extract { file, dir } => extract(&file, &dir),
    }
}

/// `file`, checked to exist and to be named like a conda package.
pub(crate) fn package_file(file: &Path) -> Result<PathBuf> {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !(name.ends_with(".conda") || name.ends_with(".tar.bz2")) {
        return Err(miette!(
            help = "pass the path of a `.conda` or `.tar.bz2` file",
            "{} is not a conda package (`.conda` or `.tar.bz2`)",
            file.display()
        ));
    }
    if !file.is_file() {
        return Err(miette!(
            help = "pass the path of a `.conda` or `.tar.bz2` file",
            "cannot read {}: no such file",
            file.display()
        ));
    }
    Ok(file.to_path_buf())
}

/// The `info/index.json` of the package `file`.
pub(crate) fn index_json(file: &Path) -> Result<IndexJson> {
    let file = package_file(file)?;
    read_package_file(&file).map_err(|e| miette!("{}: cannot read info/index.json: {e}", file.display()))
}

fn inspect(file: &Path, as_json: bool) -> Result<()> {
    let file = package_file(file)?;
    let index = index_json(&file)?;
    // Older packages may lack these.
    let about: Option<AboutJson> = read_package_file(&file).ok();
    let paths: Option<PathsJson> = read_package_file(&file).ok();
    let size = fs_err::metadata(&file).into_diagnostic()?.len();
    let sha256 = crate::disk::file_sha256(&file)?;
    if as_json {
        let value = json!({
            "file": file,
            "size": size,
            "sha256": sha256,
            "index": index,
            "about": about,
            "paths": paths.as_ref().map(|p| &p.paths),
        });
        println!("{}", serde_json::to_string_pretty(&value).into_diagnostic()?);
        return Ok(());
    }
    println!("{}-{}-{}", index.name.as_normalized(), index.version, index.build);
    println!("  file:        {} ({size} bytes)", file.display());
    println!("  sha256:      {sha256}");
    println!("  subdir:      {}", index.subdir.as_deref().unwrap_or("-"));
    println!("  build:       number {}, string {}", index.build_number, index.build);
    if let Some(noarch) = index.noarch.kind() {
        println!("  noarch:      {noarch:?}");
    }
    println!("  license:     {}", index.license.as_deref().unwrap_or("-"));
    if let Some(summary) = about.as_ref().and_then(|a| a.summary.as_deref()) {
        println!("  summary:     {summary}");
    }
    for (title, list) in [("depends", &index.depends), ("constrains", &index.constrains)] {
        println!("  {title}:{}", if list.is_empty() { " -" } else { "" });
        for d in list {
            println!("    {d}");
        }
    }
    match &paths {
        Some(p) => {
            println!("  files ({}):", p.paths.len());
            for e in &p.paths {
                let placeholder = if e.prefix_placeholder.is_some() {
                    "  [prefix]"
                } else {
                    ""
                };
                println!(
                    "    {}  {:?}  {} bytes{placeholder}",
                    e.relative_path.display(),
                    e.path_type,
                    e.size_in_bytes.unwrap_or(0)
                );
            }
        }
        None => println!("  files: no info/paths.json"),
    }
    Ok(())
}

fn extract(file: &Path, dir: &Path) -> Result<()> {
    let file = package_file(file)?;
    if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(miette!(
            help = "choose a new or empty directory",
            "{} is not empty; kiln does not extract over existing files",
            dir.display()
        ));
    }
    fs_err::create_dir_all(dir).into_diagnostic()?;
    rattler_package_streaming::fs::extract(&file, dir)
        .map_err(|e| miette!("{}: cannot extract: {e}", file.display()))?;
    let files = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_type().is_dir())
        .count();
    println!("extracted {} ({files} files) into {}", file.display(), dir.display());
    Ok(())
}
