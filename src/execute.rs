//! Executing a build plan: for each output, fresh directories, sources,
//! the build script, file selection and packaging; then the channel index.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use miette::{miette, IntoDiagnostic, Result};
use rattler_conda_types::Subdir;

use crate::build::dirs::BuildDirs;
use crate::build::env::{build_env, BuildIdentity, EnvInputs};
use crate::build::{script, sources};
use crate::package::{self, archive::Format, metadata::InfoInputs, select};
use crate::plan::PlannedOutput;
use crate::recipe::jinja::Platforms;
use crate::recipe::model::{Script, ScriptBody};
use crate::recipe::Recipe;
use crate::{render, ui};

/// Settings shared by every output of one invocation.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Absolute output directory.
    pub output_dir: PathBuf,
    /// Archive format.
    pub format: Format,
    /// Platforms.
    pub platforms: Platforms,
    /// Keep `bld/` directories after success.
    pub keep_build: bool,
    /// Timestamp written into packages (seconds).
    pub timestamp: i64,
}

/// Build every planned output in order and index the channel.
pub fn build_all(recipe: &Recipe, plan: &[PlannedOutput], opts: &BuildOptions) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut subdirs: Vec<Subdir> = Vec::new();
    for p in plan {
        let path = build_one(recipe, plan, p, opts)?;
        let subdir: Subdir = p.subdir.parse().map_err(|e| miette!("{e}"))?;
        if !subdirs.contains(&subdir) {
            subdirs.push(subdir);
        }
        written.push(path);
    }
    if !subdirs.contains(&opts.platforms.build) {
        subdirs.push(opts.platforms.build);
    }
    ui::step("channel", "indexing");
    crate::channel::index(&opts.output_dir, &subdirs)?;
    Ok(written)
}

fn build_one(recipe: &Recipe, plan: &[PlannedOutput], p: &PlannedOutput, opts: &BuildOptions) -> Result<PathBuf> {
    let id = p.identifier();
    let output = &p.output;
    ui::step(&id, "preparing directories");
    let dirs = BuildDirs::new(&opts.output_dir, output.package.name.as_normalized());
    let _lock = dirs.lock().into_diagnostic()?;
    dirs.create().into_diagnostic()?;

    if !output.requirements.build.is_empty() || !output.requirements.host.is_empty() {
        tracing::warn!(
            "{id}: build/host requirements are recorded but not installed yet (environment resolution is not implemented)"
        );
    }

    ui::step(&id, "placing sources");
    sources::fetch(recipe, &output.source, &dirs.work_dir, &opts.output_dir)?;

    let before = select::snapshot(&dirs.host_prefix)?;
    if let Some(s) = &output.build.script {
        let body = script_body(recipe, s)?;
        let secrets = secrets(recipe, s)?;
        let variant: BTreeMap<String, String> = p
            .variant
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()),
                )
            })
            .collect();
        let identity = BuildIdentity {
            name: output.package.name.as_normalized().to_string(),
            version: output.package.version.as_str().to_string(),
            build_number: Some(output.build.number),
            build_string: Some(p.build_string.clone()),
            hash: Some(p.hash.to_string()),
        };
        let env = build_env(&EnvInputs {
            dirs: &dirs,
            recipe_dir: &recipe.dir,
            identity: &identity,
            target: opts.platforms.target,
            build: opts.platforms.build,
            variant: &variant,
            timestamp: opts.timestamp,
            script_env: &s.env,
        });
        ui::step(&id, "running build script");
        let run = script::ScriptRun {
            label: &id,
            body: &body,
            work_dir: &dirs.work_dir,
            env: &env,
            secrets: &secrets,
        };
        if let Err(failed) = script::run(&run)? {
            return Err(script_error(recipe, s, &id, failed));
        }
    }

    ui::step(&id, "collecting files");
    let after = select::snapshot(&dirs.host_prefix)?;
    let new_files = select::new_files(&before, &after);
    let files = package::select_files(recipe, output, &new_files)?;
    if files.is_empty() {
        tracing::warn!("{id}: the package contains no files");
    }

    ui::step(&id, "packaging");
    let rendered = render::rendered_output(recipe, plan, p, opts, Some(&dirs));
    let depends: Vec<String> = output.requirements.run.iter().map(|d| d.spec.clone()).collect();
    let constrains: Vec<String> = output
        .requirements
        .run_constraints
        .iter()
        .map(|d| d.spec.clone())
        .collect();
    let variant_json = serde_json::to_value(&p.variant).into_diagnostic()?;
    let hash_input = crate::hash::hash_input(&p.variant);
    let info = InfoInputs {
        recipe,
        output,
        build_string: &p.build_string,
        subdir: &p.subdir,
        target: opts.platforms.target,
        hash_input: &hash_input,
        variant: &variant_json,
        timestamp: opts.timestamp,
        rendered: &rendered,
        depends: &depends,
        constrains: &constrains,
        work_dir: &dirs.work_dir,
        output_dir: &opts.output_dir,
    };
    let dest = opts.output_dir.join(&p.subdir);
    let path = package::create(
        &info,
        &dirs.host_prefix,
        &files,
        &dirs.build_dir.join("pkg"),
        &dest,
        opts.format,
    )?;
    ui::print_line(&format!(
        "✔ {} ({} file{})",
        path.display(),
        files.len(),
        if files.len() == 1 { "" } else { "s" }
    ));
    if !opts.keep_build {
        fs_err::remove_dir_all(&dirs.build_dir).into_diagnostic()?;
    }
    Ok(path)
}

/// The script text to run: inline commands, a file, or a one-line name of a
/// file in the recipe directory (`.sh` appended when missing).
fn script_body(recipe: &Recipe, s: &Script) -> Result<String> {
    let read = |p: &Path| fs_err::read_to_string(p).into_diagnostic();
    match &s.body {
        ScriptBody::Inline(text) => {
            let one_line = text.trim();
            if !one_line.contains('\n') && !one_line.is_empty() && !one_line.contains(char::is_whitespace) {
                for candidate in [recipe.dir.join(one_line), recipe.dir.join(format!("{one_line}.sh"))] {
                    if candidate.is_file() {
                        return read(&candidate);
                    }
                }
            }
            Ok(text.clone())
        }
        ScriptBody::File { file } => {
            let direct = recipe.dir.join(file);
            let with_ext = recipe.dir.join(format!("{}.sh", file.display()));
            if direct.is_file() {
                read(&direct)
            } else if with_ext.is_file() {
                read(&with_ext)
            } else {
                Err(miette!(
                    "{}: script file {} does not exist",
                    recipe.file.location(&s.span),
                    direct.display()
                ))
            }
        }
    }
}

fn secrets(recipe: &Recipe, s: &Script) -> Result<BTreeMap<String, String>> {
    s.secrets
        .iter()
        .map(|name| match std::env::var(name) {
            Ok(v) => Ok((name.clone(), v)),
            Err(_) => Err(miette!(
                help = format!("export {name} before running kiln, or remove it from `secrets`"),
                "{}: secret `{name}` is not set in the environment",
                recipe.file.location(&s.span)
            )),
        })
        .collect()
}

/// Explain a failed script, pointing at the recipe line of the failing command when it can be found.
fn script_error(recipe: &Recipe, s: &Script, id: &str, failed: script::ScriptFailed) -> miette::Report {
    let help = format!("the full log is in {}", failed.log.display());
    let Some(command) = failed.command else {
        let at = recipe.file.location(&s.span);
        return miette!(
            help = help,
            "{at}: build script of {id} failed (exit code {})",
            failed.code
        );
    };
    let first = command.lines().next().unwrap_or_default().trim().to_string();
    let span = s
        .lines
        .iter()
        .find(|(line, _)| line.contains(&first))
        .map_or(s.span, |(_, span)| *span);
    miette!(
        help = help,
        "{}: build script of {id} failed: command `{command}` exited with code {}",
        recipe.file.location(&span),
        failed.code
    )
}
