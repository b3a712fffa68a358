//! Directory layout of one build, following rattler-build's shape:
//! `<out>/bld/kiln_<name>/{work, host_env_placehold…, build_env}`.
//!
//! Unlike rattler-build the directory carries no timestamp: the host prefix
//! path ends up in packages (as the prefix placeholder) and in caches, so a
//! stable path is what makes rebuilds byte-identical. Concurrent builds of
//! the same output name take [`BuildDirs::lock`] instead.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Length the host prefix is padded to, so installed packages can have a
/// long placeholder replaced by shorter real prefixes (binary relocation).
pub const PREFIX_LENGTH: usize = 255;
const PLACEHOLDER: &str = "_placehold";

/// The directories of one output's build.
#[derive(Debug, Clone)]
pub struct BuildDirs {
    /// `<out>/bld/kiln_<name>`.
    pub build_dir: PathBuf,
    /// `SRC_DIR`: sources and the build script run here.
    pub work_dir: PathBuf,
    /// `PREFIX`: padded host prefix.
    pub host_prefix: PathBuf,
    /// `BUILD_PREFIX`.
    pub build_prefix: PathBuf,
}

impl BuildDirs {
    /// Lay out (but do not create) the directories for `name`.
    pub fn new(output_dir: &Path, name: &str) -> Self {
        let build_dir = output_dir.join("bld").join(format!("kiln_{name}"));
        Self {
            work_dir: build_dir.join("work"),
            host_prefix: padded_prefix(&build_dir),
            build_prefix: build_dir.join("build_env"),
            build_dir,
        }
    }

    /// Wait for, then hold, the exclusive right to use these directories.
    /// The lock is released when the returned file is dropped.
    pub fn lock(&self) -> std::io::Result<std::fs::File> {
        let path = self.build_dir.with_extension("lock");
        if let Some(parent) = path.parent() {
            fs_err::create_dir_all(parent)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        if file.try_lock().is_err() {
            tracing::info!("waiting for another kiln process using {}", self.build_dir.display());
            file.lock()?;
        }
        Ok(file)
    }

    /// Create fresh, empty directories (removing leftovers of an earlier run).
    pub fn create(&self) -> std::io::Result<()> {
        if self.build_dir.exists() {
            fs_err::remove_dir_all(&self.build_dir)?;
        }
        for d in [&self.work_dir, &self.host_prefix, &self.build_prefix] {
            fs_err::create_dir_all(d)?;
        }
        Ok(())
    }
}

/// `<build_dir>/host_env_placehold_placehold…` padded to [`PREFIX_LENGTH`]
/// characters in total (or as long as it gets when the base is too long).
fn padded_prefix(build_dir: &Path) -> PathBuf {
    let base = build_dir.join("host_env");
    let mut s = base.to_string_lossy().into_owned();
    while s.len() < PREFIX_LENGTH {
        s.push_str(PLACEHOLDER);
    }
    if s.len() > PREFIX_LENGTH && base.to_string_lossy().len() < PREFIX_LENGTH {
        s.truncate(PREFIX_LENGTH);
    }
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_prefix_is_padded_to_255() {
        let dirs = BuildDirs::new(Path::new("/tmp/out"), "pkg");
        let p = dirs.host_prefix.to_string_lossy();
        assert_eq!(p.len(), PREFIX_LENGTH);
        assert!(p.contains("host_env_placehold"));
    }
}

/// Build directories of one invocation, each locked against other kiln
/// processes the first time it is used and held until the invocation ends.
#[derive(Debug, Default)]
pub struct Workspace {
    held: HashMap<PathBuf, std::fs::File>,
}

impl Workspace {
    /// Directories named `name` under `output_dir`, locked for this process.
    pub fn dirs(&mut self, output_dir: &Path, name: &str) -> std::io::Result<BuildDirs> {
        let dirs = BuildDirs::new(output_dir, name);
        if !self.held.contains_key(&dirs.build_dir) {
            let lock = dirs.lock()?;
            self.held.insert(dirs.build_dir.clone(), lock);
        }
        Ok(dirs)
    }
}
