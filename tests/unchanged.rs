//! `--skip-unchanged`: the real `kiln` binary on a staging recipe with three
//! inheritors, asserting which outputs are rebuilt, which are kept (their
//! package files untouched), and what the log says about each.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

const RECIPE: &str = r#"recipe:
  name: skipper
  version: '1.0'
outputs:
  - staging:
      name: skipper-build
    build:
      script:
        secrets:
          - KILN_TEST_COUNTER
        content:
          - echo run >> "$KILN_TEST_COUNTER"
          - mkdir -p $PREFIX/lib $PREFIX/include $PREFIX/share
          - echo lib > $PREFIX/lib/a.txt
          - echo inc > $PREFIX/include/b.h
          - echo data > $PREFIX/share/c.txt
  - package:
      name: skipper-lib
    inherit: skipper-build
    build:
      files: [lib/**]
  - package:
      name: skipper-headers
    inherit: skipper-build
    build:
      files: [include/**]
  - package:
      name: skipper-data
    inherit: skipper-build
    build:
      files: [share/**]
"#;

struct Project {
    _dir: tempfile::TempDir,
    recipe: PathBuf,
    out: PathBuf,
    counter: PathBuf,
}

impl Project {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let recipe = write_recipe(dir.path(), "skipper", RECIPE);
        Project {
            out: dir.path().join("out"),
            counter: dir.path().join("counter"),
            recipe,
            _dir: dir,
        }
    }

    fn build(&self, extra: &[&str]) -> String {
        let mut args = vec!["--experimental"];
        args.extend_from_slice(extra);
        let counter = self.counter.to_string_lossy().into_owned();
        let o = build_with_env(&self.recipe, &self.out, &args, &[("KILN_TEST_COUNTER", &counter)]);
        let log = stderr(&o);
        assert!(o.status.success(), "{log}");
        log
    }

    fn staging_runs(&self) -> usize {
        fs::read_to_string(&self.counter).map_or(0, |s| s.lines().count())
    }

    fn package(&self, name: &str) -> PathBuf {
        self.out
            .join(subdir())
            .join(format!("skipper-{name}-1.0-hb0f4dca_0.conda"))
    }
}

fn modified(p: &Path) -> std::time::SystemTime {
    fs::metadata(p).unwrap().modified().unwrap()
}

fn kept(log: &str, name: &str) -> bool {
    log.contains(&format!("skipper-{name}-1.0-hb0f4dca_0: unchanged, kept"))
}

#[test]
fn only_outputs_whose_inputs_changed_are_rebuilt() {
    let p = Project::new();
    let log = p.build(&["--skip-unchanged"]);
    assert!(log.contains("is not in the output directory"), "{log}");
    assert_eq!(p.staging_runs(), 1);
    let times: Vec<_> = ["lib", "headers", "data"]
        .iter()
        .map(|n| modified(&p.package(n)))
        .collect();

    // Nothing changed: every package is kept, the staging output is not
    // even looked up, and no package file is written.
    let log = p.build(&["--skip-unchanged"]);
    for name in ["lib", "headers", "data"] {
        assert!(kept(&log, name), "{name}: {log}");
    }
    assert!(!log.contains("cache hit"), "{log}");
    assert!(!log.contains("in no package"), "{log}");
    let now: Vec<_> = ["lib", "headers", "data"]
        .iter()
        .map(|n| modified(&p.package(n)))
        .collect();
    assert_eq!(times, now);

    // Without the staging cache entry the keys still match: nothing runs.
    fs::remove_dir_all(p.out.join("build_cache")).unwrap();
    let log = p.build(&["--skip-unchanged"]);
    assert!(
        kept(&log, "lib") && kept(&log, "headers") && kept(&log, "data"),
        "{log}"
    );
    assert_eq!(p.staging_runs(), 1);

    // One inheritor's `files` change: only that one is rebuilt, and the
    // staging files the kept ones took still count as packaged.
    let text = fs::read_to_string(p.recipe.join("recipe.yaml"))
        .unwrap()
        .replace("files: [share/**]", "files: [share/*.txt]");
    fs::write(p.recipe.join("recipe.yaml"), text).unwrap();
    let log = p.build(&["--skip-unchanged"]);
    assert!(kept(&log, "lib") && kept(&log, "headers"), "{log}");
    assert!(!kept(&log, "data"), "{log}");
    assert!(
        log.contains("skipper-data-1.0-hb0f4dca_0: rebuilding: the rendered recipe changed since"),
        "{log}"
    );
    assert!(!log.contains("in no package"), "{log}");
    assert_eq!(p.staging_runs(), 2, "the staging entry was removed above");
    let data = extract(&p.package("data"));
    assert_eq!(content_files(data.path()), vec!["share/c.txt"]);

    // A package changed behind kiln's back is rebuilt.
    let mut bytes = fs::read(p.package("lib")).unwrap();
    bytes.push(0);
    fs::write(p.package("lib"), bytes).unwrap();
    let log = p.build(&["--skip-unchanged"]);
    assert!(
        log.contains("changed since it was built (its SHA-256 differs)"),
        "{log}"
    );
    assert!(
        !kept(&log, "lib") && kept(&log, "headers") && kept(&log, "data"),
        "{log}"
    );
    extract(&p.package("lib"));

    // A record of a build that skipped the tests is not used by one that tests.
    fs::remove_file(p.package("lib")).unwrap();
    let log = p.build(&["--skip-unchanged", "--no-test"]);
    assert!(
        log.contains("skipper-lib-1.0-hb0f4dca_0.conda is not in the output directory"),
        "{log}"
    );
    let log = p.build(&["--skip-unchanged", "--no-test"]);
    assert!(kept(&log, "lib"), "{log}");
    let log = p.build(&["--skip-unchanged"]);
    assert!(log.contains("was built without running its tests"), "{log}");
    assert!(!kept(&log, "lib"), "{log}");

    // Without the flag everything is built again.
    let log = p.build(&[]);
    assert!(!log.contains("unchanged, kept"), "{log}");
    assert_eq!(p.staging_runs(), 2, "a cache hit");
}
