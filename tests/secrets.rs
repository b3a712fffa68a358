//! Secrets never leave the build (channel credentials, `secrets` values,
//! the script's environment file), and packages do not depend on where
//! they were built: the real `kiln` binary, every written file searched.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

const PASSWORD: &str = "Pa55-w0rd-xyz";
const TOKEN: &str = "tk-0123456789abcdef";

fn assert_nowhere(out: &Path, logs: &[&str], needles: &[&str]) {
    for n in needles {
        let hits = files_containing(out, n);
        assert!(hits.is_empty(), "`{n}` was written to {hits:?}");
        for log in logs {
            assert!(!log.contains(n), "`{n}` reached the output:\n{log}");
        }
    }
}

#[test]
fn channel_credentials_appear_nowhere_kiln_writes() {
    let base = serve_http(fixture_channel());
    let channel = base.replace("http://", &format!("http://kilnuser:{PASSWORD}@")) + &format!("/t/{TOKEN}/");
    let out = tempfile::tempdir().unwrap();
    let args = ["--experimental", "-c", &channel];
    let recipe = recipe("envs/clib");
    let built = build_ok(&recipe, out.path(), &args);
    assert!(!packages(out.path()).is_empty());
    let rendered = kiln()
        .args([
            "build",
            "--experimental",
            "--render-only",
            "--with-solve",
            "-c",
            &channel,
            "--recipe",
        ])
        .arg(&recipe)
        .run()
        .unwrap();
    assert!(rendered.status.success(), "{}", stderr(&rendered));
    let render_out = String::from_utf8_lossy(&rendered.stdout).into_owned();
    assert!(
        render_out.contains("127.0.0.1"),
        "the channel is still named: {render_out}"
    );

    // A channel that fails: the error names it, without its secrets.
    let closed = closed_port_url().replace("/nothing-here", "");
    let broken = closed.replace("http://", &format!("http://kilnuser:{PASSWORD}@")) + &format!("/t/{TOKEN}/x");
    let failed = build(&recipe, out.path(), &["--experimental", "-c", &broken]);
    assert!(!failed.status.success());
    assert!(stderr(&failed).contains("127.0.0.1"), "{}", stderr(&failed));

    let logs = [stderr(&built), render_out, stderr(&rendered), stderr(&failed)];
    let logs: Vec<&str> = logs.iter().map(String::as_str).collect();
    assert_nowhere(out.path(), &logs, &[PASSWORD, TOKEN]);
}

const SECRET_RECIPE: &str = r#"
recipe: {name: hush, version: "1.0"}
outputs:
  - staging: {name: hush-build}
    build:
      script:
        env:
          FROM_ENV: ${{ env.get("KILN_TEST_SECRET") }}
        secrets: [KILN_TEST_SECRET]
        content:
          - echo "the secret is $KILN_TEST_SECRET"
          - echo "$FROM_ENV"
          - test -z "${SSH_AUTH_SOCK:-}"
          - mkdir -p $PREFIX/share
          - echo ok > $PREFIX/share/ok.txt
  - package: {name: hush}
    inherit: hush-build
    build:
      script:
        env:
          AGAIN: ${{ env.get("KILN_TEST_SECRET") }}
        secrets: [KILN_TEST_SECRET]
        content:
          - echo "$AGAIN"
          - test -f "$SRC_DIR/../build_env.sh"
          - test ! -e "$SRC_DIR/build_env.sh"
"#;

#[test]
fn secret_values_stay_out_of_logs_caches_and_packages() {
    let dir = tempfile::tempdir().unwrap();
    let r = write_recipe(dir.path(), "hush", SECRET_RECIPE);
    let out = dir.path().join("out");
    let secret = "-----BEGIN KEY-----\nline-one-AAAA\nline-two-BBBB\n-----END KEY-----";
    let o = build_with_env(
        &r,
        &out,
        &["--experimental", "--keep-build"],
        &[
            ("KILN_TEST_SECRET", secret),
            ("SSH_AUTH_SOCK", "/tmp/kiln-test-agent.sock"),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("the secret is ********"), "{}", stderr(&o));
    let log = stderr(&o);
    assert_nowhere(&out, &[&log], &["line-one-AAAA", "line-two-BBBB"]);

    // The script's environment file sits next to the work directory, never in it.
    let build_dir = out.join("bld/kiln_hush");
    assert!(build_dir.join("build_env.sh").is_file());
    assert!(!build_dir.join("work/build_env.sh").exists());
    let entry = &cache_entries(&out.join("build_cache"))[0];
    assert!(!entry.join("work_dir/build_env.sh").exists());
    assert!(!entry.join("work_dir/conda_build.sh").exists());
    for private in [out.join("bld"), out.join("build_cache")] {
        let mode = fs::metadata(&private).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{} must be private", private.display());
    }
}

#[test]
fn names_that_are_not_shell_identifiers_are_located_errors() {
    let dir = tempfile::tempdir().unwrap();
    let r = write_recipe(
        dir.path(),
        "names",
        "package: {name: names, version: '1.0'}\nbuild:\n  script:\n    env:\n      \"BAD NAME\": x\n    content: [true]\n",
    );
    let o = build(&r, &dir.path().join("out"), &[]);
    assert_failed_with(
        &o,
        &dir.path().join("out"),
        &["recipe.yaml:5:7", "`BAD NAME` is not a valid environment variable name"],
    );
    let r = write_recipe(
        dir.path(),
        "vkey",
        "package: {name: vkey, version: '1.0'}\nbuild:\n  script: [true]\n",
    );
    fs::write(r.join("variants.yaml"), "\"a;rm -rf x\": [1]\n").unwrap();
    let o = build(&r, &dir.path().join("out"), &[]);
    assert_failed_with(
        &o,
        &dir.path().join("out"),
        &["variants.yaml:1:1", "is not a valid variant key"],
    );
    let o = build(
        &r,
        &dir.path().join("out"),
        &["--ignore-recipe-variants", "--variant", "a b=1"],
    );
    assert_failed_with(&o, &dir.path().join("out"), &["`a b` is not a valid variant key"]);
}

#[test]
fn packages_built_into_two_output_directories_are_identical() {
    let dir = tempfile::tempdir().unwrap();
    for (r, extra) in [
        (recipe("staging/basic"), vec!["--experimental"]),
        (recipe("multi"), vec![]),
        (recipe("symlinks"), vec![]),
    ] {
        let one = dir.path().join("one");
        let two = dir.path().join("second-output-directory");
        for out in [&one, &two] {
            let _ = fs::remove_dir_all(out);
            build_ok(&r, out, &extra);
        }
        let names = package_names(&one);
        assert!(!names.is_empty());
        assert_eq!(names, package_names(&two));
        for (a, b) in packages(&one).iter().zip(packages(&two)) {
            assert!(
                fs::read(a).unwrap() == fs::read(&b).unwrap(),
                "{} differs between output directories",
                a.file_name().unwrap().to_string_lossy()
            );
            let x = extract(a);
            let hits = files_containing(&x.path().join("info"), &one.canonicalize().unwrap().to_string_lossy());
            assert!(hits.is_empty(), "build paths in info/: {hits:?}");
        }
    }
}

#[test]
fn absolute_symlinks_become_the_shortest_relative_link() {
    let dir = tempfile::tempdir().unwrap();
    let r = write_recipe(
        dir.path(),
        "links",
        r#"
package: {name: links, version: "1.0"}
build:
  script:
    - mkdir -p $PREFIX/bin $PREFIX/lib
    - echo tool > $PREFIX/bin/tool-1.0
    - ln -s $PREFIX/bin/tool-1.0 $PREFIX/bin/tool
    - ln -s $PREFIX/bin/tool-1.0 $PREFIX/lib/tool
    # A link through a link that leaves the prefix is refused.
"#,
    );
    let out = dir.path().join("out");
    build_ok(&r, &out, &[]);
    let x = extract(&packages(&out)[0]);
    assert_eq!(fs::read_link(x.path().join("bin/tool")).unwrap(), Path::new("tool-1.0"));
    assert_eq!(
        fs::read_link(x.path().join("lib/tool")).unwrap(),
        Path::new("../bin/tool-1.0")
    );

    let r = write_recipe(
        dir.path(),
        "chain",
        r#"
package: {name: chain, version: "1.0"}
build:
  script:
    - mkdir -p $PREFIX/lib $PREFIX/share
    - ln -s ../.. $PREFIX/lib/up
    - ln -s ../lib/up/etc/passwd $PREFIX/share/passwd
"#,
    );
    let o = build(&r, &out, &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("points outside $PREFIX"), "{}", stderr(&o));
}

#[test]
fn a_step_env_value_holding_a_secret_reaches_the_step_but_not_the_script_file() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "step-secret-CCCC";
    let text = |run: &str| {
        format!(
            r#"
recipe: {{name: hushed, version: "1.0"}}
outputs:
  - staging: {{name: hushed-build}}
    build:
      script:
        secrets: [KILN_TEST_SECRET]
        content: mkdir -p $PREFIX/share
  - package: {{name: hushed}}
    inherit: hushed-build
    build:
      steps:
        - run: {run}
          env:
            FROM_ENV: ${{{{ env.get("KILN_TEST_SECRET") }}}}
"#
        )
    };
    let r = write_recipe(
        dir.path(),
        "hushed",
        &text(r#"printf %s "$FROM_ENV" | wc -c > $PREFIX/share/length.txt"#),
    );
    let out = dir.path().join("out");
    let args = ["--experimental", "--keep-build"];
    let o = build_with_env(&r, &out, &args, &[("KILN_TEST_SECRET", secret)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let x = extract(&packages(&out)[0]);
    let length = fs::read_to_string(x.path().join("share/length.txt")).unwrap();
    assert_eq!(length.trim(), secret.len().to_string());
    assert_nowhere(&out, &[&stderr(&o)], &[secret]);

    // Rendered into the script text itself, it is refused at the script.
    let r = write_recipe(
        dir.path(),
        "hushed",
        &text(r#"echo ${{ env.get("KILN_TEST_SECRET") }}"#),
    );
    let out = dir.path().join("out-inline");
    let o = build_with_env(&r, &out, &args, &[("KILN_TEST_SECRET", secret)]);
    assert!(!o.status.success());
    let log = stderr(&o);
    assert!(
        log.contains("recipe.yaml:13:") && log.contains("the script text contains the value of a secret"),
        "{log}"
    );
    assert_nowhere(&out, &[&log], &[secret]);
}
