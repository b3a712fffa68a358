//! The on-disk staging cache: `<cache>/staging_<key>/{metadata.json,
//! prefix/, work_dir/}`, with a `CACHEDIR.TAG` and lock files in
//! `<cache>/.locks/`.
//!
//! An entry is written into `<cache>/.tmp-staging_<key>-<pid>/` under the
//! key's build lock, synced, and renamed into place only when complete, so
//! a crash or a kill never leaves a directory that a later run trusts; an
//! entry is trusted only if its `metadata.json` parses and names its own
//! key. Builds that use an entry hold its shared lock until they end;
//! removing an entry takes the exclusive lock and first renames the entry
//! to `<cache>/.trash-…`, so a half-deleted entry is never looked at.
//! Leftovers of killed processes (temporary entries nobody builds, trash,
//! free lock files) are removed by [`Store::sweep`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use miette::{miette, IntoDiagnostic, Result};
use serde::{Deserialize, Serialize};

use super::key::{KeyInputs, CACHE_FORMAT_VERSION};
use crate::lock::{Lock, Mode};

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
    /// Shared libraries of the staging host environment (and its parent's)
    /// with the packages that provide them, for inheritors' linking checks.
    pub host_libraries: crate::package::linking::LibraryMap,
    /// Library names in the sysroots of the staging build and host
    /// environments (and its parent's), for the same checks.
    pub sysroot_libraries: std::collections::BTreeSet<String>,
    /// Number of entries captured from the work directory.
    pub work_dir_entries: usize,
    /// Bytes stored (prefix and work directory).
    pub size_bytes: u64,
    /// Sources in their finalized form (resolved checksum or commit).
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
    /// An empty directory.
    Directory,
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

/// What [`Store::remove`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// The entry is gone.
    Removed,
    /// A running build uses it; it was kept.
    InUse,
    /// Someone else removed it first.
    Gone,
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
        if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
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

    fn lock_path(&self, key: &str, kind: &str) -> PathBuf {
        self.root.join(".locks").join(format!("staging_{key}.{kind}.lock"))
    }

    /// Create the cache directory (owner-only when kiln creates it, with a `CACHEDIR.TAG`).
    pub fn create(&self) -> Result<()> {
        if !self.root.exists() {
            fs_err::create_dir_all(&self.root).into_diagnostic()?;
            crate::build::dirs::private(&self.root).into_diagnostic()?;
        }
        fs_err::create_dir_all(self.root.join(".locks")).into_diagnostic()?;
        let tag = self.root.join("CACHEDIR.TAG");
        if !tag.exists() {
            crate::disk::write_atomic(
                &tag,
                b"Signature: 8a477f597d28d172789f06886806bc55\n# This is kiln's staging cache; see https://bford.info/cachedir/\n",
            )?;
        }
        Ok(())
    }

    /// Remove what killed processes left behind: temporary entries that
    /// nobody is building, trash of interrupted removals, free lock files.
    pub fn sweep(&self) {
        let Ok(read) = std::fs::read_dir(&self.root) else {
            return;
        };
        for e in read.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".trash-") {
                let _ = std::fs::remove_dir_all(e.path());
            } else if name.starts_with(".private-staging_") {
                // Its owner holds this lock for as long as it runs.
                let lock = self.root.join(".locks").join(format!("{name}.lock"));
                if let Ok(Some(_dead)) = Lock::try_acquire(&lock, Mode::Exclusive) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            } else if let Some(rest) = name.strip_prefix(".tmp-staging_") {
                let key = rest.rsplit_once('-').map_or(rest, |(k, _)| k);
                // Whoever builds `key` holds its build lock.
                if let Ok(Some(_building)) = Lock::try_acquire(&self.lock_path(key, "build"), Mode::Exclusive) {
                    tracing::info!("removing an interrupted staging cache attempt: {}", e.path().display());
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        crate::lock::remove_stale(&self.root.join(".locks"));
    }

    /// Hold the exclusive right to build `key` (waits for other kiln processes).
    pub fn build_lock(&self, key: &str) -> Result<Lock> {
        let path = self.lock_path(key, "build");
        Lock::acquire(
            &path,
            Mode::Exclusive,
            &format!("the staging cache entry staging_{key}"),
        )
        .map_err(|e| miette!("cannot lock {}: {e}", path.display()))
    }

    /// The lock that keeps `key`'s entry from being removed while it is used.
    pub fn use_lock(&self, key: &str) -> Result<Lock> {
        let path = self.lock_path(key, "use");
        Lock::acquire(&path, Mode::Shared, &format!("staging_{key} (being removed)"))
            .map_err(|e| miette!("cannot lock {}: {e}", path.display()))
    }

    /// The entry for `key` with its use lock held, if it is complete and trustworthy.
    pub fn open(&self, key: &str) -> Result<Option<(Entry, Lock)>> {
        if self.lookup(key).is_none() {
            return Ok(None);
        }
        let lock = self.use_lock(key)?;
        // It may have been removed between the lookup and the lock.
        Ok(self.lookup(key).map(|e| (e, lock)))
    }

    /// A fresh temporary directory for building `key` (call with the build
    /// lock held); leftovers of interrupted attempts at the same key are removed.
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
        Ok(tmp)
    }

    /// Write `metadata.json` last, sync everything, then move the temporary
    /// directory into place (call with the build lock and the use lock held).
    pub fn commit(&self, tmp: &Path, meta: Metadata) -> Result<Entry> {
        self.finish(tmp, &meta)?;
        let dir = self.entry_dir(&meta.key);
        if dir.symlink_metadata().is_ok() {
            // An untrusted leftover (we hold the build lock, so nobody else is writing it).
            self.trash(&dir)?;
        }
        fs_err::rename(tmp, &dir).into_diagnostic()?;
        crate::disk::sync_dir(&self.root)?;
        Ok(Entry { dir, meta })
    }

    /// Like [`Store::commit`], but the entry stays where it was built and is
    /// never published: for a build whose result only this run may use.
    pub fn keep_private(&self, tmp: &Path, meta: Metadata) -> Result<Entry> {
        self.finish(tmp, &meta)?;
        Ok(Entry {
            dir: tmp.to_path_buf(),
            meta,
        })
    }

    /// A directory for a staging build only this run may use, with the lock
    /// that tells [`Store::sweep`] its owner is alive (nobody waits for it).
    pub fn begin_private(&self, key: &str) -> Result<(PathBuf, Lock)> {
        let name = format!(".private-staging_{key}-{}", std::process::id());
        let lock = Lock::try_acquire(&self.root.join(".locks").join(format!("{name}.lock")), Mode::Exclusive)
            .into_diagnostic()?
            .ok_or_else(|| miette!("{name} is in use by this process already"))?;
        let dir = self.root.join(name);
        if dir.symlink_metadata().is_ok() {
            fs_err::remove_dir_all(&dir).into_diagnostic()?;
        }
        fs_err::create_dir_all(dir.join("prefix")).into_diagnostic()?;
        Ok((dir, lock))
    }

    fn finish(&self, tmp: &Path, meta: &Metadata) -> Result<()> {
        let mut value = serde_json::to_value(meta).into_diagnostic()?;
        // A secret may have reached any input (a variant value, a spec).
        crate::redact::mask_json(&mut value);
        let text = serde_json::to_string_pretty(&value).into_diagnostic()?;
        fs_err::write(tmp.join("metadata.json"), text).into_diagnostic()?;
        crate::disk::sync_tree(tmp)
    }

    /// Remove `entry` unless a build is using it.
    pub fn remove(&self, entry: &Entry) -> Result<Removal> {
        let Some(lock) =
            Lock::try_acquire(&self.lock_path(&entry.meta.key, "use"), Mode::Exclusive).into_diagnostic()?
        else {
            return Ok(Removal::InUse);
        };
        // Another `kiln cache clean` may have removed it meanwhile.
        if self.lookup(&entry.meta.key).is_none() {
            return Ok(Removal::Gone);
        }
        self.trash(&entry.dir)?;
        lock.remove();
        Ok(Removal::Removed)
    }

    /// Rename `dir` out of the way (one atomic step), then delete it; what
    /// a crash leaves behind is removed by the next [`Store::sweep`].
    fn trash(&self, dir: &Path) -> Result<()> {
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let to = self.root.join(format!(".trash-{name}-{}-{nanos}", std::process::id()));
        fs_err::rename(dir, &to).into_diagnostic()?;
        crate::disk::sync_dir(&self.root)?;
        // A sweep running at the same time may delete it too.
        let _ = std::fs::remove_dir_all(&to);
        Ok(())
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
            // Entries made in the same second: the one used last.
            .max_by_key(|e| {
                let used = std::fs::metadata(e.dir.join("metadata.json"))
                    .and_then(|m| m.modified())
                    .ok();
                (e.meta.key_inputs.variant == *variant, e.meta.created, used)
            })
    }
}

fn read_metadata(dir: &Path) -> Option<Metadata> {
    let text = std::fs::read_to_string(dir.join("metadata.json")).ok()?;
    serde_json::from_str(&text).ok()
}
