//! The output directory as a channel: each subdir (and `noarch`, always)
//! gets a `repodata.json` that lists the packages in it.
//!
//! Indexing is incremental: the existing `repodata.json` is read and kept
//! for every package file that is still there with the same size, inode,
//! modification and change time as when the last index read it (recorded
//! in `<output>/bld/.index/`); only new or changed files are read, and of
//! those only `info/index.json` (streamed out of the archive) and one pass
//! for the SHA-256 and MD5. Packages kiln has just written are named, so a
//! rebuild under the same file name is read again in any case. The records are rattler's
//! `PackageRecord`s, serialized as `rattler_index` writes them; the file is
//! replaced atomically, under a lock per subdir, so concurrent builds into
//! one output directory never lose each other's packages.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use miette::{miette, IntoDiagnostic, Result};
use rattler_conda_types::package::{CondaArchiveType, DistArchiveIdentifier, DistArchiveType, IndexJson};
use rattler_conda_types::{ChannelInfo, PackageRecord, RepoData, Subdir};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// The repodata format version written (as `rattler_index`).
const REPODATA_VERSION: u64 = 2;

/// Bring `subdirs` of `output_dir` (plus `noarch`) up to date with the
/// package files in them.
pub fn index(output_dir: &Path, subdirs: &[Subdir]) -> Result<()> {
    let mut all: Vec<Subdir> = subdirs.to_vec();
    if !all.contains(&Subdir::NoArch) {
        all.push(Subdir::NoArch);
    }
    for subdir in all {
        update(output_dir, BUILD_STATE, subdir.as_str(), &BTreeSet::new())?;
    }
    Ok(())
}

/// Add packages kiln just wrote into `output_dir/<subdir>/` to their
/// subdirs' `repodata.json` (read again even if an entry by that name
/// exists), making sure `noarch` is indexed too; returns each package's
/// SHA-256 (hex), as indexed.
pub fn add(output_dir: &Path, packages: &[PathBuf]) -> Result<BTreeMap<PathBuf, String>> {
    add_in(output_dir, BUILD_STATE, packages)
}

/// Add packages copied into a channel kiln publishes to (not an output
/// directory): as [`add`], with the index state in `<channel>/.kiln/`.
pub fn add_to_channel(channel: &Path, packages: &[PathBuf]) -> Result<()> {
    add_in(channel, CHANNEL_STATE, packages).map(drop)
}

/// Where the index state and locks are kept, below the channel: `bld/` in
/// an output directory, `.kiln/` in a channel kiln publishes to.
const BUILD_STATE: &str = "bld";
const CHANNEL_STATE: &str = ".kiln";

fn add_in(output_dir: &Path, state: &str, packages: &[PathBuf]) -> Result<BTreeMap<PathBuf, String>> {
    let mut by_subdir: BTreeMap<String, BTreeSet<String>> = Default::default();
    for p in packages {
        let subdir = p
            .parent()
            .and_then(Path::file_name)
            .map(|s| s.to_string_lossy().into_owned())
            .ok_or_else(|| miette!("{} is not in a subdir of the channel", p.display()))?;
        let name = p.file_name().unwrap_or_default().to_string_lossy().into_owned();
        by_subdir.entry(subdir).or_default().insert(name);
    }
    by_subdir.entry("noarch".to_string()).or_default();
    let mut digests = BTreeMap::new();
    for (subdir, fresh) in by_subdir {
        for (name, sha256) in update(output_dir, state, &subdir, &fresh)? {
            digests.insert(output_dir.join(&subdir).join(name), sha256);
        }
    }
    Ok(digests)
}

/// What identifies a file's content without reading it: a file replaced
/// or rewritten gets a new inode or change time (which `cp -p` cannot set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Fingerprint {
    len: u64,
    ino: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Fingerprint {
    fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Fingerprint {
            len: meta.len(),
            ino: meta.ino(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// What the last index saw: `repodata.json` as it wrote it, and each
/// package file it described. Kept in `<output>/bld/.index/<subdir>.json`;
/// when missing, or when `repodata.json` was changed by someone else, every
/// package is read again.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    repodata: Option<Fingerprint>,
    files: BTreeMap<String, Fingerprint>,
}

/// Re-index one subdir: keep what is still valid of its `repodata.json`,
/// read the rest (and every file named in `fresh`), write it back; returns
/// the SHA-256 (hex) of each file named in `fresh`.
fn update(
    output_dir: &Path,
    state_root: &str,
    subdir: &str,
    fresh: &BTreeSet<String>,
) -> Result<BTreeMap<String, String>> {
    let dir = output_dir.join(subdir);
    fs_err::create_dir_all(&dir).into_diagnostic()?;
    let _lock = crate::lock::Lock::acquire(
        &output_dir
            .join(state_root)
            .join(".locks")
            .join(format!("index-{subdir}.lock")),
        crate::lock::Mode::Exclusive,
        &format!("the index of {}", dir.display()),
    )
    .into_diagnostic()?;
    let repodata_path = dir.join("repodata.json");
    let state_path = output_dir
        .join(state_root)
        .join(".index")
        .join(format!("{subdir}.json"));
    let mut repodata = read_existing(&repodata_path);
    let mut state: State = std::fs::read(&state_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let current = std::fs::metadata(&repodata_path).ok().map(|m| Fingerprint::of(&m));
    if repodata.is_none() || state.repodata.is_none() || state.repodata != current {
        state.files.clear();
    }
    let mut repodata = repodata.take().unwrap_or_else(empty_repodata);

    let mut on_disk: Vec<(DistArchiveIdentifier, Fingerprint)> = Vec::new();
    for entry in fs_err::read_dir(&dir).into_diagnostic()? {
        let entry = entry.into_diagnostic()?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // Conda packages only: wheels in a channel directory are not indexed here.
        let Some(id) = DistArchiveIdentifier::try_from_filename(&name).filter(|id| conda_type(id).is_some()) else {
            continue;
        };
        let meta = entry.metadata().into_diagnostic()?;
        if meta.is_file() {
            on_disk.push((id, Fingerprint::of(&meta)));
        }
    }
    let mut kept = 0;
    let mut to_read: Vec<(DistArchiveIdentifier, PathBuf, Fingerprint)> = Vec::new();
    let mut seen = BTreeMap::new();
    for (id, fp) in &on_disk {
        let name = id.to_file_name();
        let known = repodata.conda_packages.contains_key(id) || repodata.packages.contains_key(id);
        if known && state.files.get(&name) == Some(fp) && !fresh.contains(&name) {
            kept += 1;
            seen.insert(name, *fp);
        } else {
            to_read.push((id.clone(), dir.join(&name), *fp));
        }
    }
    // Entries of files that are gone, and of files about to be read again.
    let present: std::collections::HashSet<&DistArchiveIdentifier> = on_disk.iter().map(|(id, _)| id).collect();
    let dropped = (repodata.packages.keys().chain(repodata.conda_packages.keys()))
        .filter(|id| !present.contains(id))
        .count();
    let keep = |id: &DistArchiveIdentifier| seen.contains_key(&id.to_file_name());
    repodata.packages.retain(|id, _| keep(id));
    repodata.conda_packages.retain(|id, _| keep(id));
    repodata.removed.retain(|id| present.contains(id));
    // A file that is not a readable package stays out of the index (as
    // conda-index does), with a warning; a package kiln has just written
    // must be readable.
    let results: Vec<_> = to_read
        .par_iter()
        .map(|(id, path, fp)| (id, path, fp, read_record(path, fp.len)))
        .collect();
    let now = jiff::Timestamp::now().into();
    let mut unreadable = None;
    let mut digests = BTreeMap::new();
    for (id, path, fp, result) in results {
        match result {
            Ok(mut record) => {
                record.indexed_timestamp = Some(now);
                if let Some(sha256) = record.sha256.filter(|_| fresh.contains(&id.to_file_name())) {
                    digests.insert(id.to_file_name(), hex::encode(sha256));
                }
                let map = match conda_type(id) {
                    Some(CondaArchiveType::TarBz2) => &mut repodata.packages,
                    _ => &mut repodata.conda_packages,
                };
                map.insert(id.clone(), record);
                seen.insert(id.to_file_name(), *fp);
            }
            Err(e) if fresh.contains(&id.to_file_name()) => {
                unreadable
                    .get_or_insert(e.wrap_err(format!("kiln cannot read the package it wrote: {}", path.display())));
            }
            Err(e) => tracing::warn!("{e:?}"),
        }
    }
    repodata.info = Some(ChannelInfo {
        subdir: Some(subdir.to_string()),
        ..repodata.info.unwrap_or_else(empty_info)
    });
    repodata.version = Some(REPODATA_VERSION);
    if !to_read.is_empty() || dropped > 0 || current.is_none() || state.files != seen {
        let bytes = serde_json::to_vec(&repodata).into_diagnostic()?;
        crate::disk::write_atomic(&repodata_path, &bytes)?;
        let written = fs_err::metadata(&repodata_path).into_diagnostic()?;
        let state = State {
            repodata: Some(Fingerprint::of(&written)),
            files: seen,
        };
        fs_err::create_dir_all(state_path.parent().expect("in .index")).into_diagnostic()?;
        crate::disk::write_atomic(&state_path, &serde_json::to_vec(&state).into_diagnostic()?)?;
    }
    if !to_read.is_empty() || dropped > 0 {
        tracing::info!(
            "{}: {} package(s) read, {dropped} dropped, {kept} kept as indexed",
            repodata_path.display(),
            to_read.len()
        );
    }
    unreadable.map_or(Ok(digests), Err)
}

/// The highest build number of every `(name, version)` indexed in the
/// channel at `dir` (all its subdirs), for `--build-number +N`.
pub fn highest_build_numbers(dir: &Path) -> BTreeMap<(String, String), u64> {
    let mut highest: BTreeMap<(String, String), u64> = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return highest;
    };
    for entry in entries.flatten() {
        let Some(repodata) = read_existing(&entry.path().join("repodata.json")) else {
            continue;
        };
        for r in repodata.packages.values().chain(repodata.conda_packages.values()) {
            let key = (r.name.as_normalized().to_string(), r.version.as_str().to_string());
            let n = highest.entry(key).or_default();
            *n = (*n).max(r.build_number);
        }
    }
    highest
}

/// The subdir's `repodata.json`, if there is one that can be read.
fn read_existing(path: &Path) -> Option<RepoData> {
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice::<RepoData>(&bytes) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!("{}: cannot be read ({e}); indexing every package again", path.display());
            None
        }
    }
}

fn empty_repodata() -> RepoData {
    RepoData {
        info: None,
        packages: Default::default(),
        conda_packages: Default::default(),
        v3: Default::default(),
        removed: Default::default(),
        version: Some(REPODATA_VERSION),
    }
}

/// `.conda` or `.tar.bz2`; `None` for other archives (wheels).
fn conda_type(id: &DistArchiveIdentifier) -> Option<CondaArchiveType> {
    match id.archive_type {
        DistArchiveType::Conda(t) => Some(t),
        _ => None,
    }
}

fn empty_info() -> ChannelInfo {
    ChannelInfo {
        subdir: None,
        base_url: None,
        repodata_revisions: Default::default(),
        channel_relations: Default::default(),
        virtual_package_detectors: Default::default(),
    }
}

/// The repodata record of one package file of `size` bytes: its
/// `info/index.json`, size, SHA-256 and MD5.
fn read_record(path: &Path, size: u64) -> Result<PackageRecord> {
    let not_a_package = |e: &dyn std::fmt::Display| {
        miette!(
            help = "remove the file from the channel directory, or replace it with a complete package",
            "{} is left out of the channel index: it cannot be read as a package: {e}",
            path.display()
        )
    };
    let index: IndexJson = rattler_package_streaming::seek::read_package_file(path).map_err(|e| not_a_package(&e))?;
    let (sha256, md5) = digests(path)?;
    PackageRecord::from_index_json(index, Some(size), Some(sha256), Some(md5)).map_err(|e| not_a_package(&e))
}

/// SHA-256 and MD5 of a file, one thread per digest, each reading the
/// file (from the page cache: packages are indexed right after they are
/// written).
fn digests(path: &Path) -> Result<(rattler_digest::Sha256Hash, rattler_digest::Md5Hash)> {
    use rattler_digest::{compute_file_digest, Md5, Sha256};
    let cannot = |e: std::io::Error| miette!("cannot read {}: {e}", path.display());
    std::thread::scope(|s| {
        let md5 = s.spawn(|| compute_file_digest::<Md5>(path));
        let sha = compute_file_digest::<Sha256>(path).map_err(cannot)?;
        let md5 = md5
            .join()
            .map_err(|_| miette!("hashing {} failed", path.display()))?
            .map_err(cannot)?;
        Ok((sha, md5))
    })
}
