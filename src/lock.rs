//! File locks: the one place where kiln waits for other kiln processes.
//!
//! A lock is an advisory `flock` on a small file. Waiting polls instead of
//! blocking, so Ctrl-C always ends it, and after a second it says what it
//! waits for and which process holds it (an exclusive holder writes its
//! pid into the file). Lock files can be removed safely while nobody holds
//! them ([`Lock::remove`]): whoever opened the old file notices that the
//! path now names another file (or none) and opens it again.
//!
//! Order, to rule out deadlocks between processes: a staging key's build
//! lock is taken before a build directory's lock; build directory locks are
//! held for one build step at a time; shared entry locks never wait for
//! anything but `kiln cache clean`, which holds nothing else.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Shared (many readers) or exclusive (one writer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Held by any number of processes at once.
    Shared,
    /// Held by one process, excluding shared holders.
    Exclusive,
}

/// A held lock; released when dropped.
#[derive(Debug)]
pub struct Lock {
    file: File,
    path: PathBuf,
}

/// How long a wait stays silent before it says what it waits for.
const QUIET_WAIT: Duration = Duration::from_secs(1);

impl Lock {
    /// Wait for `path` in `mode`. `what` describes the lock for the message
    /// shown after a second of waiting ("the build directory kiln_foo").
    pub fn acquire(path: &Path, mode: Mode, what: &str) -> std::io::Result<Lock> {
        let started = Instant::now();
        let mut said = false;
        let mut pause = Duration::from_millis(10);
        loop {
            if let Some(lock) = Self::try_acquire(path, mode)? {
                if said {
                    tracing::info!("got {what} ({})", path.display());
                }
                return Ok(lock);
            }
            if !said && started.elapsed() >= QUIET_WAIT {
                said = true;
                let holder = holder_pid(path)
                    .map(|pid| format!("held by pid {pid}"))
                    .unwrap_or_else(|| "held by another kiln process".to_string());
                tracing::warn!(
                    "waiting for {what}: {}, {holder} (Ctrl-C to stop waiting)",
                    path.display()
                );
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// Take `path` in `mode` if nobody holds it in a conflicting mode.
    pub fn try_acquire(path: &Path, mode: Mode) -> std::io::Result<Option<Lock>> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        loop {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(path)?;
            let got = match mode {
                Mode::Shared => file.try_lock_shared(),
                Mode::Exclusive => file.try_lock(),
            };
            match got {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
                Err(std::fs::TryLockError::Error(e)) => return Err(e),
            }
            // Someone may have removed (and maybe recreated) the file
            // between our open and our lock: then we hold a lock on a file
            // nobody else will ever look at. Start over.
            let ours = file.metadata()?;
            match std::fs::metadata(path) {
                Ok(now) if now.ino() == ours.ino() && now.dev() == ours.dev() => {}
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
            if mode == Mode::Exclusive {
                // Best effort: only shown to processes waiting for us.
                let _ = file.set_len(0);
                let _ = file.rewind();
                let _ = write!(file, "{}", std::process::id());
            }
            return Ok(Some(Lock {
                file,
                path: path.to_path_buf(),
            }));
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Delete the lock file, then release it. Only safe for an exclusive
    /// lock: waiters that opened the old file retry on the new one.
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
        drop(self.file);
    }
}

/// The pid written by the exclusive holder of `path`, if any.
fn holder_pid(path: &Path) -> Option<u32> {
    let mut text = String::new();
    File::open(path).ok()?.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// Remove every `*.lock` file directly in `dir` that nobody holds (locks
/// of finished or killed processes).
pub fn remove_stale(dir: &Path) {
    let Ok(read) = std::fs::read_dir(dir) else {
        return;
    };
    for e in read.flatten() {
        let path = e.path();
        if path.extension().is_some_and(|x| x == "lock") {
            if let Ok(Some(lock)) = Lock::try_acquire(&path, Mode::Exclusive) {
                lock.remove();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_and_shared_shares() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        let a = Lock::try_acquire(&p, Mode::Shared).unwrap().unwrap();
        let b = Lock::try_acquire(&p, Mode::Shared).unwrap().unwrap();
        assert!(Lock::try_acquire(&p, Mode::Exclusive).unwrap().is_none());
        drop((a, b));
        let c = Lock::try_acquire(&p, Mode::Exclusive).unwrap().unwrap();
        assert!(Lock::try_acquire(&p, Mode::Shared).unwrap().is_none());
        assert_eq!(holder_pid(&p), Some(std::process::id()));
        c.remove();
        assert!(!p.exists());
        // A free lock file is stale; a held one is not.
        let held = Lock::try_acquire(&dir.path().join("held.lock"), Mode::Shared)
            .unwrap()
            .unwrap();
        std::fs::write(dir.path().join("free.lock"), "").unwrap();
        remove_stale(dir.path());
        assert!(!dir.path().join("free.lock").exists());
        assert!(held.path().exists());
    }
}
