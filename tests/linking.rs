//! Linking checks: a staging output compiles an executable against the
//! fixture zlib (a real `libz.so.1`) and a library with an executable
//! linked to it; the package outputs that split it are checked for
//! overlinking and overdepending, the same on a staging cache hit as on a
//! miss (the staging host environment's libraries are in the cache entry).

mod common;

use std::path::Path;

use common::*;

const STAGING: &str = r#"recipe:
  name: zver
  version: '1.0'
outputs:
  - staging:
      name: zbuild
    requirements:
      build:
        - ${{ compiler('c') }}
      host:
        - zlib
    build:
      script:
        - echo @TAG@ > /dev/null
        - mkdir -p $PREFIX/lib $PREFIX/bin
        - printf '#include <stdio.h>\n#include <zlib_fixture.h>\nint main(void) { puts(zlibVersion()); return 0; }\n' > zver.c
        - $CC -o $PREFIX/bin/zver zver.c -I$PREFIX/include -L$PREFIX/lib -lz -Wl,-rpath,$PREFIX/lib
        - printf 'const char *greeting(void) { return "hi"; }\n' > greet.c
        - printf '#include <stdio.h>\nconst char *greeting(void);\nint main(void) { puts(greeting()); return 0; }\n' > main.c
        - $CC -shared -fPIC -o $PREFIX/lib/libgreet.so greet.c
        - $CC -o $PREFIX/bin/greet main.c -L$PREFIX/lib -lgreet -Wl,-rpath,$PREFIX/lib
"#;

fn recipe(dir: &Path, tag: &str, outputs: &str) -> std::path::PathBuf {
    let text = format!("{}{outputs}", STAGING.replace("@TAG@", tag));
    write_recipe(dir, "zver", &text)
}

/// `zver` without zlib among its run dependencies.
fn overlinked(extra: &str) -> String {
    format!(
        r#"  - package:
      name: zver
    inherit: zbuild
    requirements:
      ignore_run_exports:
        by_name: [zlib]
    build:
      files: [bin/zver]
      dynamic_linking:
        overlinking_behavior: error
{extra}"#
    )
}

#[test]
fn overlinking_fails_on_a_miss_and_a_hit_and_missing_dso_allowlist_accepts_it() {
    let dir = tempfile::tempdir().unwrap();
    let channel = fixture_channel_url();
    let args = ["--experimental", "-c", channel.as_str()];
    let r = recipe(dir.path(), "overlinking", &overlinked(""));
    let verdict = "overlinking: bin/zver links libz.so.1 (lib/libz.so.1 from the host package `zlib`), \
                   but `zlib` is not a run dependency";
    // The staging cache lives in the output directory.
    let out = dir.path().join("out");
    for cache in ["cache miss", "cache hit"] {
        let o = build(&r, &out, &args);
        assert_failed_with(
            &o,
            &out,
            &[cache, verdict, "linking check failed", "missing_dso_allowlist"],
        );
    }

    let r = recipe(
        dir.path(),
        "overlinking",
        &overlinked("        missing_dso_allowlist: ['**/libz.so*']\n"),
    );
    let o = build_ok(&r, &out, &args);
    let log = stderr(&o);
    assert!(log.contains("cache hit"), "only the inheritor changed:\n{log}");
    assert!(!log.contains("overlinking"), "{log}");
    let x = extract(&packages(&out)[0]);
    let index = json(&x.path().join("info/index.json"));
    assert_eq!(
        index["depends"],
        serde_json::json!(["libgcc >=12"]),
        "zlib's run export was ignored"
    );
}

#[test]
fn linked_run_dependencies_pass_siblings_need_pinning_and_unlinked_ones_overdepend() {
    let dir = tempfile::tempdir().unwrap();
    let channel = fixture_channel_url();
    let args = ["--experimental", "-c", channel.as_str()];
    let outputs = |greet_extra: &str| {
        format!(
            r#"  - package:
      name: zver
    inherit: zbuild
    build:
      files: [bin/zver]
      dynamic_linking:
        overlinking_behavior: error
        overdepending_behavior: error
  - package:
      name: libgreet
    inherit: zbuild
    build:
      files: [lib/libgreet.so]
  - package:
      name: greet
    inherit: zbuild
    build:
      files: [bin/greet]
{greet_extra}"#
        )
    };
    let r = recipe(dir.path(), "siblings", &outputs(""));
    let out = dir.path().join("out");
    let o = build_ok(&r, &out, &args);
    let log = stderr(&o);
    // zver links zlib, a run dependency through its run export: no finding.
    assert!(!log.contains("bin/zver links"), "{log}");
    assert!(
        log.contains(
            "overlinking: bin/greet links libgreet.so (lib/libgreet.so, packaged by `libgreet`), \
             but `libgreet` is not a run dependency"
        ),
        "{log}"
    );
    // zlib's run export reaches every inheritor; greet does not link it.
    let overdepending: Vec<&str> = log.lines().filter(|l| l.contains("overdepending")).collect();
    assert!(
        overdepending.iter().any(|l| l.contains("greet-1.0-")
            && l.contains(
                "overdepending: the run dependency `zlib` (a host package's run export) provides shared libraries"
            )),
        "{log}"
    );
    assert!(!overdepending.iter().any(|l| l.contains("zver-1.0-")), "{log}");

    // Pinned, the sibling is fine; unlinked zlib fails under `error`.
    let r = recipe(
        dir.path(),
        "siblings",
        &outputs(
            "      dynamic_linking:\n        overdepending_behavior: error\n    requirements:\n      run:\n        - ${{ pin_subpackage('libgreet', exact=True) }}\n",
        ),
    );
    let out = dir.path().join("out-pinned");
    let o = build(&r, &out, &args);
    let log = stderr(&o);
    assert!(!o.status.success(), "{log}");
    assert!(!log.contains("bin/greet links"), "{log}");
    assert!(
        log.contains("overdepending: the run dependency `zlib` (a host package's run export) provides shared libraries (lib/libz.so, lib/libz.so.1, lib/libz.so.1.3), but no binary in the package links any of them"),
        "{log}"
    );
}

#[test]
fn the_packaged_executable_runs_against_the_installed_zlib() {
    let dir = tempfile::tempdir().unwrap();
    let channel = fixture_channel_url();
    let r = recipe(
        dir.path(),
        "runs",
        "  - package:\n      name: zver\n    inherit: zbuild\n    build:\n      files: [bin/zver]\n",
    );
    let out = dir.path().join("out");
    let o = build_ok(&r, &out, &["--experimental", "-c", &channel]);
    assert!(!stderr(&o).contains("overlinking"), "{}", stderr(&o));
    // The fixture zlib and zver, extracted into one prefix the build never saw.
    let prefix = dir.path().join("elsewhere/env");
    let zlib = std::fs::read_dir(fixture_channel().join(subdir()))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("zlib-"))
        .unwrap();
    std::fs::create_dir_all(&prefix).unwrap();
    for pkg in [zlib, packages(&out)[0].clone()] {
        let x = extract(&pkg);
        let o = std::process::Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", x.path().display()))
            .arg(&prefix)
            .run()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let o = std::process::Command::new(prefix.join("bin/zver"))
        .env_remove("LD_LIBRARY_PATH")
        .run()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "1.3-fixture\n");
}

#[test]
fn without_staging_overlinking_warns_and_a_machine_library_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let channel = fixture_channel_url();
    let text = |allow: &str| {
        format!(
            r#"package:
  name: zcpp
  version: '1.0'
requirements:
  build:
    - ${{{{ compiler('cxx') }}}}
  host:
    - zlib
  ignore_run_exports:
    by_name: [zlib]
build:
  script:
    - mkdir -p $PREFIX/bin
    - printf '#include <iostream>\nextern "C" const char *zlibVersion();\nint main() {{ std::cout << zlibVersion() << std::endl; }}\n' > z.cpp
    - $CXX -o $PREFIX/bin/zcpp z.cpp -L$PREFIX/lib -lz -Wl,-rpath,$PREFIX/lib
{allow}"#
        )
    };
    let r = write_recipe(dir.path(), "zcpp", &text(""));
    let out = dir.path().join("out");
    let o = build_ok(&r, &out, &["-c", &channel]);
    let log = stderr(&o);
    // `ignore` (the default) warns.
    assert!(
        log.contains("overlinking: bin/zcpp links libz.so.1 (lib/libz.so.1 from the host package `zlib`), but `zlib` is not a run dependency"),
        "{log}"
    );
    // The fixture compiler is the machine's g++: its libstdc++ is in no package.
    assert!(
        log.contains("overlinking: bin/zcpp links libstdc++.so.6, which is not in the package, a host package or a sysroot; the build machine has it at"),
        "{log}"
    );
    assert!(!log.contains("links libc.so.6"), "glibc is part of the system:\n{log}");

    // conda-build's allowlist forms: `*/name` and a bare name pattern.
    let r = write_recipe(
        dir.path(),
        "zcpp-allowed",
        &text("  dynamic_linking:\n    missing_dso_allowlist: ['*/libstdc++.so.6', 'libz.so*']\n"),
    );
    let o = build_ok(&r, &dir.path().join("out2"), &["-c", &channel]);
    assert!(!stderr(&o).contains("overlinking"), "{}", stderr(&o));
}

#[test]
fn a_nested_staging_output_links_what_a_sibling_of_its_parent_packages() {
    // `greetplus` is built on top of `zbuild` and links its libgreet, which
    // the output `libgreet` (inheriting `zbuild` directly) packages.
    let dir = tempfile::tempdir().unwrap();
    let channel = fixture_channel_url();
    let outputs = |run: &str| {
        format!(
            r#"  - staging:
      name: greetplus-build
    inherit: zbuild
    requirements:
      build:
        - ${{{{ compiler('c') }}}}
    build:
      script:
        - printf 'const char *greeting(void);\nconst char *louder(void) {{ return greeting(); }}\n' > plus.c
        - $CC -shared -fPIC -o $PREFIX/lib/libgreetplus.so plus.c -L$PREFIX/lib -lgreet -Wl,-rpath,$PREFIX/lib
  - package:
      name: libgreet
    inherit: zbuild
    build:
      files: [lib/libgreet.so]
  - package:
      name: greetplus
    inherit: greetplus-build
    build:
      files: [lib/libgreetplus.so]
      dynamic_linking:
        overlinking_behavior: error
{run}"#
        )
    };
    let args = ["--experimental", "-c", channel.as_str()];
    let r = recipe(dir.path(), "nested", &outputs(""));
    let o = build(&r, &dir.path().join("out"), &args);
    let log = stderr(&o);
    assert!(!o.status.success(), "{log}");
    // Found as a sibling's library, not as a file no package contains.
    assert!(
        log.contains(
            "overlinking: lib/libgreetplus.so links libgreet.so (lib/libgreet.so, packaged by `libgreet`), \
             but `libgreet` is not a run dependency"
        ),
        "{log}"
    );
    let r = recipe(
        dir.path(),
        "nested",
        &outputs("    requirements:\n      run:\n        - ${{ pin_subpackage('libgreet', exact=True) }}\n"),
    );
    let out = dir.path().join("out-pinned");
    let o = build_ok(&r, &out, &args);
    assert!(!stderr(&o).contains("links libgreet.so"), "{}", stderr(&o));
}
