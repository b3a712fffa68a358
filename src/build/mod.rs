//! Executing a build: directories, sources, environment and script.

pub mod dirs;
pub mod env;
pub mod interpreter;
pub mod script;
pub mod source_info;
pub mod sources;

use std::collections::BTreeMap;
use std::path::PathBuf;

use miette::Result;

use crate::package::archive::Compression;
use crate::recipe::model::Script;
use crate::recipe::Recipe;
use crate::syntax::jinja::Platforms;
use crate::ui;
use dirs::BuildDirs;
use env::{build_env, BuildIdentity, EnvInputs};

/// Settings shared by every build of one invocation.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Absolute output directory.
    pub output_dir: PathBuf,
    /// Staging cache directory (default `<output>/build_cache`).
    pub staging_cache_dir: PathBuf,
    /// Archive format, compression level and threads.
    pub compression: Compression,
    /// Platforms.
    pub platforms: Platforms,
    /// Keep `bld/` directories after success.
    pub keep_build: bool,
    /// Timestamp written into packages (seconds).
    pub timestamp: i64,
    /// Fail when staging files end up in no package.
    pub error_unused_staging_files: bool,
    /// Fail when two outputs package the same file.
    pub error_overlapping_files: bool,
    /// `-c` arguments, in priority order (the output directory comes first).
    pub channels: Vec<String>,
    /// Hosts source downloads may reach over plain HTTP or invalid TLS.
    pub allow_insecure_host: Vec<String>,
    /// Which built packages are tested.
    pub test: crate::testing::Strategy,
    /// Fail when a binary file contains the build prefix.
    pub error_prefix_in_binary: bool,
    /// Accept absolute `license_file` paths.
    pub allow_absolute_license_paths: bool,
    /// `--skip-unchanged`: keep packages whose recorded inputs match.
    pub skip_unchanged: bool,
    /// `--skip-existing`: skip outputs whose package exists.
    pub skip_existing: crate::cli::SkipExisting,
    /// Store the recipe in `info/recipe/` (`--no-include-recipe` turns it off).
    pub include_recipe: bool,
    /// `--extra-meta`: added to `about.json`'s `extra`.
    pub extra_meta: BTreeMap<String, String>,
    /// `--channel-priority` and `--exclude-newer`.
    pub solving: crate::environment::Solving,
    /// `--experimental` (recorded for `kiln create-patch`).
    pub experimental: bool,
}

/// Run a recipe's script in `dirs` with the build environment for `identity`.
pub fn run_script(
    recipe: &Recipe,
    opts: &BuildOptions,
    dirs: &BuildDirs,
    script: &Script,
    identity: &BuildIdentity,
    variant: &BTreeMap<String, String>,
    label: &str,
) -> Result<()> {
    let prepared = prepare_script(recipe, opts, dirs, script, identity, variant)?;
    ui::step(label, "running build script");
    let started = std::time::Instant::now();
    let outcome = script::run(&prepared.run(label, dirs));
    if let Some(f) = &prepared.script_file {
        // Not part of what the build made (nor of a staging entry).
        let _ = fs_err::remove_file(f);
    }
    if let Err(failed) = outcome? {
        return Err(script::failure_report(recipe, script, label, failed));
    }
    tracing::info!(
        "{label}: build script finished in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Write the script of `kiln debug` (`conda_build.sh`, `build_env.sh`, and
/// an interpreter's script file) without running it; returns `conda_build.sh`.
pub fn write_script(
    recipe: &Recipe,
    opts: &BuildOptions,
    dirs: &BuildDirs,
    script: &Script,
    identity: &BuildIdentity,
    variant: &BTreeMap<String, String>,
) -> Result<PathBuf> {
    let prepared = prepare_script(recipe, opts, dirs, script, identity, variant)?;
    script::write_files(&prepared.run(&identity.name, dirs))
}

/// A script ready to be written and run.
struct PreparedScript {
    shell: String,
    script_file: Option<PathBuf>,
    env: BTreeMap<String, String>,
    secrets: BTreeMap<String, String>,
    activation: String,
}

impl PreparedScript {
    fn run<'a>(&'a self, label: &'a str, dirs: &'a BuildDirs) -> script::ScriptRun<'a> {
        script::ScriptRun {
            label,
            body: &self.shell,
            work_dir: &dirs.work_dir,
            script_dir: &dirs.build_dir,
            env: &self.env,
            secrets: &self.secrets,
            activation: &self.activation,
        }
    }
}

/// The script's body, environment, secrets and activation for `identity`.
fn prepare_script(
    recipe: &Recipe,
    opts: &BuildOptions,
    dirs: &BuildDirs,
    script: &Script,
    identity: &BuildIdentity,
    variant: &BTreeMap<String, String>,
) -> Result<PreparedScript> {
    let body = script::resolve_body(recipe, script)?;
    let mut secrets = script::secrets(recipe, script)?;
    secrets.extend(script::step_secrets(script));
    let mut env = build_env(&EnvInputs {
        dirs,
        recipe_dir: &recipe.dir,
        identity,
        target: opts.platforms.target,
        build: opts.platforms.build,
        variant,
        timestamp: opts.timestamp,
        script_env: &script.env,
    });
    // Build-time variables (`${{ PYTHON }}`) take this environment's values.
    let late = |text: &str| {
        crate::syntax::deferred::substitute(text, |name| env.get(name).cloned()).map_err(|missing| {
            recipe.file.error(
                &script.span,
                missing.to_string(),
                "add what provides it to the requirements, or use the shell variable instead",
            )
        })
    };
    let mut body = body;
    if body.rendered {
        body.text = late(&body.text)?;
        if crate::redact::mask(&body.text) != body.text.as_str() {
            return Err(recipe
                .file
                .error(
                    &script.span,
                    "the script text contains the value of a secret",
                    "a build-time variable here holds a secret",
                )
                .into());
        }
    }
    let mut values = BTreeMap::new();
    for k in script.env.keys() {
        values.insert(k.clone(), late(&env[k])?);
    }
    env.extend(values);
    let activation = crate::environment::activation::script(
        &dirs.host_prefix,
        opts.platforms.host,
        &dirs.build_prefix,
        opts.platforms.build,
    )?;
    let (shell, script_file) = interpreted(recipe, script, &body, dirs, &env)?;
    Ok(PreparedScript {
        shell,
        script_file,
        env,
        secrets,
        activation,
    })
}

/// The bash text that runs `body`: the body itself, or (another
/// interpreter) a command running the interpreter from the build prefix,
/// the host prefix or `PATH` on the body, written into the work directory
/// as `conda_build_script.<ext>` (as rattler-build does, so that a
/// `build.py` imports modules beside it), with that file to remove after.
fn interpreted(
    recipe: &Recipe,
    script: &Script,
    body: &script::Body,
    dirs: &BuildDirs,
    env: &BTreeMap<String, String>,
) -> Result<(String, Option<PathBuf>)> {
    let i = body.interpreter;
    if i == interpreter::BASH {
        return Ok((body.text.clone(), None));
    }
    let path = env.get("PATH").map(String::as_str).unwrap_or_default();
    let exe = interpreter::locate(&i, &dirs.build_prefix, &dirs.host_prefix, path).ok_or_else(|| {
        miette::miette!(
            help = format!("add `{}` to `requirements.build`", i.package),
            "{}: the script needs the {} interpreter (`{}`), which is in neither the build nor the host environment nor on PATH",
            recipe.file.location(&script.interpreter_span.unwrap_or(script.span)),
            i.name,
            i.exe
        )
    })?;
    let file = dirs.work_dir.join(format!("conda_build_script.{}", i.ext));
    fs_err::write(&file, &body.text).map_err(|e| miette::miette!("{e}"))?;
    let command = format!(
        "{} {}",
        script::shell_quote(&exe.to_string_lossy()),
        script::shell_quote(&file.to_string_lossy())
    );
    Ok((command, Some(file)))
}
