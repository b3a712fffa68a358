//! ELF run paths: a C library and an executable linked against it, built
//! with the fixture compiler in a staging output and split into two
//! packages, get `$ORIGIN`-relative run paths; installed together at a
//! path the build never saw, the executable runs. `dynamic_linking`'s
//! `rpaths`, `rpath_allowlist` and `binary_relocation` change that as
//! documented.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;

fn recipe(dynamic_linking: &str) -> String {
    format!(
        r#"recipe:
  name: greet
  version: '1.0'
outputs:
  - staging:
      name: greet-build
    requirements:
      build:
        - ${{{{ compiler('c') }}}}
    build:
      script:
        - mkdir -p $PREFIX/lib $PREFIX/bin
        - printf 'const char *greeting(void) {{ return "hello from libgreet"; }}\n' > greet.c
        - printf '#include <stdio.h>\nconst char *greeting(void);\nint main(void) {{ puts(greeting()); return 0; }}\n' > main.c
        - $CC -shared -fPIC -o $PREFIX/lib/libgreet.so greet.c
        - $CC -o $PREFIX/bin/greet main.c -L$PREFIX/lib -lgreet -Wl,-rpath,/opt/vendor/lib:$PREFIX/lib
        - $CC -no-pie -o $PREFIX/bin/greet-nopie main.c -L$PREFIX/lib -lgreet -Wl,-rpath,$PREFIX/lib
        - $CC -o $PREFIX/bin/greet-norpath main.c -L$PREFIX/lib -lgreet
  - package:
      name: libgreet
    inherit: greet-build
    build:
      files: [lib/**]
{dynamic_linking}  - package:
      name: greet
    inherit: greet-build
    requirements:
      run:
        - ${{{{ pin_subpackage('libgreet', exact=True) }}}}
    build:
      files: [bin/**]
{dynamic_linking}"#
    )
}

fn run_path(file: &Path) -> String {
    let o = Command::new("readelf").arg("-d").arg(file).run().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find(|l| l.contains("(RUNPATH)") || l.contains("(RPATH)"))
        .map(|l| {
            l.rsplit_once(": [")
                .map(|(_, v)| v.trim_end_matches(']').to_string())
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

/// Both packages' files, placed in one fresh prefix (as an installer would).
fn install(out: &Path, dest: &Path) {
    for pkg in packages(out) {
        let x = extract(&pkg);
        for f in content_files(x.path()) {
            let from = x.path().join(&f);
            let to = dest.join(&f);
            fs::create_dir_all(to.parent().unwrap()).unwrap();
            fs::copy(&from, &to).unwrap();
        }
    }
}

#[test]
fn run_paths_become_origin_relative_and_the_installed_executable_runs() {
    let dir = tempfile::tempdir().unwrap();
    let r = write_recipe(dir.path(), "greet", &recipe(""));
    let out = dir.path().join("out");
    let channel = fixture_channel_url();
    let o = build_ok(&r, &out, &["--experimental", "-c", &channel]);
    assert!(stderr(&o).contains("rewrote the run paths"), "{}", stderr(&o));

    let prefix = dir.path().join("somewhere/else/entirely");
    install(&out, &prefix);
    assert_eq!(
        run_path(&prefix.join("bin/greet")),
        "$ORIGIN/../lib",
        "the vendor path is dropped"
    );
    assert!(!run_path(&prefix.join("lib/libgreet.so")).contains(&out.to_string_lossy().to_string()));
    // Linked without a run path: it gets `rpaths` (the file is rebuilt, as it had no room).
    assert_eq!(run_path(&prefix.join("bin/greet-norpath")), "$ORIGIN/../lib");
    for exe in ["greet", "greet-nopie", "greet-norpath"] {
        let o = Command::new(prefix.join("bin").join(exe))
            .env_remove("LD_LIBRARY_PATH")
            .run()
            .unwrap();
        assert!(o.status.success(), "{exe}: {}", stderr(&o));
        assert_eq!(String::from_utf8_lossy(&o.stdout), "hello from libgreet\n", "{exe}");
    }
    // Nothing of the build prefix is left in the executable.
    assert!(files_containing(&prefix, &out.to_string_lossy()).is_empty());
}

#[test]
fn dynamic_linking_keys_change_the_run_paths() {
    let dir = tempfile::tempdir().unwrap();
    let channel = fixture_channel_url();
    for (name, keys, expected) in [
        (
            "allow",
            "      dynamic_linking:\n        rpath_allowlist: ['/opt/vendor/**']\n",
            // In the order the linker wrote them.
            "/opt/vendor/lib:$ORIGIN/../lib".to_string(),
        ),
        (
            "rpaths",
            "      dynamic_linking:\n        rpaths: [lib/, lib/plugins]\n",
            "$ORIGIN/../lib:$ORIGIN/../lib/plugins".to_string(),
        ),
        (
            // Longer than the build's run path: the file is rebuilt to make room.
            "long",
            "      dynamic_linking:\n        rpaths: [lib/, lib/a-plugin-directory-with-a-long-name-0123456789-0123456789-0123456789, lib/another-plugin-directory-with-a-long-name-0123456789-0123456789, lib/a-third-plugin-directory-0123456789-0123456789-0123456789-0123456789]\n",
            "$ORIGIN/../lib:$ORIGIN/../lib/a-plugin-directory-with-a-long-name-0123456789-0123456789-0123456789:$ORIGIN/../lib/another-plugin-directory-with-a-long-name-0123456789-0123456789:$ORIGIN/../lib/a-third-plugin-directory-0123456789-0123456789-0123456789-0123456789".to_string(),
        ),
        (
            "none",
            "      dynamic_linking:\n        binary_relocation: false\n",
            String::new(),
        ),
        (
            "globs",
            "      dynamic_linking:\n        binary_relocation: [lib/*]\n",
            String::new(),
        ),
    ] {
        let r = write_recipe(dir.path(), &format!("greet-{name}"), &recipe(keys));
        let out = dir.path().join(format!("out-{name}"));
        build_ok(&r, &out, &["--experimental", "-c", &channel]);
        let prefix = dir.path().join(format!("prefix-{name}"));
        install(&out, &prefix);
        let exe = run_path(&prefix.join("bin/greet"));
        if expected.is_empty() {
            // Not relocated: the build's absolute run path is still there.
            assert!(
                exe.contains("/opt/vendor/lib") && exe.contains(&out.to_string_lossy().to_string()),
                "{name}: {exe}"
            );
        } else {
            assert_eq!(exe, expected, "{name}");
        }
        let o = Command::new(prefix.join("bin/greet")).env_remove("LD_LIBRARY_PATH").run().unwrap();
        assert!(o.status.success() || expected.is_empty(), "{name}: {}", stderr(&o));
        if name == "globs" {
            assert!(!run_path(&prefix.join("lib/libgreet.so")).contains(&out.to_string_lossy().to_string()));
        }
    }
}

#[test]
fn prefix_detection_forces_ignores_and_error_prefix_in_binary_fails() {
    let dir = tempfile::tempdir().unwrap();
    let text = |detection: &str| {
        format!(
            "package: {{name: detect, version: '1.0'}}\nbuild:\n  script:\n    - mkdir -p $PREFIX/share\n    - echo \"$PREFIX\" > $PREFIX/share/forced.dat\n    - echo \"$PREFIX\" > $PREFIX/share/ignored.txt\n    - echo \"$PREFIX\" > $PREFIX/share/plain.txt\n    - printf 'bin\\0%s\\0' \"$PREFIX\" > $PREFIX/share/blob.bin\n{detection}"
        )
    };
    let modes = |out: &Path| {
        let x = extract(&packages(out)[0]);
        let p = paths_json(x.path());
        ["forced.dat", "ignored.txt", "plain.txt", "blob.bin"]
            .iter()
            .map(|f| {
                p[&format!("share/{f}")]["file_mode"]
                    .as_str()
                    .unwrap_or("-")
                    .to_string()
            })
            .collect::<Vec<_>>()
    };
    let cases = [
        ("", vec!["text", "text", "text", "binary"]),
        (
            "  prefix_detection:\n    force_file_type:\n      binary: ['share/*.dat']\n    ignore: [share/ignored.txt]\n",
            vec!["binary", "-", "text", "binary"],
        ),
        ("  prefix_detection:\n    ignore_binary_files: true\n", vec!["text", "text", "text", "-"]),
        ("  prefix_detection:\n    ignore: true\n", vec!["-", "-", "-", "-"]),
    ];
    for (i, (detection, expected)) in cases.iter().enumerate() {
        let r = write_recipe(dir.path(), &format!("detect{i}"), &text(detection));
        let out = dir.path().join(format!("out{i}"));
        build_ok(&r, &out, &[]);
        assert_eq!(&modes(&out), expected, "case {i}: {detection}");
    }
    let r = write_recipe(dir.path(), "strict", &text(""));
    let out = dir.path().join("out-strict");
    let o = build(&r, &out, &["--error-prefix-in-binary"]);
    assert_failed_with(&o, &out, &["--error-prefix-in-binary", "share/blob.bin"]);
}

#[test]
fn staged_files_relocated_on_restore_keep_their_mode() {
    // Two output directories share one staging cache: the second restores
    // the entry into another prefix, rewriting the script that names it.
    let dir = tempfile::tempdir().unwrap();
    let r = write_recipe(
        dir.path(),
        "moded",
        "recipe: {name: moded, version: '1.0'}\noutputs:\n  - staging: {name: moded-build}\n    build:\n      script:\n        - mkdir -p $PREFIX/bin\n        - printf '#!/bin/sh\\necho %s\\n' \"$PREFIX\" > $PREFIX/bin/tool\n        - chmod 755 $PREFIX/bin/tool\n  - package: {name: moded}\n    inherit: moded-build\n",
    );
    let cache = dir.path().join("cache");
    let args = ["--experimental", "--staging-cache-dir", cache.to_str().unwrap()];
    build_ok(&r, &dir.path().join("a"), &args);
    let o = build_ok(&r, &dir.path().join("b-with-a-longer-name"), &args);
    assert!(stderr(&o).contains("cache hit"), "{}", stderr(&o));
    let x = extract(&packages(&dir.path().join("b-with-a-longer-name"))[0]);
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(x.path().join("bin/tool")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755, "{mode:o}");
}
