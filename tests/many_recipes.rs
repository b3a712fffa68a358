//! Many recipes in one run (`--recipe` repeated, `--recipe-dir`, `--up-to`,
//! `--continue-on-failure`): the real `kiln` binary, asserting the order
//! recipes build in and what lands in the channel.

mod common;

use std::fs;
use std::path::Path;

use common::*;

const LIBFOO: &str = "package: {name: libfoo, version: '2.0'}\nbuild:\n  script:\n    - mkdir -p $PREFIX/share\n    - echo libfoo 2.0 > $PREFIX/share/libfoo.txt\n";

/// `app` needs `libfoo` to build (host) and to run.
const APP: &str = "package: {name: app, version: '1.0'}\nrequirements:\n  host: [libfoo]\n  run: [libfoo]\nbuild:\n  script:\n    - mkdir -p $PREFIX/share\n    - cp $PREFIX/share/libfoo.txt $PREFIX/share/app-saw.txt\n";

const OTHER: &str = "package: {name: other, version: '1.0'}\nbuild:\n  script: [mkdir -p $PREFIX/share, touch $PREFIX/share/other.txt]\n";

/// Run `kiln build` with `args` (no `--recipe` added).
fn run(out: &Path, args: &[&str]) -> std::process::Output {
    kiln()
        .arg("build")
        .arg("--output-dir")
        .arg(out)
        .args(args)
        .run()
        .expect("kiln runs")
}

/// The package names in `out`, sorted.
fn names(out: &Path) -> Vec<String> {
    package_names(out)
        .iter()
        .map(|f| f.split('-').next().unwrap().to_string())
        .collect()
}

/// The position in `log` where the build of `name` starts.
fn started(log: &str, name: &str) -> usize {
    log.find(&format!("{name}-"))
        .unwrap_or_else(|| panic!("no build of {name} in:\n{log}"))
}

#[test]
fn recipe_dir_builds_a_needed_recipe_first() {
    let dir = tempfile::tempdir().unwrap();
    let recipes = dir.path().join("recipes");
    // `app` sorts first, but needs `libfoo`.
    write_recipe(&recipes, "app", APP);
    write_recipe(&recipes, "libfoo", LIBFOO);
    // Hidden directories and the output directory are not searched.
    write_recipe(&recipes, ".hidden", "not: [a recipe");
    let out = recipes.join("out");
    write_recipe(&out, "stray", "not: [a recipe");
    let channel = empty_channel(&dir.path().join("empty"));
    let recipe_dir = recipes.to_string_lossy().into_owned();
    let o = run(&out, &["--recipe-dir", &recipe_dir, "-c", &channel]);
    let log = stderr(&o);
    assert!(o.status.success(), "{log}");
    assert!(started(&log, "libfoo") < started(&log, "app"), "{log}");
    assert!(log.contains("kiln built 2 package(s)"), "{log}");
    assert_eq!(names(&out), ["app", "libfoo"]);

    // `app` was built against the `libfoo` just built, and depends on it.
    let app = packages(&out)
        .into_iter()
        .find(|p| p.to_string_lossy().contains("app-"))
        .unwrap();
    let x = extract(&app);
    assert_eq!(
        fs::read_to_string(x.path().join("share/app-saw.txt")).unwrap(),
        "libfoo 2.0\n"
    );
    let depends = strings(&json(&x.path().join("info/index.json"))["depends"]);
    assert_eq!(depends, ["libfoo"]);

    // Repeated `--recipe` is ordered the same way.
    let out2 = dir.path().join("out2");
    let app_dir = recipes.join("app").to_string_lossy().into_owned();
    let lib_dir = recipes.join("libfoo").to_string_lossy().into_owned();
    let o = run(&out2, &["-r", &app_dir, "--recipe", &lib_dir, "-c", &channel]);
    let log = stderr(&o);
    assert!(o.status.success(), "{log}");
    assert!(started(&log, "libfoo") < started(&log, "app"), "{log}");
    assert_eq!(names(&out2), ["app", "libfoo"]);
}

#[test]
fn up_to_builds_only_what_the_named_output_needs() {
    let dir = tempfile::tempdir().unwrap();
    let recipes = dir.path().join("recipes");
    write_recipe(&recipes, "app", APP);
    write_recipe(&recipes, "libfoo", LIBFOO);
    write_recipe(&recipes, "other", OTHER);
    let channel = empty_channel(&dir.path().join("empty"));
    let recipe_dir = recipes.to_string_lossy().into_owned();
    let out = dir.path().join("out");
    let o = run(&out, &["--recipe-dir", &recipe_dir, "-c", &channel, "--up-to", "app"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(names(&out), ["app", "libfoo"]);

    let summary = dir.path().join("summary.md");
    let summary_arg = summary.to_string_lossy().into_owned();
    let o = run(
        &out,
        &[
            "--recipe-dir",
            &recipe_dir,
            "-c",
            &channel,
            "--up-to",
            "nothing",
            "--markdown-summary",
            &summary_arg,
        ],
    );
    let log = stderr(&o);
    let text = fs::read_to_string(&summary).unwrap();
    assert!(
        text.contains("**Failed:** `nothing`: no recipe has an output of that name"),
        "{text}"
    );
    assert!(!o.status.success(), "{log}");
    assert!(log.contains("`nothing`: no recipe has an output of that name"), "{log}");
    assert!(log.contains("app, libfoo, other"), "{log}");
}

#[test]
fn a_failed_recipe_stops_only_its_dependants_with_continue_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let recipes = dir.path().join("recipes");
    write_recipe(&recipes, "app", APP);
    write_recipe(
        &recipes,
        "libfoo",
        &LIBFOO.replace("    - mkdir", "    - exit 3\n    - mkdir"),
    );
    write_recipe(&recipes, "other", OTHER);
    let channel = empty_channel(&dir.path().join("empty"));
    let recipe_dir = recipes.to_string_lossy().into_owned();
    let summary = dir.path().join("summary.md");
    let summary_arg = summary.to_string_lossy().into_owned();

    // Without the flag the run stops at the first failure, and says so in the summary.
    let out = dir.path().join("out");
    let o = run(
        &out,
        &[
            "--recipe-dir",
            &recipe_dir,
            "-c",
            &channel,
            "--markdown-summary",
            &summary_arg,
        ],
    );
    assert!(!o.status.success());
    assert!(packages(&out).is_empty(), "{}", stderr(&o));
    let text = fs::read_to_string(&summary).unwrap();
    assert!(text.contains("**Not built:**"), "{text}");
    assert!(text.contains("libfoo/recipe.yaml`: failed: "), "{text}");
    fs::remove_file(&summary).unwrap();

    // With it, `other` is built; `app` is not tried; a recipe that does not plan is reported.
    write_recipe(
        &recipes,
        "broken",
        "context: {name: broken}\npackage: {name: '${{ name }}', version: '1'}\nbuild:\n  nmber: 1\n",
    );
    // Its declared name, from its context, stops what needs it.
    write_recipe(
        &recipes,
        "needs-broken",
        "package: {name: needs-broken, version: '1'}\nrequirements:\n  host: [broken]\nbuild:\n  script: [true]\n",
    );
    let o = run(
        &out,
        &[
            "--recipe-dir",
            &recipe_dir,
            "-c",
            &channel,
            "--continue-on-failure",
            "--markdown-summary",
            &summary_arg,
        ],
    );
    let log = stderr(&o);
    assert!(!o.status.success(), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert_eq!(names(&out), ["other"]);
    assert!(log.contains("4 recipe(s) were not built:"), "{log}");
    assert!(log.contains("4 of 5 recipes were not built"), "{log}");
    let skipped = "not built: it needs `libfoo`, from";
    assert!(log.contains(skipped), "{log}");
    let text = fs::read_to_string(&summary).unwrap();
    assert!(text.starts_with("### kiln build: 5 recipes"), "{text}");
    assert!(text.contains("| `other-1.0-"), "{text}");
    for needle in [
        "app/recipe.yaml`: not built: it needs `libfoo`",
        "libfoo/recipe.yaml`: failed: ",
        "broken/recipe.yaml`: failed: ",
        "needs-broken/recipe.yaml`: not built: it needs `broken`",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }

    // A recipe that is not even YAML hides which recipes need it: the run stops.
    write_recipe(&recipes, "broken", "package: {name: broken\n");
    let out2 = dir.path().join("out2");
    let o = run(
        &out2,
        &["--recipe-dir", &recipe_dir, "-c", &channel, "--continue-on-failure"],
    );
    assert_failed_with(&o, &out2, &["kiln cannot tell which recipes need this one's packages"]);
}

#[test]
fn recipes_that_need_each_other_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let recipes = dir.path().join("recipes");
    write_recipe(
        &recipes,
        "a",
        "package: {name: a, version: '1'}\nrequirements:\n  host: [b]\nbuild:\n  script: [true]\n",
    );
    write_recipe(
        &recipes,
        "b",
        "package: {name: b, version: '1'}\nrequirements:\n  run: [a]\nbuild:\n  script: [true]\n",
    );
    let recipe_dir = recipes.to_string_lossy().into_owned();
    let out = dir.path().join("out");
    let o = run(&out, &["--recipe-dir", &recipe_dir]);
    assert_failed_with(
        &o,
        &out,
        &[
            "these recipes need each other's packages",
            "a/recipe.yaml needs b",
            "b/recipe.yaml needs a",
        ],
    );

    let o = run(&out, &["--recipe-dir", &dir.path().join("empty-dir").to_string_lossy()]);
    assert_failed_with(&o, &out, &["not a directory"]);
    fs::create_dir_all(dir.path().join("empty-dir")).unwrap();
    let o = run(&out, &["--recipe-dir", &dir.path().join("empty-dir").to_string_lossy()]);
    assert_failed_with(&o, &out, &["no recipe.yaml below it"]);
}
