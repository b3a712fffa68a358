//! No silent acceptance: the recipe schema of `../shared/spec/REFERENCE.md`
//! (§1.2 top-level keys and `about`, §2 outputs, §3 sources, §4 build and
//! script, §5.1 requirements), key by key. Each key either has an effect
//! this test sees in the package (`info/index.json`, `info/about.json`, the
//! files), or is an error at its line. The real `kiln` binary builds each
//! case in a fresh directory.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use serde_json::Value;

/// What a key must do.
enum Expect {
    /// The build succeeds and `check(extracted package dir, index.json)` holds.
    Effect(fn(&Path, &Value) -> bool),
    /// The build fails at `line:column` of the recipe saying `message`.
    Located(&'static str, &'static str),
    /// The build succeeds and writes no package.
    NoPackage,
    /// The build fails saying this (not at a recipe line).
    Fails(&'static str),
}

struct Case {
    key: &'static str,
    recipe: &'static str,
    expect: Expect,
}

const SCRIPT: &str = "mkdir -p $PREFIX/share && echo x > $PREFIX/share/x.txt";

fn read(dir: &Path, rel: &str) -> String {
    fs::read_to_string(dir.join(rel)).unwrap_or_default()
}

fn about(dir: &Path) -> Value {
    json(&dir.join("info/about.json"))
}

fn run_case(case: &Case, channel: &str) {
    let dir = tempfile::tempdir().unwrap();
    let r = write_recipe(dir.path(), "walk", &case.recipe.replace("@SCRIPT@", SCRIPT));
    fs::write(r.join("data.txt"), "data\n").unwrap();
    fs::write(r.join("LICENSE"), "license text\n").unwrap();
    fs::write(r.join("build.py"), "print('hi')\n").unwrap();
    // Perl is part of every Debian system (perl-base), so the interpreter
    // cases need no channel.
    fs::write(
        r.join("build.pl"),
        "mkdir \"$ENV{PREFIX}/share\";\nopen(my $f, '>', \"$ENV{PREFIX}/share/x.txt\") or die;\nprint $f \"x\\n\";\n",
    )
    .unwrap();
    fs::write(
        r.join("fix.patch"),
        "--- a/data.txt\n+++ b/data.txt\n@@ -1 +1 @@\n-data\n+patched\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = build(&r, &out, &["--experimental", "-c", channel]);
    let log = stderr(&o);
    assert!(!log.contains("panicked"), "{}: kiln panicked:\n{log}", case.key);
    match &case.expect {
        Expect::Effect(check) => {
            assert!(o.status.success(), "{}: build failed:\n{log}", case.key);
            let pkgs = packages(&out);
            assert_eq!(pkgs.len(), 1, "{}: {pkgs:?}", case.key);
            let x = extract(&pkgs[0]);
            let index = json(&x.path().join("info/index.json"));
            assert!(check(x.path(), &index), "{}: no effect seen; index: {index}", case.key);
        }
        Expect::Located(at, message) => {
            assert!(!o.status.success(), "{}: expected an error:\n{log}", case.key);
            assert!(
                log.contains(&format!("recipe.yaml:{at}")) && log.contains(message),
                "{}: expected `recipe.yaml:{at}` and `{message}` in:\n{log}",
                case.key
            );
            assert!(packages(&out).is_empty(), "{}", case.key);
        }
        Expect::NoPackage => {
            assert!(o.status.success(), "{}: {log}", case.key);
            assert!(packages(&out).is_empty(), "{}", case.key);
        }
        Expect::Fails(message) => {
            assert!(
                !o.status.success() && log.contains(message),
                "{}: expected `{message}`:\n{log}",
                case.key
            );
        }
    }
}

fn cases() -> Vec<Case> {
    use Expect::*;
    vec![
        // §1.2 top level (single output)
        Case {
            key: "schema_version",
            recipe: "schema_version: 2\npackage: {name: walk, version: '1.0'}\n",
            expect: Located("1:17", "schema_version"),
        },
        Case {
            key: "context",
            recipe: "context: {v: '2.5'}\npackage: {name: walk, version: '${{ v }}'}\nbuild:\n  script: ['@SCRIPT@']\n",
            expect: Effect(|_, i| i["version"] == "2.5"),
        },
        Case {
            key: "package.name, package.version",
            recipe: "package: {name: walk-pkg, version: '3.1'}\nbuild:\n  script: ['@SCRIPT@']\n",
            expect: Effect(|_, i| i["name"] == "walk-pkg" && i["version"] == "3.1"),
        },
        Case {
            key: "unknown top-level key",
            recipe: "package: {name: walk, version: '1.0'}\nsomething: 1\n",
            expect: Located("2:1", "something"),
        },
        Case {
            key: "extra",
            recipe: "package: {name: walk, version: '1.0'}\nbuild:\n  script: ['@SCRIPT@']\nextra: {team: [a]}\n",
            expect: Effect(|d, _| about(d)["extra"]["team"][0] == "a"),
        },
        Case {
            key: "tests (script; run, and stored)",
            recipe: "package: {name: walk, version: '1.0'}\nbuild:\n  script: ['@SCRIPT@']\ntests:\n  - script: [test -f $PREFIX/share/x.txt]\n",
            expect: Effect(|d, _| read(d, "info/tests/tests.yaml").contains("test -f")),
        },
        Case {
            key: "tests (a failing script)",
            recipe: "package: {name: walk, version: '1.0'}\nbuild:\n  script: ['@SCRIPT@']\ntests:\n  - script: [test -f $PREFIX/share/missing.txt]\n",
            expect: Fails("moved to"),
        },
        Case {
            key: "tests.package_contents (invalid glob)",
            recipe: "package: {name: walk, version: '1.0'}\nbuild:\n  script: ['@SCRIPT@']\ntests:\n  - package_contents:\n      files: ['share/[x']\n",
            expect: Located("6:15", "invalid `files` glob"),
        },
        Case {
            key: "tests (unknown key)",
            recipe: "package: {name: walk, version: '1.0'}\nbuild:\n  script: ['@SCRIPT@']\ntests:\n  - python: {imports: [x], pytest: true}\n",
            expect: Located("5:28", "unknown key `pytest`"),
        },
        // §1.2 about
        Case {
            key: "about.homepage, repository, documentation, license, license_family, summary, description",
            recipe: "package: {name: walk, version: '1.0'}\nbuild:\n  script: ['@SCRIPT@']\nabout:\n  homepage: https://h.example\n  repository: https://r.example\n  documentation: https://d.example\n  license: MIT\n  license_family: MIT\n  summary: S\n  description: D\n",
            expect: Effect(|d, i| {
                let a = about(d);
                a["home"] == "https://h.example"
                    && a["dev_url"] == "https://r.example"
                    && a["doc_url"] == "https://d.example"
                    && a["summary"] == "S"
                    && a["description"] == "D"
                    && i["license"] == "MIT"
                    && i["license_family"] == "MIT"
            }),
        },
        Case {
            key: "about.license_file",
            recipe: "package: {name: walk, version: '1.0'}\nbuild:\n  script: ['@SCRIPT@']\nabout:\n  license_file: LICENSE\n",
            expect: Effect(|d, _| read(d, "info/licenses/LICENSE") == "license text\n"),
        },
        // §3 sources
        Case {
            key: "source.path, target_directory, sha256",
            recipe: "package: {name: walk, version: '1.0'}\nsource:\n  path: data.txt\n  target_directory: sub\n  sha256: 6667b2d1aab6a00caa5aee5af8ad9f1465e567abf1c209d15727d57b3e8f6e5f\nbuild:\n  script: [mkdir -p $PREFIX/share, cp sub/data.txt $PREFIX/share/]\n",
            expect: Effect(|d, _| read(d, "share/data.txt") == "data\n"),
        },
        Case {
            key: "source.file_name",
            recipe: "package: {name: walk, version: '1.0'}\nsource:\n  path: data.txt\n  file_name: renamed.txt\nbuild:\n  script: [mkdir -p $PREFIX/share, cp renamed.txt $PREFIX/share/]\n",
            expect: Effect(|d, _| read(d, "share/renamed.txt") == "data\n"),
        },
        Case {
            key: "source.url (scheme)",
            recipe: "package: {name: walk, version: '1.0'}\nsource:\n  url: ftp://example.org/x.tar.gz\n",
            expect: Located("3:8", "`ftp:` URLs are not supported"),
        },
        Case {
            key: "source.attestation",
            recipe: "package: {name: walk, version: '1.0'}\nsource:\n  url: https://example.org/x.tar.gz\n  attestation: {publishers: [github:o/r]}\n",
            expect: Located("4:3", "not supported yet"),
        },
        Case {
            key: "source.git (rev, tag, branch)",
            recipe: "package: {name: walk, version: '1.0'}\nsource:\n  git: https://example.org/x.git\n  tag: v1\n  rev: abc\n",
            expect: Located("5:3", "not both `tag` and `rev`"),
        },
        Case {
            key: "source.md5",
            recipe: "package: {name: walk, version: '1.0'}\nsource:\n  path: data.txt\n  md5: 6137cde4893c59f76f005a8123d8e8e6\nbuild:\n  script: [mkdir -p $PREFIX/share, cp data.txt $PREFIX/share/]\n",
            expect: Effect(|d, _| read(d, "share/data.txt") == "data\n"),
        },
        Case {
            key: "source.patches",
            recipe: "package: {name: walk, version: '1.0'}\nsource:\n  path: data.txt\n  patches: [fix.patch]\nbuild:\n  script: [mkdir -p $PREFIX/share, cp data.txt $PREFIX/share/]\n",
            expect: Effect(|d, _| read(d, "share/data.txt") == "patched\n"),
        },
        Case {
            key: "source.filter",
            recipe: "package: {name: walk, version: '1.0'}\nsource:\n  path: .\n  target_directory: src\n  filter: {include: ['*.txt'], exclude: [LICENSE*]}\nbuild:\n  script: [mkdir -p $PREFIX/share, cp -r src $PREFIX/share/]\n",
            expect: Effect(|d, _| content_files(d) == ["share/src/data.txt"]),
        },
        // §4 build
        Case {
            key: "build.number",
            recipe: "package: {name: walk, version: '1.0'}\nbuild:\n  number: 7\n  script: ['@SCRIPT@']\n",
            expect: Effect(|_, i| i["build_number"] == 7 && i["build"].as_str().unwrap().ends_with("_7")),
        },
        Case {
            key: "build.string",
            recipe: "package: {name: walk, version: '1.0'}\nbuild:\n  string: custom_${{ build_number }}\n  script: ['@SCRIPT@']\n",
            expect: Effect(|_, i| i["build"] == "custom_0"),
        },
        Case {
            key: "build.script",
            recipe: "package: {name: walk, version: '1.0'}\nbuild:\n  script: ['@SCRIPT@']\n",
            expect: Effect(|d, _| read(d, "share/x.txt") == "x\n"),
        },
        Case {
            key: "build.noarch: generic",
            recipe: "package: {name: walk, version: '1.0'}\nbuild:\n  noarch: generic\n  script: ['@SCRIPT@']\n",
            expect: Effect(|_, i| i["noarch"] == "generic" && i["subdir"] == "noarch"),
        },
        Case {
            key: "build.noarch: python",
            recipe: "package: {name: walk, version: '1.0'}\nbuild:\n  noarch: python\n  script: ['@SCRIPT@']\n",
            // Its layout with a real python: tests/python.rs.
            expect: Effect(|d, i| {
                i["noarch"] == "python"
                    && i["subdir"] == "noarch"
                    && read(d, "share/x.txt") == "x\n"
                    && json(&d.join("info/link.json"))["noarch"]["type"] == "python"
            }),
        },
        Case {
            key: "build.files",
            recipe: "package: {name: walk, version: '1.0'}\nbuild:\n  files: [share/x.txt]\n  script: ['@SCRIPT@', echo y > $PREFIX/share/y.txt]\n",
            expect: Effect(|d, _| content_files(d) == ["share/x.txt"]),
        },
        Case {
            key: "build.skip",
            recipe: "package: {name: walk, version: '1.0'}\nbuild:\n  skip: true\n",
            expect: NoPackage,
        },
        Case {
            key: "build.always_include_files",
            recipe: "package: {name: walk, version: '1.0'}\nrequirements:\n  host: [zlib]\nbuild:\n  always_include_files: [include/zlib_fixture.h]\n  script: ['@SCRIPT@']\n",
            expect: Effect(|d, _| {
                content_files(d) == ["include/zlib_fixture.h", "share/x.txt"]
            }),
        },
        Case {
            key: "build.always_copy_files",
            recipe: "package: {name: walk, version: '1.0'}\nbuild:\n  script: ['@SCRIPT@', 'echo y > $PREFIX/share/y.txt']\n  always_copy_files: [share/x.txt]\n",
            expect: Effect(|d, _| {
                let p = paths_json(d);
                p["share/x.txt"]["no_link"] == true && p["share/y.txt"].get("no_link").is_none()
            }),
        },
        Case {
            key: "build.merge_build_and_host_envs",
            // One prefix: the build tool and the host library are both in $PREFIX.
            recipe: "package: {name: walk, version: '1.0'}\nrequirements:\n  build: [make]\n  host: [zlib]\nbuild:\n  merge_build_and_host_envs: true\n  script:\n    - test \"$BUILD_PREFIX\" = \"$PREFIX\"\n    - test -x $PREFIX/bin/make && command -v make | grep -q \"^$PREFIX/bin/make$\"\n    - test -f $PREFIX/include/zlib_fixture.h\n    - '@SCRIPT@'\n",
            expect: Effect(|d, i| content_files(d) == ["share/x.txt"] && i["depends"][0] == "zlib >=1.3,<2.0a0"),
        },
        Case {
            // The run paths and linking checks' effects: tests/relocation.rs, tests/linking.rs.
            key: "build.dynamic_linking (linking checks)",
            recipe: "package: {name: walk, version: '1.0'}\nbuild:\n  dynamic_linking: {rpaths: [lib/], overlinking_behavior: warn}\n",
            expect: Located("3:59", "`dynamic_linking.overlinking_behavior` must be `ignore` or `error`"),
        },
        Case {
            // Its effect: tests/relocation.rs.
            key: "build.prefix_detection (unknown key)",
            recipe: "package: {name: walk, version: '1.0'}\nbuild:\n  prefix_detection: {ignore: true, detect: false}\n",
            expect: Located("3:36", "unknown key `detect`"),
        },
        Case {
            key: "build.python",
            recipe: "package: {name: walk, version: '1.0'}\nbuild:\n  python: {entry_points: ['a = b.x:c']}\n  script: ['@SCRIPT@']\n",
            expect: Effect(|d, _| read(d, "bin/a").contains("from b.x import c\n")),
        },
        Case {
            key: "build.python.version_independent",
            // abi3: built per platform, installed like noarch python.
            // The host python's run exports (python_abi) do not apply.
            recipe: "package: {name: walk, version: '1.0'}\nrequirements:\n  host: [python]\nbuild:\n  python: {version_independent: true}\n  script: ['@SCRIPT@']\n",
            expect: Effect(|d, i| {
                i["depends"].as_array().unwrap().is_empty()
                    && i["noarch"] == "python"
                    && i["subdir"] == subdir()
                    && i["arch"].is_string()
                    && json(&d.join("info/link.json"))["noarch"]["type"] == "python"
            }),
        },
        Case {
            key: "build.python.entry_points (malformed)",
            recipe: "package: {name: walk, version: '1.0'}\nbuild:\n  python: {entry_points: ['a = b']}\n",
            expect: Located("3:27", "invalid entry point `a = b`"),
        },
        Case {
            key: "build.post_process",
            recipe: "package: {name: walk, version: '1.0'}\nbuild:\n  script: ['@SCRIPT@', 'echo version=old > $PREFIX/share/v.cfg']\n  post_process:\n    - files: ['share/*.cfg']\n      regex: 'version=(\\w+)'\n      replacement: 'version=new-was-$1'\n",
            expect: Effect(|d, _| read(d, "share/v.cfg") == "version=new-was-old\n" && read(d, "share/x.txt") == "x\n"),
        },
        Case {
            key: "build.post_process (invalid regex)",
            recipe: "package: {name: walk, version: '1.0'}\nbuild:\n  script: ['@SCRIPT@']\n  post_process:\n    - files: ['*']\n      regex: 'a(b'\n",
            expect: Located("6:14", "invalid regular expression"),
        },
        Case {
            key: "build.flags",
            recipe: "package: {name: walk, version: '1.0'}\nbuild:\n  flags: [x]\n",
            expect: Located("3:3", "not supported yet"),
        },
        Case {
            key: "build.variant.down_prioritize_variant",
            recipe: "package: {name: walk, version: '1.0'}\nbuild:\n  variant: {down_prioritize_variant: 2}\n  script: ['@SCRIPT@']\n",
            expect: Effect(|_, i| i["track_features"] == "walk-p-0 walk-p-1"),
        },
        // §4.1 script
        Case {
            key: "script.env",
            recipe: "package: {name: walk, version: '1.0'}\nbuild:\n  script:\n    env: {GREETING: hello}\n    content: [mkdir -p $PREFIX/share, echo $GREETING > $PREFIX/share/g.txt]\n",
            expect: Effect(|d, _| read(d, "share/g.txt") == "hello\n"),
        },
        Case {
            key: "script.file",
            recipe: "package: {name: walk, version: '1.0'}\nbuild:\n  script: {file: build.pl}\n",
            expect: Effect(|d, _| read(d, "share/x.txt") == "x\n"),
        },
        Case {
            key: "script (a one-line file name)",
            recipe: "package: {name: walk, version: '1.0'}\nbuild:\n  script: build.pl\n",
            expect: Effect(|d, _| read(d, "share/x.txt") == "x\n"),
        },
        Case {
            key: "script.interpreter",
            recipe: "package: {name: walk, version: '1.0'}\nbuild:\n  script:\n    interpreter: perl\n    content: 'mkdir \"$ENV{PREFIX}/share\"; open(my $f, \">\", \"$ENV{PREFIX}/share/x.txt\") or die; print $f \"x\\n\";'\n",
            expect: Effect(|d, _| read(d, "share/x.txt") == "x\n"),
        },
        Case {
            key: "script.interpreter (Windows only)",
            recipe: "package: {name: walk, version: '1.0'}\nbuild:\n  script: {interpreter: cmd, content: x}\n",
            expect: Located("3:25", "interpreter `cmd` runs only on Windows"),
        },
        Case {
            key: "script.interpreter (missing)",
            recipe: "package: {name: walk, version: '1.0'}\nbuild:\n  script: {interpreter: rscript, content: x}\n",
            expect: Fails("add `r-base` to `requirements.build`"),
        },
        Case {
            key: "script.cwd",
            recipe: "package: {name: walk, version: '1.0'}\nsource:\n  path: data.txt\n  target_directory: sub\nbuild:\n  script: {cwd: sub, content: [mkdir -p $PREFIX/share, pwd > $PREFIX/share/cwd.txt, cp data.txt $PREFIX/share/]}\n",
            expect: Effect(|d, _| read(d, "share/cwd.txt").trim_end().ends_with("/work/sub") && read(d, "share/data.txt") == "data\n"),
        },
        Case {
            key: "script.cwd (outside)",
            recipe: "package: {name: walk, version: '1.0'}\nbuild:\n  script: {cwd: ../x, content: x}\n",
            expect: Located("3:17", "must stay inside the work directory"),
        },
        // §5.1 requirements
        Case {
            key: "requirements.run, run_constraints",
            recipe: "package: {name: walk, version: '1.0'}\nrequirements:\n  run: [zlib >=1]\n  run_constraints: [make >=4]\nbuild:\n  script: ['@SCRIPT@']\n",
            expect: Effect(|_, i| i["depends"][0] == "zlib >=1" && i["constrains"][0] == "make >=4"),
        },
        Case {
            key: "requirements.host (and its run exports)",
            recipe: "package: {name: walk, version: '1.0'}\nrequirements:\n  host: [zlib]\nbuild:\n  script: ['@SCRIPT@']\n",
            expect: Effect(|_, i| i["depends"][0] == "zlib >=1.3,<2.0a0"),
        },
        Case {
            key: "requirements.build (and its strong run exports)",
            recipe: "package: {name: walk, version: '1.0'}\nrequirements:\n  build: [\"${{ compiler('c') }}\"]\nbuild:\n  script: ['@SCRIPT@']\n",
            expect: Effect(|_, i| i["depends"][0] == "libgcc >=12"),
        },
        Case {
            key: "requirements.ignore_run_exports",
            recipe: "package: {name: walk, version: '1.0'}\nrequirements:\n  host: [zlib]\n  ignore_run_exports: {by_name: [zlib]}\nbuild:\n  script: ['@SCRIPT@']\n",
            expect: Effect(|_, i| i["depends"].as_array().unwrap().is_empty()),
        },
        Case {
            key: "requirements.run_exports",
            recipe: "package: {name: walk, version: '1.0'}\nrequirements:\n  run_exports: {weak: [walk >=1.0]}\nbuild:\n  script: ['@SCRIPT@']\n",
            expect: Effect(|d, _| json(&d.join("info/run_exports.json"))["weak"][0] == "walk >=1.0"),
        },
        // §2 outputs
        Case {
            key: "recipe, outputs, package outputs inheriting the top level",
            recipe: "recipe: {name: walk-all, version: '4.0'}\nbuild:\n  script: ['@SCRIPT@']\noutputs:\n  - package: {name: walk-out}\n",
            expect: Effect(|d, i| i["name"] == "walk-out" && i["version"] == "4.0" && read(d, "share/x.txt") == "x\n"),
        },
        Case {
            key: "staging outputs and inherit",
            recipe: "recipe: {name: walk, version: '1.0'}\noutputs:\n  - staging: {name: walk-build}\n    build:\n      script: ['@SCRIPT@']\n  - package: {name: walk-lib}\n    inherit: walk-build\n",
            expect: Effect(|d, _| read(d, "share/x.txt") == "x\n"),
        },
        Case {
            key: "legacy top-level cache",
            recipe: "recipe: {name: walk, version: '1.0'}\ncache:\n  build:\n    script: ['@SCRIPT@']\noutputs:\n  - package: {name: walk-lib}\n",
            expect: Effect(|d, _| read(d, "share/x.txt") == "x\n"),
        },
        Case {
            key: "unknown output key",
            recipe: "recipe: {name: walk, version: '1.0'}\noutputs:\n  - package: {name: walk-lib}\n    surprise: 1\n",
            expect: Located("4:5", "surprise"),
        },
    ]
}

#[test]
fn every_recipe_key_has_an_effect_or_a_located_error() {
    let channel = fixture_channel_url();
    let all = cases();
    assert!(all.len() >= 40);
    // Every case runs; the failures are reported together.
    let failed: Vec<&str> = all
        .iter()
        .filter(|case| std::panic::catch_unwind(|| run_case(case, &channel)).is_err())
        .map(|case| case.key)
        .collect();
    assert!(
        failed.is_empty(),
        "keys without their effect or located error: {failed:?}"
    );
}
