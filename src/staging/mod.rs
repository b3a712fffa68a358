//! Staging outputs: build once, cache on disk under a content key, restore
//! into every package output that inherits them.
//!
//! Within one invocation each staging output is built (or found in the
//! cache) at most once per combination of the variant values it uses,
//! before the first package that needs it; nested staging outputs restore
//! their parent first.

pub mod key;
pub mod restore;
pub mod store;
pub mod transfer;

pub use restore::{place_selected, restore_into};

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use miette::{miette, IntoDiagnostic, Result};

use crate::build::dirs::BuildDirs;
use crate::build::env::BuildIdentity;
use crate::build::{run_script, script, sources, BuildOptions};
use crate::dependencies;
use crate::environment::resolve::{self, Resolved};
use crate::environment::LazyEnvironments;
use crate::package::{self, select};
use crate::recipe::model::{Source, StagingOutput};
use crate::recipe::Recipe;
use crate::ui;
use crate::variants::variant_text;
use key::{recipe_files, source_keys, KeyInputs, BUILD_LOGIC_VERSION, CACHE_FORMAT_VERSION};
use store::{Entry, Metadata, Store, Timings};

/// Hashes of a recipe directory, by the directory and the paths left out.
type RecipeFileHashes = HashMap<(std::path::PathBuf, Vec<std::path::PathBuf>), BTreeMap<String, String>>;

/// Builds and remembers the staging outputs of a recipe's variants.
pub struct Stager<'a> {
    opts: &'a BuildOptions,
    envs: &'a LazyEnvironments,
    store: Store,
    /// Entries used so far, by staging name and used variant.
    done: HashMap<(String, String), Entry>,
    /// Locks held until the invocation ends: the use locks of the entries
    /// in `done`, and the locks that keep private entries from being swept.
    held: Vec<crate::lock::Lock>,
    /// Entries built only for this run (removed when it ends).
    private: Vec<std::path::PathBuf>,
    /// Hashes of the recipe directory, by excluded paths.
    recipe_files: std::cell::RefCell<RecipeFileHashes>,
    /// Keys computed by [`Stager::key`], by staging name and used variant.
    keys: std::cell::RefCell<HashMap<(String, String), String>>,
    /// Solved environments per staging output and variant: `key` (for
    /// `--skip-unchanged`) and `ensure` solve each once per run.
    solved: std::cell::RefCell<HashMap<(String, String), Resolved>>,
    /// Whether the cache directory was created and swept (on first use, so
    /// that recipes without staging outputs leave no cache directory).
    prepared: bool,
}

impl Drop for Stager<'_> {
    fn drop(&mut self) {
        for dir in &self.private {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl<'a> Stager<'a> {
    /// A stager using the cache in `opts.staging_cache_dir` (created when
    /// first needed, and then swept of what killed processes left behind).
    pub fn new(opts: &'a BuildOptions, envs: &'a LazyEnvironments) -> Self {
        Self {
            opts,
            envs,
            store: Store::new(opts.staging_cache_dir.clone()),
            done: HashMap::new(),
            held: Vec::new(),
            private: Vec::new(),
            prepared: false,
            recipe_files: Default::default(),
            keys: Default::default(),
            solved: Default::default(),
        }
    }

    /// The entries used so far.
    pub fn used(&self) -> impl Iterator<Item = &Entry> {
        self.done.values()
    }

    /// The keys of `entry` and of the entries it was restored on top of.
    pub fn chain(&self, entry: &Entry) -> Vec<String> {
        self.chain_entries(entry).iter().map(|e| e.meta.key.clone()).collect()
    }

    /// `entry` and the entries it was restored on top of, nearest first.
    pub fn chain_entries<'e>(&'e self, entry: &'e Entry) -> Vec<&'e Entry> {
        let mut entries = vec![entry];
        while let Some(key) = &entries[entries.len() - 1].meta.key_inputs.parent_key {
            match self.done.values().find(|e| &e.meta.key == key) {
                Some(parent) if entries.len() <= self.done.len() => entries.push(parent),
                _ => break,
            }
        }
        entries
    }

    /// The cache entry for staging output `name` of `recipe` (rendered for
    /// one variant combination): from this invocation, from the cache, or
    /// built now.
    pub fn ensure(&mut self, recipe: &Recipe, name: &str) -> Result<Entry> {
        let staging = recipe
            .staging(name)
            .ok_or_else(|| miette!("unknown staging output `{name}`"))?;
        let id = (name.to_string(), crate::hash::hash_input(&staging.used_variant));
        if let Some(e) = self.done.get(&id) {
            return Ok(e.clone());
        }
        if !self.prepared {
            self.store.create()?;
            self.store.sweep();
            self.prepared = true;
        }
        let parent = match &staging.inherit {
            Some(p) => Some(self.ensure(recipe, p)?),
            None => None,
        };
        let label = format!("staging {}", describe(name, &self.variant(staging)));
        let resolved = self.resolve(recipe, staging, &label)?;
        let parent_key = parent.as_ref().map(|e| e.meta.key.clone());
        let inputs = self.key_inputs(recipe, staging, parent_key, &resolved)?;
        let key = inputs.key();
        // Staging builds and their inheritors share these directories.
        let dirs = BuildDirs::new(&self.opts.output_dir, &recipe.shared_build_name());

        let entry = match self.hit(&key, &dirs, &label, "")? {
            Hit::Usable(entry) => *entry,
            first => {
                let build_lock = self.store.build_lock(&key)?;
                // Another process may have built it while we waited.
                let second = match first {
                    Hit::Missing => self.hit(&key, &dirs, &label, " (built by another kiln process)")?,
                    other => other,
                };
                match second {
                    Hit::Usable(entry) => *entry,
                    miss => {
                        // An entry not usable at this run's paths stays where it is.
                        let publish = matches!(miss, Hit::Missing);
                        if publish {
                            self.explain_miss(&label, name, &key, &inputs);
                        }
                        let built = self.build(
                            recipe,
                            staging,
                            &label,
                            parent.as_ref(),
                            &resolved,
                            inputs,
                            &key,
                            &dirs,
                            publish,
                        )?;
                        drop(build_lock);
                        if !publish {
                            self.private.push(built.dir.clone());
                        }
                        built
                    }
                }
            }
        };
        self.store.touch(&entry);
        self.done.insert(id, entry.clone());
        Ok(entry)
    }

    /// Look up `key`; a usable entry's use lock is held from now on.
    fn hit(&mut self, key: &str, dirs: &BuildDirs, label: &str, how: &str) -> Result<Hit> {
        let Some((entry, lock)) = self.store.open(key)? else {
            return Ok(Hit::Missing);
        };
        if let Some(reason) = transfer::unrelocatable(&entry, &dirs.host_prefix, &dirs.work_dir)? {
            tracing::info!(
                "{label}: cache miss: staging_{key} cannot be used here ({reason}); rebuilding for this run"
            );
            return Ok(Hit::Unusable);
        }
        ui::print_line(&format!("✔ {label}: cache hit staging_{key}{how}, script skipped"));
        self.held.push(lock);
        Ok(Hit::Usable(Box::new(entry)))
    }

    /// Solve the staging environments (needed for the key even on a hit;
    /// repodata is cached, so this is cheap when nothing changed).
    fn resolve(&self, recipe: &Recipe, staging: &StagingOutput, label: &str) -> Result<Resolved> {
        let id = (staging.name.clone(), crate::hash::hash_input(&staging.used_variant));
        if let Some(r) = self.solved.borrow().get(&id) {
            return Ok(r.clone());
        }
        let resolved = dependencies::resolve_staging(self.envs, recipe, staging, self.opts, label)?;
        self.solved.borrow_mut().insert(id, resolved.clone());
        Ok(resolved)
    }

    fn key_inputs(
        &self,
        recipe: &Recipe,
        staging: &StagingOutput,
        parent_key: Option<String>,
        resolved: &Resolved,
    ) -> Result<KeyInputs> {
        let (script, script_env, secrets) = match &staging.script {
            Some(s) => (
                script::resolve_body(recipe, s)?.key_text(),
                s.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                s.secrets.clone(),
            ),
            None => (String::new(), BTreeMap::new(), Vec::new()),
        };
        let specs = |deps: &[crate::recipe::model::Dependency]| deps.iter().map(|d| d.spec.clone()).collect();
        let p = self.opts.platforms;
        Ok(KeyInputs {
            format: CACHE_FORMAT_VERSION,
            build_logic: BUILD_LOGIC_VERSION,
            name: staging.name.clone(),
            version: recipe.staging_version(),
            // Secret values that reached the script through `env.get` do not
            // enter the key or the entry's metadata.
            script: crate::redact::mask(&script).into_owned(),
            script_env: script_env
                .into_iter()
                .map(|(k, v): (String, String)| (k, crate::redact::mask(&v).into_owned()))
                .collect(),
            secrets,
            build_requirements: specs(&staging.requirements.build),
            host_requirements: specs(&staging.requirements.host),
            build_packages: resolved.build_refs(),
            host_packages: resolved.host_refs(),
            ignore_run_exports: serde_json::to_value(&staging.requirements.ignore_run_exports).into_diagnostic()?,
            variant: self.variant(staging),
            target_platform: p.target.as_str().to_string(),
            host_platform: p.host.as_str().to_string(),
            build_platform: p.build.as_str().to_string(),
            sources: source_keys(
                recipe,
                &staging.source,
                &self.opts.output_dir,
                &self.opts.allow_insecure_host,
            )?,
            recipe_files: self.recipe_files(recipe, &staging.source)?,
            parent_key,
        })
    }

    /// The cache key staging output `name` of `recipe` has in this run,
    /// computed (once per run) without building it or looking it up.
    pub fn key(&self, recipe: &Recipe, name: &str) -> Result<String> {
        let staging = recipe
            .staging(name)
            .ok_or_else(|| miette!("unknown staging output `{name}`"))?;
        let id = (name.to_string(), crate::hash::hash_input(&staging.used_variant));
        if let Some(e) = self.done.get(&id) {
            return Ok(e.meta.key.clone());
        }
        if let Some(key) = self.keys.borrow().get(&id) {
            return Ok(key.clone());
        }
        let parent_key = match &staging.inherit {
            Some(p) => Some(self.key(recipe, p)?),
            None => None,
        };
        let label = format!("staging {}", describe(name, &self.variant(staging)));
        let resolved = self.resolve(recipe, staging, &label)?;
        let key = self.key_inputs(recipe, staging, parent_key, &resolved)?.key();
        self.keys.borrow_mut().insert(id, key.clone());
        Ok(key)
    }

    /// Hashes of the files in the recipe directory (the output and cache
    /// directories, and the local `sources`, which are inputs of their
    /// own, left out): computed once per run for each set of sources.
    pub fn recipe_files(&self, recipe: &Recipe, sources: &[Source]) -> Result<BTreeMap<String, String>> {
        let mut exclude: Vec<std::path::PathBuf> =
            vec![self.opts.output_dir.clone(), self.opts.staging_cache_dir.clone()];
        // Local sources are in the key as sources already.
        exclude.extend(sources.iter().filter_map(|s| match s {
            Source::Path(p) => Some(recipe.dir.join(&p.path)),
            // A repository that holds the recipe (`git: ..`) stays in: its
            // commit does not cover uncommitted files the script may read.
            Source::Git(g) => Some(std::path::PathBuf::from(sources::git::repository(g, &recipe.dir))).filter(|repo| {
                !recipe.dir.starts_with(repo) && !std::fs::canonicalize(&recipe.dir).is_ok_and(|d| d.starts_with(repo))
            }),
            Source::Url(_) => None,
        }));
        let refs: Vec<&std::path::Path> = exclude.iter().map(|p| p.as_path()).collect();
        let id = (recipe.dir.clone(), exclude.clone());
        let mut cache = self.recipe_files.borrow_mut();
        if let Some(hit) = cache.get(&id) {
            return Ok(hit.clone());
        }
        let files = recipe_files(recipe, &refs)?;
        cache.insert(id, files.clone());
        Ok(files)
    }

    /// The variant values of a staging output: the keys it uses, and the
    /// target platform. Its script sees exactly these.
    fn variant(&self, staging: &StagingOutput) -> BTreeMap<String, String> {
        let mut v: BTreeMap<String, String> = staging
            .used_variant
            .iter()
            .map(|(k, v)| (k.clone(), variant_text(v)))
            .collect();
        v.insert(
            "target_platform".to_string(),
            self.opts.platforms.target.as_str().to_string(),
        );
        v
    }

    fn explain_miss(&self, label: &str, name: &str, key: &str, inputs: &KeyInputs) {
        match self.store.newest_for(name, &inputs.variant) {
            Some(old) => {
                let changed = inputs.changed_since(&old.meta.key_inputs);
                let what = if changed.is_empty() {
                    "its inputs".to_string()
                } else {
                    changed.join(", ")
                };
                tracing::info!(
                    "{label}: cache miss (staging_{key}): {what} changed since staging_{}",
                    old.meta.key
                );
            }
            None => tracing::info!("{label}: cache miss (staging_{key}), building"),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        &mut self,
        recipe: &Recipe,
        staging: &StagingOutput,
        label: &str,
        parent: Option<&Entry>,
        resolved: &Resolved,
        inputs: KeyInputs,
        key: &str,
        dirs: &BuildDirs,
        publish: bool,
    ) -> Result<Entry> {
        let label = label.to_string();
        ui::step(&label, "preparing directories");
        let dir_lock = dirs.lock().into_diagnostic()?;
        dirs.create().into_diagnostic()?;
        resolve::install(self.envs, resolved, dirs.prefixes(), self.opts.platforms, &label)?;
        let mut host_libraries = parent.map(|p| p.meta.host_libraries.clone()).unwrap_or_default();
        host_libraries.extend(package::linking::installed_libraries(&dirs.host_prefix)?);
        let mut sysroot_libraries = parent.map(|p| p.meta.sysroot_libraries.clone()).unwrap_or_default();
        for prefix in [&dirs.build_prefix, &dirs.host_prefix] {
            sysroot_libraries.extend(package::linking::sysroot_libraries(prefix));
        }
        // Files of installed packages are not the staging build's output.
        let before = select::snapshot(&dirs.host_prefix)?;
        if let Some(parent) = parent {
            restore_into(parent, dirs, &label)?;
        }
        ui::step(&label, "placing sources");
        let finalized_sources = sources::fetch(
            recipe,
            &staging.source,
            &dirs.work_dir,
            &self.opts.output_dir,
            &self.opts.allow_insecure_host,
        )?;
        crate::build::source_info::write(
            &dirs.build_dir,
            recipe,
            self.opts,
            crate::build::source_info::Placed::Staging(staging.name.clone()),
            finalized_sources.clone(),
            parent.is_some(),
        )?;
        let started = Instant::now();
        if let Some(s) = &staging.script {
            let identity = BuildIdentity {
                name: staging.name.clone(),
                version: recipe.staging_version(),
                build_number: None,
                build_string: None,
                hash: None,
                noarch_python: false,
            };
            run_script(recipe, self.opts, dirs, s, &identity, &self.variant(staging), &label)?;
        }
        let script_seconds = started.elapsed().as_secs_f64();

        ui::step(&label, "caching");
        let started = Instant::now();
        let tmp = if publish {
            self.store.begin(key)?
        } else {
            let (dir, alive) = self.store.begin_private(key)?;
            self.held.push(alive);
            dir
        };
        let files = transfer::capture(&dirs.host_prefix, &before, &dirs.work_dir, &tmp)?;
        let (size_bytes, work_dir_entries) = tree_size(&tmp)?;
        let run_exports =
            dependencies::staging_exports(staging, &resolved.exports, parent.map(|p| &p.meta.run_exports));
        let meta = Metadata {
            run_exports,
            format: CACHE_FORMAT_VERSION,
            kiln_version: env!("CARGO_PKG_VERSION").to_string(),
            name: staging.name.clone(),
            key: key.to_string(),
            sources: finalized_sources,
            key_inputs: inputs,
            prefix: dirs.host_prefix.clone(),
            work_dir: dirs.work_dir.clone(),
            files,
            host_libraries,
            sysroot_libraries,
            work_dir_entries,
            size_bytes,
            timings: Timings {
                script_seconds,
                capture_seconds: started.elapsed().as_secs_f64(),
            },
            created: chrono::Utc::now().timestamp(),
        };
        if !self.opts.keep_build {
            fs_err::remove_dir_all(&dirs.build_dir).into_diagnostic()?;
        }
        drop(dir_lock);
        let committing = Instant::now();
        let entry = if publish {
            // Hold the use lock before the entry exists, so that nothing removes it under us.
            self.held.push(self.store.use_lock(key)?);
            self.store.commit(&tmp, meta)?
        } else {
            self.store.keep_private(&tmp, meta)?
        };
        ui::print_line(&format!(
            "✔ {label}: cached {} prefix files ({:.1} MB with the work dir) as staging_{key}{}",
            entry.meta.files.len(),
            size_bytes as f64 / 1e6,
            if publish { "" } else { " (for this run only)" }
        ));
        tracing::info!(
            "{label}: entry synced to disk{} in {:.2} s",
            if publish { " and published" } else { "" },
            committing.elapsed().as_secs_f64()
        );
        Ok(entry)
    }
}

/// What the cache holds for a key.
enum Hit {
    /// A complete entry that can be restored into this run's directories.
    Usable(Box<Entry>),
    /// A complete entry that cannot (a path would have to grow in a binary file).
    Unusable,
    /// Nothing.
    Missing,
}

/// `name`, followed by the variant values that set it apart (if any):
/// `foo-core (libfoo=1.0)`.
pub fn describe(name: &str, variant: &BTreeMap<String, String>) -> String {
    let values: Vec<String> = variant
        .iter()
        .filter(|(k, _)| k.as_str() != "target_platform")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if values.is_empty() {
        name.to_string()
    } else {
        format!("{name} ({})", values.join(", "))
    }
}

/// Bytes of regular files below `dir`, and the number of work-dir entries.
fn tree_size(dir: &std::path::Path) -> Result<(u64, usize)> {
    let mut bytes = 0;
    let mut work_entries = 0;
    let work = dir.join("work_dir");
    for e in walkdir::WalkDir::new(dir).follow_links(false) {
        let e = e.into_diagnostic()?;
        if e.file_type().is_file() {
            bytes += e.metadata().into_diagnostic()?.len();
        }
        if e.path().starts_with(&work) && e.path() != work {
            work_entries += 1;
        }
    }
    Ok((bytes, work_entries))
}
