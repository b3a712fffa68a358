//! Writing package archives in the background while the next output
//! builds. At most as many archives are written at once as the cores allow
//! (`.conda`: cores / zstd threads per archive, so one at a time by
//! default; `.tar.bz2`, whose compressor is single-threaded: one per
//! core), and they land in the order their outputs were planned.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Instant;

use miette::{miette, Result};

use super::output::Packaging;
use super::{Built, Waiting};
use crate::package::archive::{self, Compression, Format};

/// An archive written, with what the build knew about its package.
pub(super) struct Finished {
    /// The built output.
    pub built: Built,
    /// How its tests wait for siblings.
    pub waiting: Waiting,
    /// When its build started.
    pub started: Instant,
}

struct Job {
    built: Built,
    waiting: Waiting,
    build_started: Instant,
    files: usize,
    started: Instant,
    handle: JoinHandle<Result<PathBuf>>,
}

/// The archives being written.
pub(super) struct Pipeline {
    limit: usize,
    running: VecDeque<Job>,
    /// Written, not yet returned.
    done: Vec<Finished>,
}

impl Pipeline {
    /// A pipeline for archives compressed as `compression` says.
    pub fn new(compression: &Compression) -> Self {
        let cores = archive::all_cores().max(1) as usize;
        let per_archive = match compression.format.format {
            Format::Conda => compression.threads.max(1) as usize,
            Format::TarBz2 => 1,
        };
        Pipeline {
            limit: (cores / per_archive).max(1),
            running: VecDeque::new(),
            done: Vec::new(),
        }
    }

    /// Start writing the archive of `built`, first finishing the oldest
    /// archives while the pipeline is full; returns those.
    pub fn start(&mut self, built: Built, packaging: Packaging, waiting: Waiting) -> Result<Vec<Finished>> {
        // Finished archives wait in `done` until returned, so that an error
        // here leaves them to `finish_all` instead of losing them.
        while self.running.len() >= self.limit {
            if let Some(job) = self.running.pop_front() {
                let f = finish(job)?;
                self.done.push(f);
            }
        }
        let Packaging {
            prepared,
            lock,
            build_started,
            started,
            files,
        } = packaging;
        let handle = std::thread::Builder::new()
            .name("kiln-archive".into())
            .spawn(move || {
                let written = prepared.archive();
                drop(lock);
                written
            })
            .map_err(|e| miette!("cannot start writing {}: {e}", built.path.display()))?;
        self.running.push_back(Job {
            built,
            waiting,
            build_started,
            files,
            started,
            handle,
        });
        Ok(std::mem::take(&mut self.done))
    }

    /// Wait for every archive: the ones written, and the first error (all
    /// archives are waited for even after one failed).
    pub fn finish_all(&mut self) -> (Vec<Finished>, Option<miette::Report>) {
        let mut finished = std::mem::take(&mut self.done);
        let mut error = None;
        while let Some(job) = self.running.pop_front() {
            match finish(job) {
                Ok(f) => finished.push(f),
                Err(e) => {
                    error.get_or_insert(e);
                }
            }
        }
        (finished, error)
    }
}

/// Wait for one archive and report it.
fn finish(job: Job) -> Result<Finished> {
    let path = job
        .handle
        .join()
        .map_err(|_| miette!("writing {} failed unexpectedly", job.built.path.display()))??;
    let bytes: u64 = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    crate::ui::print_line(&format!(
        "✔ {} ({} file{}, {:.1} MB, packaged in {:.2} s)",
        path.display(),
        job.files,
        if job.files == 1 { "" } else { "s" },
        bytes as f64 / 1e6,
        job.started.elapsed().as_secs_f64()
    ));
    Ok(Finished {
        built: job.built,
        waiting: job.waiting,
        started: job.build_started,
    })
}
