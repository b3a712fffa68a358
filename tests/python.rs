//! Python packages built with the machine's own CPython (the `python-real`
//! fixture channel) and a real pip: interpreter variables, `${{ PYTHON }}`,
//! `noarch: python`, entry points and byte-code. Each package is installed
//! by kiln's test runner (rattler's installer) and its entry point run.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// The pure-Python project (`hello`, console script `hello-py`).
fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hello-py")
}

/// `X.Y` of a version.
fn minor(v: &str) -> String {
    v.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// A recipe for the project; `noarch` is `""` or `"noarch: python"`.
fn hello_recipe(dir: &Path, name: &str, noarch: &str, py: &str, more_tests: &str, python_extra: &str) -> PathBuf {
    let text = format!(
        r#"package: {{name: hello-py, version: "1.0"}}
source:
  path: {src}
build:
  {noarch}
  script:
    - test "$PY_VER" = "{py}" && test "$PY3K" = 1
    - test "$SP_DIR" = "$PREFIX/lib/python{py}/site-packages" && test "$STDLIB_DIR" = "$PREFIX/lib/python{py}"
    - test "${{{{ PYTHON }}}}" = "$PREFIX/bin/python"
    - ${{{{ PYTHON }}}} -m pip install . -vv --no-deps --no-build-isolation
  python:
    entry_points:
      - hello-py = hello.cli:main
    {python_extra}
requirements:
  host: ["python {py}.*", pip]
  run: [python]
tests:
  - script:
      - test "$(hello-py)" = "hello from hello-py on python {py}"
      - ${{{{ PYTHON }}}} -c "import hello, sys; assert hello.__file__.startswith(sys.prefix), hello.__file__"
    requirements:
      run: ["python {py}.*"]
{more_tests}"#,
        src = project().display(),
    );
    write_recipe(dir, name, &text)
}

fn python_channel() -> (String, String) {
    let (chan, v1, _) = real_python_channel();
    (url::Url::from_directory_path(chan).unwrap().to_string(), minor(v1))
}

#[test]
fn a_noarch_python_package_is_laid_out_for_installers_and_its_entry_point_runs() {
    let (chan, py) = python_channel();
    let (_, _, other) = real_python_channel();
    let dir = tempfile::tempdir().unwrap();
    // Installed next to a second python version (the stand-in, whose
    // interpreter cannot import from its own site-packages), the installer
    // lays the package out for that version.
    let other = minor(other);
    let second = format!(
        "  - script:\n      - test -f $PREFIX/lib/python{other}/site-packages/hello/cli.py\n      - test -x $PREFIX/bin/hello-py\n    requirements:\n      run: [\"python {other}.*\"]\n"
    );
    let r = hello_recipe(dir.path(), "noarch", "noarch: python", &py, &second, "");
    let out = dir.path().join("out");
    let o = build_ok(&r, &out, &["-c", &chan]);
    assert!(stderr(&o).contains("2 tests passed"), "{}", stderr(&o));

    let pkg = packages(&out);
    assert_eq!(pkg.len(), 1, "{pkg:?}");
    assert!(pkg[0].starts_with(out.join("noarch")), "{pkg:?}");
    let d = extract(&pkg[0]);
    let files = content_files(d.path());
    for f in [
        "site-packages/hello/__init__.py",
        "site-packages/hello/cli.py",
        "site-packages/hello_py-1.0.dist-info/METADATA",
    ] {
        assert!(files.contains(&f.to_string()), "{f} in {files:?}");
    }
    assert!(
        files
            .iter()
            .all(|f| f.starts_with("site-packages/") && !f.ends_with(".pyc") && !f.contains("__pycache__")),
        "only site-packages, no byte-code, no launcher: {files:?}"
    );
    let installer = std::fs::read_to_string(d.path().join("site-packages/hello_py-1.0.dist-info/INSTALLER")).unwrap();
    assert_eq!(installer, "conda\n");
    let link = json(&d.path().join("info/link.json"));
    assert_eq!(link["noarch"]["type"], "python");
    assert_eq!(link["noarch"]["entry_points"][0], "hello-py = hello.cli:main");
    let index = json(&d.path().join("info/index.json"));
    assert_eq!(index["noarch"], "python");
    assert!(index["build"].as_str().unwrap().starts_with("pyh"), "{index}");
    assert_eq!(strings(&index["depends"]), vec!["python"]);
}

#[test]
fn a_per_version_python_package_ships_checked_byte_code_and_a_launcher() {
    let (chan, py) = python_channel();
    let dir = tempfile::tempdir().unwrap();
    // pip's own byte-code of cli.py (compiled with its absolute path in
    // the build prefix) is kept: kiln does not compile skipped files.
    let r = hello_recipe(
        dir.path(),
        "perversion",
        "",
        &py,
        "",
        "skip_pyc_compilation: ['**/cli.py']",
    );
    let out = dir.path().join("out");
    let o = build_ok(&r, &out, &["-c", &chan]);
    let log = stderr(&o);
    assert!(log.contains("compiled") && log.contains("1 test passed"), "{log}");

    let pkg = packages(&out);
    assert_eq!(pkg.len(), 1, "{pkg:?}");
    let d = extract(&pkg[0]);
    let sp = format!("lib/python{py}/site-packages");
    let tag = format!("cpython-{}", py.replace('.', ""));
    let files = content_files(d.path());
    {
        let stem = "__init__";
        let pyc = format!("{sp}/hello/__pycache__/{stem}.{tag}.pyc");
        assert!(files.contains(&pyc), "{pyc} in {files:?}");
        // Valid for the packaged source whatever its modification time:
        // checked-hash byte-code with the interpreter's magic number.
        let check = std::process::Command::new("python3")
            .arg("-c")
            .arg(
                "import importlib.util, sys\n\
                 data = open(sys.argv[1], 'rb').read(); src = open(sys.argv[2], 'rb').read()\n\
                 assert data[:4] == importlib.util.MAGIC_NUMBER, 'magic'\n\
                 assert int.from_bytes(data[4:8], 'little') == 3, 'checked hash'\n\
                 assert data[8:16] == importlib.util.source_hash(src), 'source hash'",
            )
            .arg(d.path().join(&pyc))
            .arg(d.path().join(format!("{sp}/hello/{stem}.py")))
            .run()
            .unwrap();
        assert!(check.status.success(), "{pyc}: {}", stderr(&check));
    }
    let launcher = std::fs::read_to_string(d.path().join("bin/hello-py")).unwrap();
    assert!(launcher.contains("from hello.cli import main"), "{launcher}");
    let paths = paths_json(d.path());
    assert!(
        paths["bin/hello-py"]["prefix_placeholder"].is_string(),
        "the shebang names the prefix"
    );
    assert!(
        paths
            .keys()
            .filter(|p| p.ends_with(".pyc"))
            .all(|p| paths[p].get("prefix_placeholder").is_none()),
        "byte-code is never rewritten by installers"
    );
    let pip_pyc = format!("{sp}/hello/__pycache__/cli.{tag}.pyc");
    let bytes = std::fs::read(d.path().join(&pip_pyc)).unwrap();
    assert!(
        bytes
            .windows(b"host_env_placehold".len())
            .any(|w| w == b"host_env_placehold"),
        "skip_pyc_compilation: pip's byte-code (naming the build prefix) is not replaced by kiln's"
    );
    let index = json(&d.path().join("info/index.json"));
    assert!(index.get("noarch").is_none() && !d.path().join("info/link.json").exists());
}

#[test]
fn build_time_variables_are_refused_outside_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let r = write_recipe(
        dir.path(),
        "outside",
        "package: {name: outside, version: '1.0'}\nrequirements:\n  run:\n    - ${{ PYTHON }}\n",
    );
    let o = build(&r, &dir.path().join("out"), &[]);
    assert!(!o.status.success());
    let log = stderr(&o);
    assert!(
        log.contains("`PYTHON` is a build-time variable") && log.contains("recipe.yaml:4"),
        "{log}"
    );
}

#[test]
fn a_build_time_variable_without_a_value_is_a_located_error() {
    let dir = tempfile::tempdir().unwrap();
    let r = write_recipe(
        dir.path(),
        "nosp",
        "package: {name: nosp, version: '1.0'}\nbuild:\n  script:\n    - echo ${{ SP_DIR }}\n",
    );
    let out = dir.path().join("out");
    let o = build(&r, &out, &[]);
    assert_failed_with(
        &o,
        &out,
        &["`${{ SP_DIR }}` has no value here", "a python in the host environment"],
    );
}

#[test]
fn a_build_py_script_runs_with_the_host_environments_python() {
    let (chan, py) = python_channel();
    let dir = tempfile::tempdir().unwrap();
    let r = write_recipe(
        dir.path(),
        "buildpy",
        &format!("package: {{name: greet, version: '1.0'}}\nrequirements:\n  host: [\"python {py}.*\"]\nbuild:\n  script: build.py\n"),
    );
    std::fs::write(
        r.join("build.py"),
        "import os, sys\nsp = os.environ['SP_DIR']\nos.makedirs(os.path.join(sp, 'greet'))\nwith open(os.path.join(sp, 'greet', '__init__.py'), 'w') as f:\n    f.write('BUILT_BY = %r\\n' % sys.executable)\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    build_ok(&r, &out, &["-c", &chan]);
    let d = extract(&packages(&out)[0]);
    let rel = format!("lib/python{py}/site-packages/greet/__init__.py");
    let placeholder = paths_json(d.path())[&rel]["prefix_placeholder"]
        .as_str()
        .unwrap()
        .to_string();
    let text = std::fs::read_to_string(d.path().join(&rel)).unwrap();
    assert_eq!(
        text,
        format!("BUILT_BY = '{placeholder}/bin/python'\n"),
        "run by $PREFIX/bin/python"
    );
}

#[test]
fn a_c_extension_built_on_a_staging_output_imports_in_a_package_test() {
    // The seed's calculator: libcalc compiled once in a staging output,
    // packaged by one inheritor; another compiles real Python bindings
    // against the restored library into `$SP_DIR` of its own prefix.
    let (chan, py) = python_channel();
    let fixtures = fixture_channel_url();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/recipes/python/calc-src");
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"recipe: {{name: calc, version: "1.0.0"}}
outputs:
  - staging: {{name: calc-build}}
    source: {{path: {src}}}
    requirements:
      build: ["${{{{ compiler('c') }}}}"]
    build:
      script:
        - mkdir -p $PREFIX/lib $PREFIX/include
        - $CC -shared -fPIC -o $PREFIX/lib/libcalc.so calc.c
        - cp calc.h $PREFIX/include/
  - package: {{name: libcalc}}
    inherit: calc-build
    build:
      files: [lib/libcalc.so, include/calc.h]
  - package: {{name: py-calc}}
    inherit: calc-build
    source: {{path: {src}}}
    requirements:
      build: ["${{{{ compiler('c') }}}}"]
      host: ["python {py}.*"]
      run: ["${{{{ pin_subpackage('libcalc', exact=True) }}}}", python]
    build:
      files: ["lib/python*/site-packages/**"]
      dynamic_linking: {{overlinking_behavior: error}}
      script:
        - test "$SP_DIR" = "$PREFIX/lib/python{py}/site-packages" && test -f $PREFIX/lib/libcalc.so
        - mkdir -p $SP_DIR
        - $CC -shared -fPIC -I$PREFIX/include -I$PREFIX/include/python{py} calcmodule.c -L$PREFIX/lib -lcalc -Wl,-rpath,$PREFIX/lib -o "$SP_DIR/calc$(${{{{ PYTHON }}}} -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')"
    tests:
      - python: {{imports: [calc], pip_check: false}}
      - script:
          - ${{{{ PYTHON }}}} -c "import calc; assert calc.add(2, 3) == 5"
        requirements:
          run: ["python {py}.*"]
"#,
        src = src.display()
    );
    let r = write_recipe(dir.path(), "calc", &text);
    let out = dir.path().join("out");
    let o = build_ok(&r, &out, &["--experimental", "-c", &chan, "-c", &fixtures]);
    let log = stderr(&o);
    assert!(log.contains("2 tests passed"), "{log}");
    let d = extract(
        &packages(&out)
            .into_iter()
            .find(|p| p.to_string_lossy().contains("py-calc"))
            .unwrap(),
    );
    let files = content_files(d.path());
    assert_eq!(files.len(), 1, "only the extension module: {files:?}");
    assert!(
        files[0].starts_with(&format!("lib/python{py}/site-packages/calc.cpython-")),
        "{files:?}"
    );
}
