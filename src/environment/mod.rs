//! Build and host environments: channels and their repodata (cached on
//! disk), solving with resolvo, installing with rattler into a shared
//! package cache, activation, and run exports.
//!
//! One [`Environments`] serves a whole invocation. Nothing here touches the
//! network until an output actually has requirements to solve.

pub mod activation;
pub mod channels;
pub mod interpreters;
pub mod resolve;
pub mod run_exports;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use miette::{miette, Result};
use rattler::install::Installer;
use rattler_cache::package_cache::PackageCache;
use rattler_conda_types::{Channel, GenericVirtualPackage, MatchSpec, ParseStrictness, RepoDataRecord, Subdir};
use rattler_repodata_gateway::{CacheClearMode, Gateway, SubdirSelection};
use rattler_solve::{resolvo, ChannelPriority, ExcludeNewer, SolverImpl, SolverTask};
use rattler_virtual_packages::{VirtualPackageOverrides, VirtualPackages};
use reqwest_middleware::ClientWithMiddleware;

/// How environments are solved: `--channel-priority` and `--exclude-newer`.
#[derive(Debug, Clone, Default)]
pub struct Solving {
    /// Strict: a package comes from the first channel that has it;
    /// disabled: the best version from any channel.
    pub priority: ChannelPriority,
    /// Packages of the `-c` channels built after this are left out (the
    /// output directory's own packages never are).
    pub exclude_newer: Option<jiff::Timestamp>,
    /// Local channels (directories) whose packages the cutoff never
    /// leaves out, besides the output directory: `kiln publish`'s target.
    pub exempt: Vec<PathBuf>,
}

/// Channels, repodata, package cache and solver settings for one invocation.
pub struct Environments {
    solving: Solving,
    /// The output directory's channel URL, when it is the first channel.
    output_channel: Option<String>,
    rt: tokio::runtime::Runtime,
    gateway: Gateway,
    client: ClientWithMiddleware,
    package_cache: PackageCache,
    /// Channels in priority order; the first is the output directory.
    pub channels: Vec<Channel>,
    /// Where repodata and packages are cached.
    pub cache_dir: PathBuf,
    timeout: Duration,
    virtual_packages: Mutex<HashMap<Subdir, Vec<GenericVirtualPackage>>>,
}

/// Why a solve failed.
#[derive(Debug)]
pub enum SolveError {
    /// A channel could not be read (named in the report).
    Channel(miette::Report),
    /// The solver's explanation of why the request cannot be satisfied.
    Unsolvable(String),
}

impl Environments {
    /// Set up channels (the output directory first, when given, then
    /// `channel_args`), the repodata and package caches and the HTTP client.
    pub fn new(channel_args: &[String], output_dir: Option<&Path>, solving: Solving) -> Result<Self> {
        let channels = channels::resolve(channel_args, output_dir)?;
        let output_channel = output_dir
            .and(channels.first())
            .map(|c| c.base_url.url().as_str().trim_end_matches('/').to_string());
        let cache_dir = crate::net::cache_dir()?;
        let timeout = crate::net::timeout()?;
        let client = crate::net::client(timeout)?;
        let package_cache = PackageCache::new(cache_dir.join("pkgs"));
        let gateway = Gateway::builder()
            .with_client(client.clone())
            .with_cache_dir(cache_dir.join("repodata"))
            .with_package_cache(package_cache.clone())
            .with_max_concurrent_requests(16)
            .finish();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| miette!("cannot start the async runtime: {e}"))?;
        Ok(Self {
            solving,
            output_channel,
            rt,
            gateway,
            client,
            package_cache,
            channels,
            cache_dir,
            timeout,
            virtual_packages: Mutex::new(HashMap::new()),
        })
    }

    /// The channel URLs, in priority order (for messages and render output).
    pub fn channel_urls(&self) -> Vec<String> {
        self.channels.iter().map(channels::display).collect()
    }

    /// Forget what was read of the output directory, after it was re-indexed.
    pub fn refresh_output_channel(&self) {
        if let Some(out) = self.channels.first().filter(|c| c.base_url.url().scheme() == "file") {
            let _ = self
                .gateway
                .clear_repodata_cache(out, SubdirSelection::All, CacheClearMode::InMemoryOnly);
        }
    }

    /// Solve `specs` for `platform` against the channels, with the
    /// machine's virtual packages (overridable with `CONDA_OVERRIDE_*`).
    pub fn solve(&self, platform: Subdir, specs: &[String]) -> std::result::Result<Vec<RepoDataRecord>, SolveError> {
        self.solve_in(&self.channels, platform, specs)
    }

    /// Like [`Self::solve`], but first with the output directory alone (when
    /// it is the first channel): a test environment made only of packages
    /// built here needs no other channel, and so no network. With strict
    /// channel priority the result is the same as solving with all channels
    /// whenever the output directory alone suffices.
    pub fn solve_local_first(
        &self,
        platform: Subdir,
        specs: &[String],
    ) -> std::result::Result<Vec<RepoDataRecord>, SolveError> {
        let local = self.channels.first().filter(|c| c.base_url.url().scheme() == "file");
        if let Some(local) = local {
            if let Ok(records) = self.solve_in(std::slice::from_ref(local), platform, specs) {
                return Ok(records);
            }
        }
        self.solve(platform, specs)
    }

    fn solve_in(
        &self,
        channels: &[Channel],
        platform: Subdir,
        specs: &[String],
    ) -> std::result::Result<Vec<RepoDataRecord>, SolveError> {
        let specs: Vec<MatchSpec> = specs
            .iter()
            .map(|s| {
                MatchSpec::from_str(s, ParseStrictness::Lenient)
                    .map_err(|e| SolveError::Channel(miette!("invalid match spec `{s}`: {e}")))
            })
            .collect::<std::result::Result<_, _>>()?;
        let started = Instant::now();
        let repodata = self
            .query(channels, platform, specs.clone(), true)
            .map_err(SolveError::Channel)?;
        tracing::debug!(
            "read repodata for {platform} ({} records) in {:.2} s",
            repodata.iter().map(|r| r.len()).sum::<usize>(),
            started.elapsed().as_secs_f64()
        );
        let virtual_packages = self.virtual_packages(platform).map_err(SolveError::Channel)?;
        let task = SolverTask {
            specs,
            virtual_packages,
            channel_priority: self.solving.priority,
            exclude_newer: self.exclude_newer(),
            ..SolverTask::from_iter(repodata.iter())
        };
        let started = Instant::now();
        let result = resolvo::Solver.solve(task).map_err(|e| match e {
            rattler_solve::SolveError::Unsolvable(lines) => SolveError::Unsolvable(lines.join("\n")),
            other => SolveError::Unsolvable(other.to_string()),
        })?;
        tracing::debug!("solved {platform} in {:.3} s", started.elapsed().as_secs_f64());
        let mut records = result.records;
        records.sort_by(|a, b| a.package_record.name.cmp(&b.package_record.name));
        Ok(records)
    }

    /// The `--exclude-newer` cutoff, with the output directory exempt: what
    /// this run (or an earlier one) built there is always usable.
    fn exclude_newer(&self) -> Option<ExcludeNewer> {
        let mut cutoff = ExcludeNewer::from_datetime(self.solving.exclude_newer?);
        let exempt = self
            .solving
            .exempt
            .iter()
            .filter_map(|d| url::Url::from_directory_path(std::fs::canonicalize(d).unwrap_or_else(|_| d.clone())).ok())
            .map(|u| u.as_str().trim_end_matches('/').to_string());
        for url in self.output_channel.iter().cloned().chain(exempt) {
            cutoff = cutoff
                .with_channel_cutoff(url.clone(), jiff::Timestamp::MAX)
                .with_channel_cutoff(format!("{url}/"), jiff::Timestamp::MAX);
        }
        Some(cutoff)
    }

    /// The records of the channels (for `platform` and noarch) that match
    /// `spec` itself, without resolving dependencies.
    pub fn find(&self, platform: Subdir, spec: &str) -> Result<Vec<RepoDataRecord>> {
        let spec = MatchSpec::from_str(spec, ParseStrictness::Lenient)
            .map_err(|e| miette!("invalid match spec `{spec}`: {e}"))?;
        let repodata = self.query(&self.channels, platform, vec![spec], false)?;
        Ok(repodata.iter().flat_map(|r| r.iter().cloned()).collect())
    }

    /// The repodata of `channels` for `platform` and noarch that `specs`
    /// (and, when `recursive`, their dependencies) may use.
    fn query(
        &self,
        channels: &[Channel],
        platform: Subdir,
        specs: Vec<MatchSpec>,
        recursive: bool,
    ) -> Result<rattler_repodata_gateway::RepoDataQueryOutput> {
        let query = self
            .gateway
            .query(channels.to_vec(), [platform, Subdir::NoArch], specs)
            .recursive(recursive)
            .execute();
        // Stalled connections are bounded by the client's timeouts; this is a
        // last resort for servers that trickle bytes forever.
        let overall = self.timeout * 15;
        match self.rt.block_on(async { tokio::time::timeout(overall, query).await }) {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(self.channel_error(&error_chain(&e))),
            Err(_) => Err(self.channel_error(&format!("no answer within {} s", overall.as_secs()))),
        }
    }

    /// Install `records` into `prefix` (packages come from the shared cache).
    pub fn install(&self, prefix: &Path, platform: Subdir, records: &[RepoDataRecord]) -> Result<()> {
        let installer = Installer::new()
            .with_package_cache(self.package_cache.clone())
            .with_download_client(self.client.clone())
            .with_target_platform(platform)
            .with_execute_link_scripts(false);
        self.rt
            .block_on(installer.install(prefix, records.to_vec()))
            .map_err(|e| miette!("installing into {} failed: {}", prefix.display(), error_chain(&e)))?;
        Ok(())
    }

    /// The package of `record`, extracted in the shared package cache.
    pub fn extracted(&self, record: &RepoDataRecord) -> Result<PathBuf> {
        let fetched = self.rt.block_on(self.package_cache.get_or_fetch_from_url(
            &record.package_record,
            record.url.clone(),
            self.client.clone().into(),
            None,
            None,
        ));
        let meta = fetched.map_err(|e| {
            miette!(
                "fetching {} failed: {}",
                crate::redact::url_for_display(&record.url),
                error_chain(&e)
            )
        })?;
        Ok(meta.path().to_path_buf())
    }

    /// Make sure every record carries its run exports (from the channel's
    /// `run_exports.json` or the package itself).
    pub fn fill_run_exports(&self, records: &mut [RepoDataRecord]) -> Result<()> {
        self.rt
            .block_on(self.gateway.ensure_run_exports(records.iter_mut(), None))
            .map_err(|e| miette!("reading run exports failed: {}", error_chain(&e)))
    }

    fn virtual_packages(&self, platform: Subdir) -> Result<Vec<GenericVirtualPackage>> {
        let mut cache = self.virtual_packages.lock().expect("not poisoned");
        if let Some(v) = cache.get(&platform) {
            return Ok(v.clone());
        }
        let detected = VirtualPackages::detect_for_platform(platform, &VirtualPackageOverrides::from_env(), None)
            .map_err(|e| miette!("cannot detect the virtual packages of {platform}: {e}"))?;
        let list: Vec<GenericVirtualPackage> = detected.into_generic_virtual_packages().collect();
        tracing::debug!(
            "virtual packages for {platform}: {}",
            list.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
        );
        cache.insert(platform, list.clone());
        Ok(list)
    }

    /// A channel read failure, naming the channel(s) the error is about.
    fn channel_error(&self, detail: &str) -> miette::Report {
        let named: Vec<String> = self
            .channels
            .iter()
            .map(channels::display)
            .filter(|url| detail.contains(url.as_str()))
            .collect();
        let which = if named.is_empty() {
            format!("one of the channels {}", self.channel_urls().join(", "))
        } else {
            format!("channel {}", named.join(", "))
        };
        miette!(
            help = format!(
                "check that the channel exists and is reachable (a channel needs at least noarch/repodata.json); \
                 connections give up after {} s of silence (KILN_NETWORK_TIMEOUT)",
                self.timeout.as_secs()
            ),
            "cannot read repodata from {which}: {detail}"
        )
    }
}

/// [`Environments`] created on first use, after indexing the output
/// directory so it can serve as the first channel. Builds without
/// requirements never create it (and never touch the network).
pub struct LazyEnvironments {
    channel_args: Vec<String>,
    output_dir: PathBuf,
    subdirs: Mutex<Vec<Subdir>>,
    read_only: bool,
    solving: Solving,
    cell: std::sync::OnceLock<Environments>,
}

impl LazyEnvironments {
    /// Environments for `channel_args`, with `output_dir` (indexed for
    /// `subdirs` and noarch) as the first channel. `read_only` (for
    /// `--render-only`) writes nothing: the output directory is used only
    /// if it already is a channel.
    pub fn new(channel_args: &[String], output_dir: &Path, subdirs: Vec<Subdir>, read_only: bool) -> Self {
        Self {
            channel_args: channel_args.to_vec(),
            output_dir: output_dir.to_path_buf(),
            subdirs: Mutex::new(subdirs),
            read_only,
            solving: Solving::default(),
            cell: std::sync::OnceLock::new(),
        }
    }

    /// These environments, solved with `solving`.
    pub fn with_solving(mut self, solving: Solving) -> Self {
        self.solving = solving;
        self
    }

    /// The environments, set up now if needed.
    pub fn get(&self) -> Result<&Environments> {
        if let Some(e) = self.cell.get() {
            return Ok(e);
        }
        if !self.read_only {
            let subdirs = self.subdirs.lock().map(|s| s.clone()).unwrap_or_default();
            crate::channel::index(&self.output_dir, &subdirs)?;
        }
        let is_channel = self.output_dir.join("noarch/repodata.json").is_file();
        let envs = Environments::new(
            &self.channel_args,
            is_channel.then_some(self.output_dir.as_path()),
            self.solving.clone(),
        )?;
        Ok(self.cell.get_or_init(|| envs))
    }

    /// Make these (shared) environments ready for a build whose packages
    /// go to `subdirs`: once set up, the output directory is indexed for them
    /// again (another process, or a withdrawn package, may have changed it)
    /// and read again; before, they are indexed too when set up.
    pub fn prepare_for(&self, subdirs: &[Subdir]) -> Result<()> {
        if self.cell.get().is_none() {
            if let Ok(mut known) = self.subdirs.lock() {
                for s in subdirs {
                    if !known.contains(s) {
                        known.push(*s);
                    }
                }
            }
            return Ok(());
        }
        if !self.read_only {
            crate::channel::index(&self.output_dir, subdirs)?;
        }
        self.package_added();
        Ok(())
    }

    /// Forget what was read of the output directory, after packages were
    /// added to its index ([`crate::channel::add`]).
    pub fn package_added(&self) {
        if let Some(e) = self.cell.get() {
            e.refresh_output_channel();
        }
    }
}

pub use crate::net::error_chain;
