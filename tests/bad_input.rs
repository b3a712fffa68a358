//! Bad input: every mistake exits non-zero with a message (never a panic),
//! and every mistake that needs no script is reported before the first
//! script runs.

mod common;

use std::fs;

use common::*;

fn assert_clean_failure(o: &std::process::Output, needles: &[&str]) {
    let log = stderr(o);
    assert!(!o.status.success(), "expected a failure:\n{log}");
    assert!(!log.contains("panicked"), "kiln panicked:\n{log}");
    for n in needles {
        assert!(log.contains(n), "expected `{n}` in:\n{log}");
    }
}

#[test]
fn empty_staging_outputs_are_located_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (name, staging, needles) in [
        ("null", "staging:", ["recipe.yaml:3:5", "`staging` is empty"]),
        ("empty", "staging: {}", ["recipe.yaml:3:14", "missing `staging.name`"]),
    ] {
        let r = write_recipe(
            dir.path(),
            name,
            &format!("recipe: {{name: x, version: '1.0'}}\noutputs:\n  - {staging}\n  - package: {{name: x}}\n"),
        );
        let o = build(&r, &dir.path().join("out"), &["--experimental"]);
        assert_clean_failure(&o, &needles);
    }
}

#[test]
fn odd_cache_metadata_and_ages_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    build_ok(&recipe("staging/basic"), &out, &["--experimental"]);
    let cache = out.join("build_cache");
    let real = &cache_entries(&cache)[0];
    // An entry whose metadata names a short key (hand-edited or corrupted).
    let fake = cache.join("staging_abc");
    fs::create_dir_all(fake.join("prefix")).unwrap();
    fs::create_dir_all(fake.join("work_dir")).unwrap();
    let mut meta = json(&real.join("metadata.json"));
    meta["key"] = "abc".into();
    fs::write(fake.join("metadata.json"), meta.to_string()).unwrap();
    let list = kiln().args(["cache", "list", "--output-dir"]).arg(&out).run().unwrap();
    assert!(list.status.success(), "{}", stderr(&list));
    let table = String::from_utf8_lossy(&list.stdout);
    assert_eq!(table.lines().count(), 2, "header and the one real entry: {table}");

    for age in ["99999999999999999999w", "9999999999999999d", "-5d", "1y"] {
        let o = kiln()
            .args(["cache", "clean", &format!("--older-than={age}"), "--output-dir"])
            .arg(&out)
            .run()
            .unwrap();
        assert_clean_failure(&o, &["--older-than"]);
    }
    assert_eq!(cache_entries(&cache).len(), 1);
}

#[test]
fn out_of_range_source_date_epoch_is_an_error() {
    let out = tempfile::tempdir().unwrap();
    for epoch in ["99999999999999999", "-1", "9223372036854775807", "soon"] {
        let o = build_with_env(&recipe("multi"), out.path(), &[], &[("SOURCE_DATE_EPOCH", epoch)]);
        assert_clean_failure(&o, &["SOURCE_DATE_EPOCH"]);
    }
    assert!(packages(out.path()).is_empty());
}

#[test]
fn license_files_outside_the_recipe_and_work_directories_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let licenses = dir.path().join("elsewhere");
    std::fs::create_dir_all(licenses.join("third-party")).unwrap();
    std::fs::write(licenses.join("COPYING"), "copying\n").unwrap();
    std::fs::write(licenses.join("third-party/zlib.txt"), "zlib\n").unwrap();
    let text = |license: &str| {
        format!(
            "package: {{name: lic, version: '1.0'}}\nbuild:\n  script: [mkdir -p $PREFIX/share, touch $PREFIX/share/x]\nabout:\n  license_file: {license}\n"
        )
    };
    let copying = licenses.join("COPYING").display().to_string();
    let third = licenses.join("third-party").display().to_string();
    for (name, license, needle) in [
        ("abs", copying.as_str(), "is an absolute path"),
        ("up", "../../../../etc/passwd", "leaves the recipe and work directories"),
    ] {
        let r = write_recipe(dir.path(), name, &text(license));
        let out = dir.path().join("out");
        let o = build(&r, &out, &[]);
        assert_failed_with(&o, &out, &["recipe.yaml:5:17", needle]);
    }
    // With --allow-absolute-license-paths: a file and a directory.
    let r = write_recipe(dir.path(), "allowed", &text(&format!("[{copying}, {third}]")));
    let out = dir.path().join("out-allowed");
    build_ok(&r, &out, &["--allow-absolute-license-paths"]);
    let x = extract(&packages(&out)[0]);
    assert_eq!(
        std::fs::read_to_string(x.path().join("info/licenses/COPYING")).unwrap(),
        "copying\n"
    );
    assert_eq!(
        std::fs::read_to_string(x.path().join("info/licenses/third-party/zlib.txt")).unwrap(),
        "zlib\n"
    );
}

#[test]
fn problems_in_later_outputs_stop_the_build_before_any_script_runs() {
    let dir = tempfile::tempdir().unwrap();
    let r = write_recipe(
        dir.path(),
        "late",
        r#"
recipe: {name: late, version: "1.0"}
outputs:
  - package: {name: late-first}
    build:
      script:
        secrets: [KILN_TEST_MARK]
        content: [touch "$KILN_TEST_MARK"]
  - package: {name: late-second}
    build:
      script: {file: does-not-exist.sh}
  - package: {name: late-third}
    build:
      files: ["lib/[unclosed"]
      script:
        secrets: [KILN_TEST_UNSET_SECRET]
        content: [true]
"#,
    );
    let out = dir.path().join("out");
    let mark = dir.path().join("first-script-ran");
    let o = build_with_env(&r, &out, &[], &[("KILN_TEST_MARK", mark.to_str().unwrap())]);
    assert_failed_with(
        &o,
        &out,
        &[
            "3 problems found before building",
            "does-not-exist.sh",
            "recipe.yaml:14:15",
            "KILN_TEST_UNSET_SECRET",
        ],
    );
    assert!(!mark.exists(), "no script may run before every output is checked");
}

#[test]
fn a_failure_inside_a_command_substitution_is_not_blamed_for_the_exit() {
    let dir = tempfile::tempdir().unwrap();
    let r = write_recipe(
        dir.path(),
        "subst",
        "package: {name: subst, version: '1.0'}\nbuild:\n  script:\n    - x=$(false; echo y)\n    - exit 3\n",
    );
    let out = dir.path().join("out");
    let o = build(&r, &out, &[]);
    assert_failed_with(&o, &out, &["(exit code 3)"]);
    assert!(!stderr(&o).contains("command `false`"), "{}", stderr(&o));
}

#[test]
fn an_unsatisfiable_environment_of_a_later_output_stops_the_build_before_any_script() {
    let dir = tempfile::tempdir().unwrap();
    let r = write_recipe(
        dir.path(),
        "unsat",
        r#"
recipe: {name: unsat, version: "1.0"}
outputs:
  - package: {name: unsat-first}
    build:
      script:
        secrets: [KILN_TEST_MARK]
        content: [touch "$KILN_TEST_MARK"]
  - package: {name: unsat-second}
    requirements:
      host:
        - zlib >=99
    build:
      script: [true]
"#,
    );
    let out = dir.path().join("out");
    let mark = dir.path().join("first-script-ran");
    let channel = fixture_channel_url();
    let o = build_with_env(
        &r,
        &out,
        &["-c", &channel],
        &[("KILN_TEST_MARK", mark.to_str().unwrap())],
    );
    assert_failed_with(&o, &out, &["recipe.yaml:12:11", "zlib >=99"]);
    assert!(
        !mark.exists(),
        "the environments are solved before the first script runs"
    );
}

#[test]
fn match_specs_conda_accepts_are_read_as_conda_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let r = write_recipe(
        dir.path(),
        "specs",
        r#"
context: {version: "1.3.1", build_num: 2}
package: {name: specs, version: "1.0"}
build:
  script: [mkdir -p $PREFIX/share, touch $PREFIX/share/x]
requirements:
  run:
    - zlib ${{ version }} *_${{ build_num }}
    - numpy 1.26
    - openssl ==3.0.*
"#,
    );
    let out = dir.path().join("out");
    let o = build_ok(&r, &out, &[]);
    let log = stderr(&o);
    assert!(
        log.contains("recipe.yaml:8:7")
            && log.contains("`zlib 1.3.1 *_2` is read as conda reads it, `zlib ==1.3.1 *_2`"),
        "{log}"
    );
    assert_eq!(
        log.matches("is read as conda reads it").count(),
        3,
        "one warning per spec:\n{log}"
    );
    let index = json(&extract(&packages(&out)[0]).path().join("info/index.json"));
    assert_eq!(
        index["depends"],
        serde_json::json!(["zlib ==1.3.1 *_2", "numpy ==1.26", "openssl 3.0.*"])
    );

    // What conda refuses, kiln refuses too.
    for (name, spec) in [("four", "zlib 1.3 h1 extra"), ("ops", "numpy >>=1.2")] {
        let r = write_recipe(
            dir.path(),
            name,
            &format!("package: {{name: {name}, version: '1.0'}}\nrequirements:\n  run:\n    - {spec}\n"),
        );
        let o = build(&r, &dir.path().join("out2"), &[]);
        assert_failed_with(&o, &dir.path().join("out2"), &["recipe.yaml:4:7", "invalid match spec"]);
    }
}
