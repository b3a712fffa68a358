//! `build.steps` (experimental): steps run in order, each in its own
//! subshell with its own `env` and `cwd`; `if` drops a step; staging
//! outputs take steps too; a failing step is located; without
//! `--experimental` the key is an error at its line.

mod common;

use std::fs;

use common::*;

const STEPS: &str = r#"package:
  name: stepped
  version: '1.0'
build:
  steps:
    - run:
        - mkdir -p $PREFIX/share sub
        - echo "$GREETING" > $PREFIX/share/one.txt
        - export LEAK=leaked
        - cd sub
      env:
        GREETING: hello
    - if: linux
      run: echo "${LEAK:-none} ${GREETING:-none} $(basename "$PWD")" > $PREFIX/share/two.txt
      cwd: sub
    - if: win
      run: exit 1
    - if: linux
      then:
        - run: touch $PREFIX/share/three.txt
"#;

#[test]
fn steps_run_in_order_isolated_and_conditional() {
    let dir = tempfile::tempdir().unwrap();
    let r = write_recipe(dir.path(), "stepped", STEPS);
    let out = dir.path().join("out");
    build_ok(&r, &out, &["--experimental"]);
    let x = extract(&packages(&out)[0]);
    assert_eq!(
        content_files(x.path()),
        ["share/one.txt", "share/three.txt", "share/two.txt"]
    );
    assert_eq!(fs::read_to_string(x.path().join("share/one.txt")).unwrap(), "hello\n");
    // Nothing of step one (its variable, export or `cd`) reaches step two,
    // which runs in its own `cwd`.
    assert_eq!(
        fs::read_to_string(x.path().join("share/two.txt")).unwrap(),
        "none none sub\n"
    );
    // The rendered recipe keeps the steps that apply.
    let rendered = fs::read_to_string(x.path().join("info/recipe/rendered_recipe.yaml")).unwrap();
    assert!(
        rendered.contains("touch $PREFIX/share/three.txt") && !rendered.contains("exit 1"),
        "{rendered}"
    );
}

#[test]
fn steps_need_experimental_and_exclude_script() {
    let dir = tempfile::tempdir().unwrap();
    let r = write_recipe(dir.path(), "stepped", STEPS);
    let out = dir.path().join("out");
    let o = build(&r, &out, &[]);
    assert_failed_with(
        &o,
        &out,
        &[
            "recipe.yaml:5:3",
            "`build.steps` is an experimental feature",
            "--experimental",
        ],
    );

    let both = STEPS.replace("build:\n", "build:\n  script: echo hi\n");
    let r = write_recipe(dir.path(), "both", &both);
    let o = build(&r, &out, &["--experimental"]);
    assert_failed_with(
        &o,
        &out,
        &["recipe.yaml:6:3", "`script` and `steps` are mutually exclusive"],
    );
}

#[test]
fn staging_steps_build_once_and_a_failing_step_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let text = |last: &str| {
        format!(
            r#"recipe:
  name: staged-steps
  version: '1.0'
outputs:
  - staging:
      name: build-it
    build:
      steps:
        - run: mkdir -p $PREFIX/lib && echo lib > $PREFIX/lib/a.txt
        - run:
            - true
            - {last}
  - package:
      name: staged-steps
    inherit: build-it
"#
        )
    };
    let r = write_recipe(dir.path(), "staged", &text("echo more > $PREFIX/lib/b.txt"));
    let out = dir.path().join("out");
    build_ok(&r, &out, &["--experimental"]);
    let x = extract(&packages(&out)[0]);
    assert_eq!(content_files(x.path()), ["lib/a.txt", "lib/b.txt"]);

    let r = write_recipe(dir.path(), "failing", &text("test -f $PREFIX/lib/missing.txt"));
    let out = dir.path().join("out-failing");
    let o = build(&r, &out, &["--experimental"]);
    assert_failed_with(&o, &out, &["recipe.yaml:12:15", "test -f $PREFIX/lib/missing.txt"]);
}

#[test]
fn the_command_that_ended_the_script_is_named_not_an_earlier_tolerated_one() {
    let dir = tempfile::tempdir().unwrap();
    let text = "package: {name: tolerant, version: '1.0'}\nbuild:\n  script:\n    - set +e\n    - grep -q nothing /dev/null\n    - set -e\n    - test -f $PREFIX/share/missing.txt\n";
    let r = write_recipe(dir.path(), "tolerant", text);
    let out = dir.path().join("out");
    let o = build(&r, &out, &[]);
    assert_failed_with(
        &o,
        &out,
        &["recipe.yaml:7:7", "command `test -f $PREFIX/share/missing.txt`"],
    );
}

#[test]
fn a_staging_build_takes_only_script_or_steps() {
    let dir = tempfile::tempdir().unwrap();
    let text = "recipe: {name: s, version: '1.0'}\noutputs:\n  - staging: {name: b}\n    build:\n      string: custom\n      script: [true]\n  - package: {name: s}\n    inherit: b\n";
    let r = write_recipe(dir.path(), "s", text);
    let out = dir.path().join("out");
    let o = build(&r, &out, &["--experimental"]);
    assert_failed_with(
        &o,
        &out,
        &["recipe.yaml:5:7", "`build.string` is not allowed in a staging output"],
    );
}
