//! `kiln debug`: set up one output's build (what it needs built first, its
//! environments, sources and script) without running the script, and say
//! how to enter it.

use miette::{miette, Result};

use crate::build_command::prepare;
use crate::cli::DebugArgs;
use crate::recipe_set;

/// Run `kiln debug`.
pub fn run(args: DebugArgs, settings: &crate::config::Settings) -> Result<()> {
    let build = &args.build;
    if build.recipes.len() > 1 || !build.recipe_dirs.is_empty() {
        miette::bail!(
            help = "pass one --recipe",
            "kiln debug sets up one output of one recipe"
        );
    }
    let ignored = [
        ("--render-only", build.render_only),
        ("--with-solve", build.with_solve),
        ("--up-to", build.up_to.is_some()),
        ("--continue-on-failure", build.continue_on_failure),
        ("--markdown-summary", build.markdown_summary.is_some()),
    ];
    if let Some((flag, _)) = ignored.iter().find(|(_, set)| *set) {
        miette::bail!(
            help = "drop it: kiln debug sets up one output and stops before its script",
            "{flag} does not apply to kiln debug"
        );
    }
    let platforms = prepare::platforms(build)?;
    prepare::register_proxies();
    let output_dir = prepare::absolute(&build.output_dir, true)?;
    let path = build.recipes.first().cloned().unwrap_or_else(|| ".".into());
    let overrides = prepare::overrides(build, &output_dir);
    let mut unit = prepare::unit(build, settings, &overrides, &path, platforms, &output_dir)?;
    let names: Vec<String> = unit
        .planned
        .outputs
        .iter()
        .map(|o| o.output.package.name.as_normalized().to_string())
        .collect();
    let name = match (&args.output, names.as_slice()) {
        (_, []) => miette::bail!("every output of {} is skipped: nothing to set up", path.display()),
        (Some(n), _) => n.to_ascii_lowercase(),
        (None, [only]) => only.clone(),
        (None, [first, rest @ ..]) if rest.iter().all(|n| n == first) => first.clone(),
        (None, _) => {
            let mut distinct = names.clone();
            distinct.sort();
            distinct.dedup();
            miette::bail!(
                help = format!("pass --output NAME, one of: {}", distinct.join(", ")),
                "the recipe has several outputs"
            );
        }
    };
    let keep = recipe_set::closure(&[&unit.planned], &name, false)?;
    let outputs = &mut unit.planned.outputs;
    let target = outputs
        .iter()
        .position(|o| o.output.package.name.as_normalized() == name)
        .ok_or_else(|| miette!("no output `{name}`"))?;
    let target = outputs.remove(target);
    outputs.retain(|o| {
        keep.contains(o.output.package.name.as_normalized()) && o.output.package.name != target.output.package.name
    });
    outputs.push(target);
    crate::preflight::check(&unit.planned)?;
    let set = crate::execute::debug(&unit.planned, &unit.opts)?;
    let dirs = &set.dirs;
    let work = dirs.work_dir.display();
    crate::ui::print_line(&format!(
        "The build of {} is set up; its script has not run.\n\
         \n  work directory:  {work}\n  script:          {}\n  environment:     {}\n\
         \nEnter it and run the script by hand:\n\
         \n  cd {work} && source {}\n  bash -x {}\n\
         {}",
        set.id,
        set.script.display(),
        dirs.build_dir.join("build_env.sh").display(),
        dirs.build_dir.join("build_env.sh").display(),
        set.script.display(),
        match set.restored {
            false => format!(
                "\nAfter changing the sources, write the changes as a patch for the recipe:\n\n  kiln create-patch --directory {work}\n"
            ),
            true => "\nIts work directory holds the restored staging output, so create-patch cannot make a patch of it.\n".to_string(),
        },
    ));
    // The work directory on stdout, for scripts: `cd "$(kiln debug ...)"`.
    println!("{work}");
    Ok(())
}
