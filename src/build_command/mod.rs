//! `kiln build`: plan every recipe the arguments name, order them so that
//! a recipe whose packages another needs builds first, build each into
//! the one output channel, and report what became of each.

use std::collections::BTreeMap;
use std::path::PathBuf;

use miette::{IntoDiagnostic, Result};

use crate::cli::BuildArgs;
use crate::recipe_set;
use crate::{rendered, ui};

pub(crate) mod prepare;
mod summary;

use summary::Outcome;
pub use summary::Report;

/// Run `kiln build`.
pub fn run(args: BuildArgs, settings: &crate::config::Settings) -> Result<()> {
    match build(&args, settings)? {
        Some((report, output_dir)) => report.finish(&output_dir),
        None => Ok(()),
    }
}

/// Build what `args` name; the report of what became of each recipe and
/// the output directory (`None` for `--render-only`). The first failure
/// is the error, unless `--continue-on-failure`.
pub fn build(args: &BuildArgs, settings: &crate::config::Settings) -> Result<Option<(Report, PathBuf)>> {
    let mut report = Report::default();
    let result = build_into(args, settings, &mut report);
    ui::finish();
    if let Some(file) = args.markdown_summary.as_ref().filter(|_| !args.render_only) {
        if let Err(e) = &result {
            report.run_failed(e);
        }
        let written = report.write_markdown(file);
        match (&result, written) {
            // The build's own error matters more than the summary's.
            (Err(_), Err(w)) => crate::ui::print_error(&format!("{w:?}")),
            (Ok(_), Err(w)) => return Err(w),
            (_, Ok(())) => {}
        }
    }
    Ok(result?.map(|output_dir| (report, output_dir)))
}

fn build_into(args: &BuildArgs, settings: &crate::config::Settings, report: &mut Report) -> Result<Option<PathBuf>> {
    let platforms = prepare::platforms(args)?;
    if args.experimental {
        tracing::debug!("experimental features enabled");
    }
    prepare::register_proxies();
    let output_dir = prepare::absolute(&args.output_dir, !args.render_only)?;
    let paths = recipe_set::find(&args.recipes, &args.recipe_dirs, &output_dir)?;
    let overrides = prepare::overrides(args, &output_dir);
    let keep_going = args.continue_on_failure && !args.render_only;
    let mut units = Vec::new();
    // Package names of recipes that failed (or were skipped for it), and which recipe.
    let mut failed: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut shared: Vec<((Vec<String>, String), crate::environment::LazyEnvironments)> = Vec::new();
    for path in &paths {
        match prepare::unit(args, settings, &overrides, path, platforms, &output_dir) {
            Ok(unit) => units.push(unit),
            Err(e) if keep_going => {
                // Its dependants are not tried: they would find older packages elsewhere.
                let Some(names) = recipe_set::declared_names(path) else {
                    return Err(e.wrap_err(format!(
                        "{}: kiln cannot tell which recipes need this one's packages, so it stops",
                        path.display()
                    )));
                };
                report.failed(path, &e);
                crate::ui::print_error(&format!("{e:?}"));
                failed.extend(names.into_iter().map(|n| (n, path.clone())));
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(name) = &args.up_to {
        let keep = recipe_set::up_to(&units.iter().map(|u| &u.planned).collect::<Vec<_>>(), name)?;
        units.retain_mut(|u| {
            let had = !u.planned.outputs.is_empty();
            u.planned
                .outputs
                .retain(|o| keep.contains(o.output.package.name.as_normalized()));
            !had || !u.planned.outputs.is_empty()
        });
    }
    let order = recipe_set::order(&units.iter().map(|u| &u.planned).collect::<Vec<_>>())?;

    if args.render_only {
        let mut all = Vec::new();
        for &i in &order {
            let u = &units[i];
            if args.with_solve {
                all.extend(rendered::with_solve(&u.planned, &u.opts)?);
            } else {
                all.extend(
                    u.planned
                        .outputs
                        .iter()
                        .map(|p| rendered::rendered_output(p, &u.opts, None, None)),
                );
            }
        }
        println!("{}", serde_json::to_string_pretty(&all).into_diagnostic()?);
        return Ok(None);
    }

    for &i in &order {
        let unit = &units[i];
        let planned = &unit.planned;
        if planned.outputs.is_empty() {
            tracing::warn!(
                "every output of {} is skipped; nothing to build",
                planned.recipe.file.path.display()
            );
            continue;
        }
        let blocked = recipe_set::needed(planned)
            .into_iter()
            .find_map(|n| failed.get(&n).map(|from| (n, from.clone())));
        if let Some((name, from)) = blocked {
            let why = format!("it needs `{name}`, from {}, which was not built", from.display());
            tracing::error!("skipping {}: {why}", unit.path.display());
            report.add(&unit.path, Outcome::Skipped(why));
            failed.extend(
                recipe_set::provided(planned)
                    .into_iter()
                    .map(|n| (n, unit.path.clone())),
            );
            continue;
        }
        // Recipes with the same channels and solver settings share their environments.
        let key = (unit.opts.channels.clone(), format!("{:?}", unit.opts.solving));
        if !shared.iter().any(|(k, _)| *k == key) {
            shared.push((key.clone(), crate::execute::environments(planned, &unit.opts)?));
        }
        let envs = &shared.iter().find(|(k, _)| *k == key).expect("just added").1;
        let result =
            crate::preflight::check(planned).and_then(|()| crate::execute::build_all_in(planned, &unit.opts, envs));
        match result {
            Ok(packages) => report.add(&unit.path, Outcome::Built(packages)),
            Err(e) => {
                report.failed(&unit.path, &e);
                if !keep_going {
                    return Err(e);
                }
                ui::finish();
                crate::ui::print_error(&format!("{e:?}"));
                failed.extend(
                    recipe_set::provided(planned)
                        .into_iter()
                        .map(|n| (n, unit.path.clone())),
                );
            }
        }
    }
    Ok(Some(output_dir))
}
