//! The on-disk staging cache: `<cache>/staging_<key>/{metadata.json,
//! prefix/, work_dir/}`.
//!
//! An entry is written into `<cache>/.tmp-staging_<key>-<pid>/` under a
//! per-key lock and renamed into place only when complete, so a crash or a
//! kill never leaves a directory that a later run trusts; an entry is
//! trusted only if its `metadata.json` parses and names its own key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use miette::{miette, IntoDiagnostic, Result};
use serde::{Deserialize, Serialize};

use super::key::{KeyInputs, CACHE_FORMAT_VERSION};

/// What a cache entry records about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metadata {
    /// kiln's cache format.
    pub format: u32,
    /// kiln version that wrote the entry.
    pub kiln_version: String,
    /// Staging output name.
    pub name: String,
    /// The key (the directory name without `staging_`).
    pub key: String,
    /// Everything the key was computed from.
    pub key_inputs: KeyInputs,
    /// `$PREFIX` of the build that made the files (relocated on restore).
    pub prefix: PathBuf,
    /// Work directory of that build.
    pub work_dir: PathBuf,
    /// Run exports of the staging build and host dependencies, after the
    /// staging output's `ignore_run_exports` (so a hit needs no package reads).
    pub run_exports: crate::environment::run_exports::Applied,
    /// Files the staging script added to `$PREFIX`.
    pub files: Vec<CachedFile>,
    /// Number of entries captured from the work directory.
    pub work_dir_entries: usize,
    /// Bytes stored (prefix and work directory).
    pub size_bytes: u64,
    /// Sources as declared.
    pub sources: Vec<serde_json::Value>,
    /// How long the staging script and the capture took.
    pub timings: Timings,
    /// Unix time the entry was written.
    pub created: i64,
}

/// A captured prefix file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CachedFile {
    /// Path relative to the prefix.
    pub path: String,
    /// `file` or `symlink`.
    #[serde(rename = "type")]
    pub kind: FileKind,
    /// Link target, for symlinks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// Kinds of captured files.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// A regular file.
    File,
    /// A symbolic link (possibly broken).
    Symlink,
}

/// Timings recorded in `metadata.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Timings {
    /// Staging script wall time.
    pub script_seconds: f64,
    /// Moving results into the cache.
    pub capture_seconds: f64,
}

/// A complete, trusted cache entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// `<cache>/staging_<key>`.
    pub dir: PathBuf,
    /// Its metadata.
    pub meta: Metadata,
}

impl Entry {
    /// `prefix/` of the entry.
    pub fn prefix_dir(&self) -> PathBuf {
        self.dir.join("prefix")
    }
    /// `work_dir/` of the entry.
    pub fn work_dir(&self) -> PathBuf {
        self.dir.join("work_dir")
    }
}

/// A staging cache directory.
#[derive(Debug, Clone)]
pub struct Store {
    /// Root directory (default `<output>/build_cache`).
    pub root: PathBuf,
}

impl Store {
    /// The store at `root`.
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn entry_dir(&self, key: &str) -> PathBuf {
        self.root.join(format!("staging_{key}"))
    }

    /// The entry for `key`, if it is complete and trustworthy.
    pub fn lookup(&self, key: &str) -> Option<Entry> {
        let dir = self.entry_dir(key);
        let meta = read_metadata(&dir)?;
        (meta.key == key
            && meta.format == CACHE_FORMAT_VERSION
            && dir.join("prefix").is_dir()
            && dir.join("work_dir").is_dir())
        .then_some(Entry { dir, meta })
    }

    /// Record that an entry was used (the mtime of its `metadata.json`).
    pub fn touch(&self, entry: &Entry) {
        let _ = filetime::set_file_mtime(entry.dir.join("metadata.json"), filetime::FileTime::now());
    }

    /// Hold the exclusive right to build `key` (waits for other kiln processes).
    pub fn lock(&self, key: &str) -> Result<std::fs::File> {
        fs_err::create_dir_all(&self.root).into_diagnostic()?;
        let path = self.root.join(format!(".staging_{key}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| miette!("cannot open lock {}: {e}", path.display()))?;
        if file.try_lock().is_err() {
            tracing::info!("waiting for another kiln process building staging cache {key}");
            file.lock().into_diagnostic()?;
        }
        Ok(file)
    }

    /// A fresh temporary directory for building `key` (call with the lock held);
    /// leftovers of interrupted attempts at the same key are removed.
    pub fn begin(&self, key: &str) -> Result<PathBuf> {
        let prefix = format!(".tmp-staging_{key}-");
        if let Ok(read) = std::fs::read_dir(&self.root) {
            for e in read.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    tracing::info!("removing an interrupted staging cache attempt: {}", e.path().display());
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let tmp = self.root.join(format!("{prefix}{}", std::process::id()));
        fs_err::create_dir_all(tmp.join("prefix")).into_diagnostic()?;
        fs_err::create_dir_all(&tmp).into_diagnostic()?;
        Ok(tmp)
    }

    /// Write `metadata.json` last, then move the temporary directory into place.
    pub fn commit(&self, tmp: &Path, meta: Metadata) -> Result<Entry> {
        let text = serde_json::to_string_pretty(&meta).into_diagnostic()?;
        let meta_path = tmp.join("metadata.json");
        {
            use std::io::Write;
            let mut f = fs_err::File::create(&meta_path).into_diagnostic()?;
            f.write_all(text.as_bytes()).into_diagnostic()?;
            f.sync_all().into_diagnostic()?;
        }
        let dir = self.entry_dir(&meta.key);
        if dir.exists() {
            // An untrusted leftover (we hold the lock, so nobody else is writing it).
            fs_err::remove_dir_all(&dir).into_diagnostic()?;
        }
        fs_err::rename(tmp, &dir).into_diagnostic()?;
        Ok(Entry { dir, meta })
    }

    /// All trusted entries.
    pub fn entries(&self) -> Vec<Entry> {
        let Ok(read) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut out: Vec<Entry> = read
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let key = name.strip_prefix("staging_")?;
                self.lookup(key)
            })
            .collect();
        out.sort_by(|a, b| a.meta.name.cmp(&b.meta.name).then(b.meta.created.cmp(&a.meta.created)));
        out
    }

    /// The newest entry for staging output `name`, preferring those built
    /// with the same variant values (the closest earlier build).
    pub fn newest_for(&self, name: &str, variant: &BTreeMap<String, String>) -> Option<Entry> {
        self.entries()
            .into_iter()
            .filter(|e| e.meta.name == name)
            .max_by_key(|e| (e.meta.key_inputs.variant == *variant, e.meta.created))
    }
}

fn read_metadata(dir: &Path) -> Option<Metadata> {
    let text = std::fs::read_to_string(dir.join("metadata.json")).ok()?;
    serde_json::from_str(&text).ok()
}
