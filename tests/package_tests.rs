//! The recipe's `tests`, run by the real `kiln` binary after each build and
//! by `kiln test` on package files: script tests in fresh environments with
//! the package pinned, shipped test files, `package_contents`, downstream
//! tests, conda-build's `info/test/`, failures moving the package to
//! `broken/`, and `--test skip`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

fn repodata_names(out: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for sub in [subdir(), "noarch"] {
        let file = out.join(sub).join("repodata.json");
        if !file.is_file() {
            continue;
        }
        let r = json(&file);
        for key in ["packages", "packages.conda"] {
            if let Some(m) = r[key].as_object() {
                names.extend(m.keys().cloned());
            }
        }
    }
    names.sort();
    names
}

fn kiln_test(pkg: &Path, channel: &str, extra: &[&str]) -> std::process::Output {
    kiln()
        .args(["test", "--package-file"])
        .arg(pkg)
        .args(["-c", channel])
        .args(extra)
        .run()
        .unwrap()
}

#[test]
fn staging_outputs_are_tested_with_scripts_reading_their_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let r = write_recipe(
        dir.path(),
        "split",
        r#"recipe:
  name: split
  version: '1.0'
outputs:
  - staging:
      name: split-build
    build:
      script:
        - mkdir -p $PREFIX/lib $PREFIX/include
        - echo "the library" > $PREFIX/lib/libsplit.txt
        - echo "the header" > $PREFIX/include/split.h
  - package:
      name: libsplit
    inherit: split-build
    build:
      files: [lib/**]
    tests:
      - script:
          - test "$(cat $PREFIX/lib/libsplit.txt)" = "the library"
          - test "$PKG_NAME" = libsplit
          - test ! -e $PREFIX/include/split.h
  - package:
      name: split-devel
    inherit: split-build
    requirements:
      run:
        - ${{ pin_subpackage('libsplit', exact=True) }}
    build:
      files: [include/**]
    tests:
      - script:
          - grep -q header $PREFIX/include/split.h
          - test -e $PREFIX/lib/libsplit.txt
"#,
    );
    let out = dir.path().join("out");
    let o = build_ok(&r, &out, &["--experimental"]);
    let log = stderr(&o);
    assert_eq!(log.matches("1 test passed").count(), 2, "{log}");
    // The tests are in the package, as rattler-build stores them.
    let x = extract(
        &packages(&out)
            .into_iter()
            .find(|p| p.to_string_lossy().contains("split-devel"))
            .unwrap(),
    );
    let stored = fs::read_to_string(x.path().join("info/tests/tests.yaml")).unwrap();
    assert!(stored.contains("grep -q header $PREFIX/include/split.h"), "{stored}");
    assert_eq!(repodata_names(&out).len(), 2);
}

#[test]
fn a_failing_test_moves_the_package_to_broken_and_test_skip_does_not_test() {
    let dir = tempfile::tempdir().unwrap();
    let r = write_recipe(
        dir.path(),
        "failing",
        "package: {name: failing, version: '1.0'}\nbuild:\n  script: [mkdir -p $PREFIX/share, echo x > $PREFIX/share/x.txt]\ntests:\n  - script:\n      - echo checking\n      - test -e $PREFIX/share/missing.txt\n",
    );
    let out = dir.path().join("out");
    let o = build(&r, &out, &[]);
    let log = stderr(&o);
    assert!(!o.status.success(), "{log}");
    assert!(
        log.contains("test 0 (script) failed") && log.contains("test -e $PREFIX/share/missing.txt"),
        "{log}"
    );
    assert!(log.contains("checking"), "the test's output is shown: {log}");
    assert!(out.join("broken/failing-1.0-hb0f4dca_0.conda").is_file(), "{log}");
    assert!(
        repodata_names(&out).is_empty(),
        "not in the channel: {:?}",
        repodata_names(&out)
    );

    // A package this machine cannot run is not tested under `native`.
    let out = dir.path().join("cross");
    let other = if subdir() == "linux-aarch64" {
        "linux-64"
    } else {
        "linux-aarch64"
    };
    let o = build_ok(&r, &out, &["--target-platform", other]);
    assert!(
        stderr(&o).contains(&format!("not tested: built for {other}")),
        "{}",
        stderr(&o)
    );

    for flag in [&["--test", "skip"][..], &["--no-test"][..]] {
        let out = dir.path().join(format!("out{}", flag.len()));
        let o = build_ok(&r, &out, flag);
        assert!(!stderr(&o).contains("checking"), "{}", stderr(&o));
        assert_eq!(repodata_names(&out), vec!["failing-1.0-hb0f4dca_0.conda"]);
    }
}

#[test]
fn package_contents_pass_and_strict_fails_on_an_extra_file() {
    let dir = tempfile::tempdir().unwrap();
    let text = |strict: &str| {
        format!(
            "package: {{name: contents, version: '1.0'}}\nbuild:\n  script:\n    - mkdir -p $PREFIX/include $PREFIX/lib $PREFIX/bin $PREFIX/share\n    - echo h > $PREFIX/include/contents.h\n    - echo so > $PREFIX/lib/libcontents.so.1\n    - echo '#!/bin/sh' > $PREFIX/bin/contents-tool\n    - echo extra > $PREFIX/share/extra.txt\ntests:\n  - package_contents:\n      include: [contents]\n      lib: [contents]\n      bin: [contents-tool]\n      files:\n        exists: [{strict}]\n        not_exists: ['**/*.pyc']\n      strict: true\n"
        )
    };
    let r = write_recipe(dir.path(), "contents", &text("share/extra.txt"));
    build_ok(&r, &dir.path().join("ok"), &[]);
    fs::write(r.join("recipe.yaml"), text("share/other.txt")).unwrap();
    let out = dir.path().join("strict");
    let o = build(&r, &out, &[]);
    assert_failed_with(
        &o,
        &out,
        &[
            "recipe.yaml:11",
            "package_contents test failed",
            "share/other.txt",
            "`strict: true`",
            "share/extra.txt",
        ],
    );
}

#[test]
fn script_tests_ship_source_and_recipe_files() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(src.join("tests")).unwrap();
    fs::write(src.join("tests/expected.txt"), "from the source\n").unwrap();
    fs::write(src.join("unrelated.txt"), "not shipped\n").unwrap();
    let r = write_recipe(
        dir.path(),
        "shipped",
        "package: {name: shipped, version: '1.0'}\nsource:\n  path: ../src\nbuild:\n  script: [mkdir -p $PREFIX/share, cp tests/expected.txt $PREFIX/share/]\ntests:\n  - script:\n      - cmp tests/expected.txt $PREFIX/share/expected.txt\n      - test \"$(cat check.sh)\" = 'echo recipe file'\n      - test ! -e unrelated.txt\n    files:\n      source: [tests/]\n      recipe: [check.sh]\n",
    );
    fs::write(r.join("check.sh"), "echo recipe file").unwrap();
    let out = dir.path().join("out");
    let o = build_ok(&r, &out, &[]);
    assert!(stderr(&o).contains("1 test passed"), "{}", stderr(&o));
    let x = extract(&packages(&out)[0]);
    let files = content_files(x.path());
    assert!(
        files.contains(&"etc/conda/test-files/shipped/0/tests/expected.txt".to_string()),
        "{files:?}"
    );
    assert!(
        files.contains(&"etc/conda/test-files/shipped/0/check.sh".to_string()),
        "{files:?}"
    );
    let stored = fs::read_to_string(x.path().join("info/tests/tests.yaml")).unwrap();
    assert!(stored.contains("cwd: etc/conda/test-files/shipped/0"), "{stored}");

    // `kiln test` on the package alone, copied to an empty directory.
    let lonely = dir.path().join("lonely");
    fs::create_dir_all(&lonely).unwrap();
    let copy = lonely.join(packages(&out)[0].file_name().unwrap());
    fs::copy(&packages(&out)[0], &copy).unwrap();
    let channel = empty_channel(&dir.path().join("empty-channel"));
    let o = kiln_test(&copy, &channel, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 test passed"), "{}", stderr(&o));
    let o = kiln_test(&copy, &channel, &["--test-index", "5"]);
    assert!(
        !o.status.success() && stderr(&o).contains("out of range"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn downstream_tests_run_the_dependents_tests_against_the_new_package() {
    let dir = tempfile::tempdir().unwrap();
    let chan = dir.path().join("chan");
    let lib = |version: &str, tests: &str| {
        format!(
            "package: {{name: libdown, version: '{version}'}}\nbuild:\n  script: [mkdir -p $PREFIX/share, echo {version} > $PREFIX/share/libdown-version]\n{tests}"
        )
    };
    // The dependent, with a test that reports which libdown it sees.
    let r = write_recipe(dir.path(), "libdown", &lib("1.0", ""));
    build_ok(&r, &chan, &["--no-test"]);
    let user = write_recipe(
        dir.path(),
        "user",
        &format!(
            "package: {{name: downuser, version: '1.0'}}\nrequirements:\n  run: [libdown]\nbuild:\n  script: [mkdir -p $PREFIX/share, touch $PREFIX/share/user]\ntests:\n  - script:\n      - cat $PREFIX/share/libdown-version >> {}/seen.txt\n",
            dir.path().display()
        ),
    );
    let chan_url = url::Url::from_directory_path(&chan).unwrap().to_string();
    build_ok(&user, &chan, &["-c", &chan_url]);
    fs::remove_file(dir.path().join("seen.txt")).unwrap();

    // libdown 2.0 tests its dependent.
    fs::write(
        r.join("recipe.yaml"),
        lib(
            "2.0",
            "tests:\n  - downstream: downuser\n  - downstream: nothing-provides-this\n",
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = build_ok(&r, &out, &["-c", &chan_url]);
    assert_eq!(
        fs::read_to_string(dir.path().join("seen.txt")).unwrap(),
        "2.0\n",
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("skipped"),
        "an unsolvable downstream is skipped: {}",
        stderr(&o)
    );
}

#[test]
fn conda_build_packages_with_info_test_are_tested() {
    let dir = tempfile::tempdir().unwrap();
    let pkg_dir = dir.path().join("pkg");
    // A conda-build style package, made by hand.
    fs::create_dir_all(&pkg_dir).unwrap();
    python(
        &pkg_dir,
        r#"
import hashlib, io, json, tarfile
files = {
  "info/index.json": json.dumps({"name": "oldstyle", "version": "0.1", "build": "0", "build_number": 0,
                                  "depends": [], "subdir": "noarch", "noarch": "generic"}),
  "info/paths.json": json.dumps({"paths": [{"_path": "share/oldstyle.txt", "path_type": "hardlink",
                                  "sha256": hashlib.sha256(b"old\n").hexdigest(), "size_in_bytes": 4}], "paths_version": 1}),
  "info/files": "share/oldstyle.txt\n",
  "share/oldstyle.txt": "old\n",
  "info/test/run_test.sh": "test \"$(cat $PREFIX/share/oldstyle.txt)\" = old\necho legacy-ran > \"$HOME/legacy.txt\"\ncp legacy-data.txt \"$HOME/\"\n",
  "info/test/legacy-data.txt": "data\n",
  "info/test/test_time_dependencies.json": "[]",
}
with tarfile.open("oldstyle-0.1-0.tar.bz2", "w:bz2") as t:
    for name, text in files.items():
        data = text.encode()
        info = tarfile.TarInfo(name); info.size = len(data); info.mode = 0o755 if name.endswith(".sh") else 0o644
        t.addfile(info, io.BytesIO(data))
"#,
    );
    let pkg: PathBuf = pkg_dir.join("oldstyle-0.1-0.tar.bz2");
    let o = kiln_test(&pkg, &empty_channel(&dir.path().join("empty")), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 test passed"), "{}", stderr(&o));
}

/// A pure-Python package `name` (with `requires` in its metadata) whose
/// tests are `tests`; built against the real-python fixture.
fn python_package(dir: &Path, name: &str, requires: &str, tests: &str) -> PathBuf {
    write_recipe(
        dir,
        name,
        &format!(
            r#"package: {{name: {name}, version: '1.0'}}
requirements:
  host: [python]
  run: [python]
build:
  script:
    - |
      # No byte-code of the host's stdlib in this package (issue 15 handles .pyc).
      export PYTHONDONTWRITEBYTECODE=1
      SP=$($PREFIX/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
      mkdir -p $SP/{name} $SP/{name}-1.0.dist-info
      echo "def hello(): return 'hello from {name}'" > $SP/{name}/__init__.py
      printf 'Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n{requires}' > $SP/{name}-1.0.dist-info/METADATA
      echo conda > $SP/{name}-1.0.dist-info/INSTALLER
tests:
{tests}"#
        ),
    )
}

#[test]
fn python_tests_import_with_a_real_interpreter_per_version_and_run_pip_check() {
    let (chan, v1, v2) = real_python_channel();
    let chan_url = url::Url::from_directory_path(chan).unwrap().to_string();
    let minor = |v: &str| v.rsplit_once('.').unwrap().0.to_string();
    let dir = tempfile::tempdir().unwrap();
    let r = python_package(
        dir.path(),
        "pyhello",
        "",
        &format!(
            "  - python:\n      imports: [pyhello, json]\n      python_version: ['{}', '{}']\n  - script:\n      - python -c \"import pyhello; assert pyhello.hello() == 'hello from pyhello'\"\n    requirements:\n      run: [python]\n",
            minor(v1),
            minor(v2)
        ),
    );
    let out = dir.path().join("out");
    let o = build_ok(&r, &out, &["-c", &chan_url]);
    let log = stderr(&o);
    assert!(
        log.contains("imported pyhello") && log.contains("2 tests passed"),
        "{log}"
    );
    for v in [v1, v2] {
        assert!(
            log.contains(&format!("python {}", minor(v))),
            "one environment per version ({v}): {log}"
        );
    }
    assert!(log.contains("No broken requirements found"), "pip check ran: {log}");

    // An import that fails, and a requirement pip check finds missing.
    let r = python_package(
        dir.path(),
        "pyimportfail",
        "",
        "  - python:\n      imports: [not_a_module_anywhere]\n      pip_check: false\n",
    );
    let out = dir.path().join("out-import");
    let o = build(&r, &out, &["-c", &chan_url]);
    assert!(
        !o.status.success() && stderr(&o).contains("No module named 'not_a_module_anywhere'"),
        "{}",
        stderr(&o)
    );
    let r = python_package(
        dir.path(),
        "pymissing",
        "Requires-Dist: absent-dist\\n",
        "  - python:\n      imports: [pymissing]\n",
    );
    let out = dir.path().join("out-pip");
    let o = build(&r, &out, &["-c", &chan_url]);
    let log = stderr(&o);
    assert!(!o.status.success() && log.contains("absent-dist"), "{log}");
    assert!(out.join("broken").is_dir(), "{log}");
}

#[test]
fn perl_tests_load_modules_with_the_perl_of_the_test_environment() {
    let dir = tempfile::tempdir().unwrap();
    let channel = fixture_channel_url();
    let text = |module: &str| {
        format!("package: {{name: perlish, version: '1.0'}}\nbuild:\n  noarch: generic\n  script: [mkdir -p $PREFIX/share, touch $PREFIX/share/perlish]\ntests:\n  - perl:\n      uses: [strict, {module}]\n")
    };
    let r = write_recipe(dir.path(), "perlish", &text("File::Spec"));
    let o = build_ok(&r, &dir.path().join("out"), &["-c", &channel]);
    assert!(stderr(&o).contains("1 test passed"), "{}", stderr(&o));
    fs::write(r.join("recipe.yaml"), text("No::Such::Module")).unwrap();
    let o = build(&r, &dir.path().join("out2"), &["-c", &channel]);
    assert!(
        !o.status.success() && stderr(&o).contains("No/Such/Module.pm"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn packages_with_rattler_build_style_tests_are_tested_and_a_failure_is_named() {
    let dir = tempfile::tempdir().unwrap();
    // A package as rattler-build writes it: `info/tests/tests.yaml` with a
    // script whose content is one joined string, a bare-list script with
    // its test files under etc/conda/test-files, and a failing last test.
    let o = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import hashlib, io, json, tarfile
payload = {
  "share/rb.txt": "rb\n",
  "etc/conda/test-files/rbstyle/1/data/expected.txt": "rb\n",
}
tests = """- script:
    content: "test \\"$(cat $PREFIX/share/rb.txt)\\" = rb\\necho first-ran"
- script:
    content:
    - cmp data/expected.txt $PREFIX/share/rb.txt
    cwd: etc/conda/test-files/rbstyle/1
  files:
    source:
    - data/
- script:
  - echo about to fail
  - exit 3
"""
paths = [{"_path": p, "path_type": "hardlink", "sha256": hashlib.sha256(t.encode()).hexdigest(),
          "size_in_bytes": len(t)} for p, t in payload.items()]
files = dict(payload)
files.update({
  "info/index.json": json.dumps({"name": "rbstyle", "version": "2.0", "build": "h0_0", "build_number": 0,
                                  "depends": [], "subdir": "noarch", "noarch": "generic"}),
  "info/paths.json": json.dumps({"paths": paths, "paths_version": 1}),
  "info/tests/tests.yaml": tests,
})
with tarfile.open("rbstyle-2.0-h0_0.tar.bz2", "w:bz2") as t:
    for name, text in files.items():
        data = text.encode()
        info = tarfile.TarInfo(name); info.size = len(data); info.mode = 0o644
        t.addfile(info, io.BytesIO(data))
"#,
        )
        .current_dir(dir.path())
        .run()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let channel = empty_channel(&dir.path().join("empty"));
    let pkg = dir.path().join("rbstyle-2.0-h0_0.tar.bz2");
    let o = kiln_test(&pkg, &channel, &[]);
    let log = stderr(&o);
    assert!(!o.status.success(), "{log}");
    assert!(log.contains("first-ran") && log.contains("about to fail"), "{log}");
    assert!(
        log.contains("rbstyle-2.0-h0_0 test 2 (script) failed") && log.contains("exit 3"),
        "{log}"
    );
    for i in ["0", "1"] {
        let o = kiln_test(&pkg, &channel, &["--test-index", i]);
        assert!(o.status.success(), "test {i}: {}", stderr(&o));
    }
}

#[test]
fn test_secrets_reach_only_tests_of_packages_built_here_and_stay_masked() {
    let dir = tempfile::tempdir().unwrap();
    let r = write_recipe(
        dir.path(),
        "secretive",
        "package: {name: secretive, version: '1.0'}\nbuild:\n  script: [mkdir -p $PREFIX/share, touch $PREFIX/share/s]\ntests:\n  - script:\n      content:\n        - test \"${#KILN_TEST_TOKEN}\" = 16\n        - echo \"token is $KILN_TEST_TOKEN\"\n      secrets: [KILN_TEST_TOKEN]\n    files:\n      recipe: ['*.txt']\n",
    );
    fs::write(r.join("notes.txt"), "shipped\n").unwrap();
    // The output directory inside the recipe directory is not shipped.
    let out = r.join("output");
    fs::create_dir_all(out.join("stale")).unwrap();
    fs::write(out.join("stale/old.txt"), "not shipped\n").unwrap();
    let o = build_with_env(&r, &out, &[], &[("KILN_TEST_TOKEN", "tok-s3cr3t-value")]);
    let log = stderr(&o);
    assert!(o.status.success(), "{log}");
    assert!(
        log.contains("1 test passed") && !log.contains("tok-s3cr3t-value"),
        "{log}"
    );
    let pkg = packages(&out)
        .into_iter()
        .find(|p| !p.starts_with(out.join("broken")))
        .unwrap();
    let x = extract(&pkg);
    let files = content_files(x.path());
    assert!(files.iter().any(|f| f.ends_with("/0/notes.txt")), "{files:?}");
    assert!(!files.iter().any(|f| f.contains("old.txt")), "{files:?}");
    assert!(files_containing(x.path(), "tok-s3cr3t-value").is_empty());

    // `kiln test` does not hand the caller's variables to a package that names them.
    let channel = empty_channel(&dir.path().join("empty"));
    let o = kiln()
        .env("KILN_TEST_TOKEN", "tok-s3cr3t-value")
        .args(["test", "--package-file"])
        .arg(&pkg)
        .args(["-c", &channel])
        .run()
        .unwrap();
    let log = stderr(&o);
    assert!(
        !o.status.success(),
        "the test needs the token, which is not forwarded: {log}"
    );
    assert!(
        log.contains("not forwarding the secrets it names (KILN_TEST_TOKEN)"),
        "{log}"
    );
}

#[test]
fn packages_waiting_for_a_sibling_leave_the_channel_when_the_build_stops() {
    let dir = tempfile::tempdir().unwrap();
    let r = write_recipe(
        dir.path(),
        "pair",
        "recipe: {name: pair, version: '1.0'}\noutputs:\n  - package: {name: first}\n    build:\n      script: [mkdir -p $PREFIX/share, touch $PREFIX/share/first]\n    tests:\n      - script: [test -e $PREFIX/share/second]\n        requirements:\n          run: [second]\n  - package: {name: second}\n    build:\n      script: [exit 1]\n",
    );
    let out = dir.path().join("out");
    let o = build(&r, &out, &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("not tested because the build stopped"),
        "{}",
        stderr(&o)
    );
    assert!(out.join("broken/first-1.0-hb0f4dca_0.conda").is_file());
    assert!(repodata_names(&out).is_empty(), "{:?}", repodata_names(&out));
}

#[test]
fn tests_that_check_nothing_or_pin_in_requirements_are_located_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (name, tests, at, message) in [
        (
            "emptypy",
            "  - python:\n      imports: []\n      pip_check: false\n",
            "recipe.yaml:6:",
            "checks nothing",
        ),
        (
            "emptyperl",
            "  - perl:\n      uses: []\n",
            "recipe.yaml:6:",
            "checks nothing",
        ),
        (
            "pinned",
            "  - script: [true]\n    requirements:\n      run: [\"${{ pin_subpackage('pinned', exact=True) }}\"]\n",
            "recipe.yaml:7:",
            "pin functions in test requirements are not supported yet",
        ),
    ] {
        let r = write_recipe(
            dir.path(),
            name,
            &format!("package: {{name: {name}, version: '1.0'}}\nbuild:\n  script: [true]\ntests:\n{tests}"),
        );
        let out = dir.path().join(format!("out-{name}"));
        let o = build(&r, &out, &[]);
        assert_failed_with(&o, &out, &[at, message]);
    }
}
