//! `--skip-existing none|local|all`: the real `kiln` binary, asserting which
//! outputs are built and that existing packages are left as they are.

mod common;

use std::fs;

use common::*;

const RECIPE: &str = "package: {name: existing, version: 'VERSION'}\nbuild:\n  script:\n    - mkdir -p $PREFIX/share\n    - echo hi > $PREFIX/share/existing.txt\n";

#[test]
fn existing_packages_are_not_built_again() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = write_recipe(dir.path(), "existing", &RECIPE.replace("VERSION", "1.0"));
    let out = dir.path().join("out");
    build_ok(&recipe, &out, &[]);
    let pkg = packages(&out).remove(0);
    let written = fs::metadata(&pkg).unwrap().modified().unwrap();

    // `--skip-existing` alone means `local`.
    for flag in [vec!["--skip-existing"], vec!["--skip-existing", "local"]] {
        let log = stderr(&build_ok(&recipe, &out, &flag));
        assert!(
            log.contains("exists in the output directory, not built (--skip-existing)"),
            "{log}"
        );
        assert!(log.contains("kiln built 0 package(s)"), "{log}");
        assert_eq!(fs::metadata(&pkg).unwrap().modified().unwrap(), written);
    }

    // `all`: a channel that has it counts; nothing lands in the new output directory.
    let elsewhere = dir.path().join("elsewhere");
    let channel = format!("file://{}", out.display());
    let log = stderr(&build_ok(
        &recipe,
        &elsewhere,
        &["--skip-existing", "all", "-c", &channel],
    ));
    assert!(log.contains(&format!("exists in {channel}")), "{log}");
    assert!(packages(&elsewhere).is_empty());
    // ... but not with `local`.
    build_ok(&recipe, &elsewhere, &["--skip-existing", "local", "-c", &channel]);
    assert_eq!(packages(&elsewhere).len(), 1);

    // A new version is built; `none` (the default) builds everything.
    fs::write(recipe.join("recipe.yaml"), RECIPE.replace("VERSION", "1.1")).unwrap();
    let log = stderr(&build_ok(&recipe, &out, &["--skip-existing"]));
    assert!(log.contains("kiln built 1 package(s)"), "{log}");
    assert_eq!(packages(&out).len(), 2);
    let log = stderr(&build_ok(&recipe, &out, &["--skip-existing", "none"]));
    assert!(log.contains("kiln built 1 package(s)"), "{log}");
}
