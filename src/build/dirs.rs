//! Directory layout of one build, following rattler-build's shape:
//! `<out>/bld/kiln_<name>/{work, host_env_placehold…, build_env}`.
//!
//! Unlike rattler-build the directory carries no timestamp: the host prefix
//! path ends up in packages (as the prefix placeholder) and in caches, so a
//! stable path is what makes rebuilds byte-identical. Concurrent builds of
//! the same output name take [`BuildDirs::lock`] instead, one build at a
//! time, so that no lock is held across builds.

use std::path::{Path, PathBuf};

use crate::lock::{Lock, Mode};

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

    /// `merge_build_and_host_envs`: one prefix, `BUILD_PREFIX` = `PREFIX`.
    pub fn merged(mut self) -> Self {
        self.build_prefix = self.host_prefix.clone();
        self
    }

    /// Wait for, then hold, the exclusive right to use these directories
    /// (for one build step: see [`crate::lock`] for the order of locks).
    /// Lock files live in `<out>/bld/.locks/`, one per build directory name.
    pub fn lock(&self) -> std::io::Result<Lock> {
        let bld = self.build_dir.parent().unwrap_or(Path::new("."));
        let name = self.build_dir.file_name().unwrap_or_default().to_string_lossy();
        let path = bld.join(".locks").join(format!("{name}.lock"));
        Lock::acquire(
            &path,
            Mode::Exclusive,
            &format!("the build directory {}", self.build_dir.display()),
        )
    }

    /// The two prefixes environments are installed into.
    pub fn prefixes(&self) -> crate::environment::resolve::Prefixes<'_> {
        crate::environment::resolve::Prefixes {
            build: &self.build_prefix,
            host: &self.host_prefix,
        }
    }

    /// Create fresh, empty directories (removing leftovers of an earlier run).
    /// The build directory (and `bld/`) are readable by the owner only: they
    /// hold the script's environment file.
    pub fn create(&self) -> std::io::Result<()> {
        if self.build_dir.symlink_metadata().is_ok() {
            fs_err::remove_dir_all(&self.build_dir)?;
        }
        if let Some(bld) = self.build_dir.parent() {
            fs_err::create_dir_all(bld)?;
            // Best effort: `bld/` may belong to someone else in a shared output directory.
            let _ = private(bld);
        }
        fs_err::create_dir_all(&self.build_dir)?;
        private(&self.build_dir)?;
        for d in [&self.work_dir, &self.host_prefix, &self.build_prefix] {
            fs_err::create_dir_all(d)?;
        }
        Ok(())
    }
}

/// Make `dir` accessible to its owner only.
pub fn private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs_err::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
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
