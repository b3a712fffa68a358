//! Trust: no hang (dotted names, two processes, lock waits, daemons), a
//! staging key that misses exactly when an input changed, correct
//! relocation, and a cache that `kiln cache clean` cannot cut from under a
//! running build. Each test runs the real `kiln` binary with a timeout.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// Wait until `path` exists (a script's "I am running" marker).
fn wait_for_file(path: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(Instant::now() < deadline, "{what} never happened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Start `kiln build --experimental --recipe R --output-dir OUT` in the
/// background with stderr going to `log`.
fn spawn_build(recipe: &Path, out: &Path, log: &Path, env: &[(&str, &Path)], extra: &[&str]) -> std::process::Child {
    let mut cmd = kiln();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(["build", "--experimental", "--recipe"])
        .arg(recipe)
        .arg("--output-dir")
        .arg(out)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_default()
}

#[test]
fn outputs_whose_names_differ_after_a_dot_build_in_one_run() {
    // `my.package` and `my.package-a` once shared the lock file `kiln_my.lock`,
    // and the run blocked forever on its own lock.
    let dir = tempfile::tempdir().unwrap();
    let r = write_recipe(
        dir.path(),
        "dotted",
        r#"
recipe: {name: my.package, version: "1.0"}
outputs:
  - package: {name: my.package}
    build:
      script: [mkdir -p $PREFIX/share, echo a > $PREFIX/share/a.txt]
  - package: {name: my.package-a}
    build:
      script: [mkdir -p $PREFIX/share, echo b > $PREFIX/share/b.txt]
  - package: {name: zope.interface}
    build:
      script: [mkdir -p $PREFIX/share, echo c > $PREFIX/share/c.txt]
  - package: {name: zope.event}
    build:
      script: [mkdir -p $PREFIX/share, echo d > $PREFIX/share/d.txt]
"#,
    );
    let out = dir.path().join("out");
    build_ok(&r, &out, &[]);
    let names = package_names(&out);
    assert_eq!(names.len(), 4, "{names:?}");
    for n in [
        "my.package-1.0",
        "my.package-a-1.0",
        "zope.interface-1.0",
        "zope.event-1.0",
    ] {
        assert!(names.iter().any(|p| p.starts_with(n)), "{n} in {names:?}");
    }
}

const DEADLOCK_STAGING: &str = r#"
  - staging: {name: dl-build}
    build:
      script:
        secrets: [KILN_TEST_COUNTER]
        content:
          - echo run >> "$KILN_TEST_COUNTER"
          - sleep 2
          - mkdir -p $PREFIX/lib
          - echo x > $PREFIX/lib/x.txt
"#;

#[test]
fn two_processes_sharing_a_staging_entry_and_a_build_directory_do_not_deadlock() {
    // A builds `dl` in the directory the staging build also uses, then needs
    // the staging entry; B starts while A's `dl` runs and builds that entry.
    // Holding the directory across builds (A) while B held the entry's lock
    // and waited for the directory was a deadlock.
    let dir = tempfile::tempdir().unwrap();
    let a = write_recipe(
        dir.path(),
        "a",
        &format!(
            r#"
recipe: {{name: dl, version: "1.0"}}
outputs:{DEADLOCK_STAGING}
  - package: {{name: dl}}
    build:
      script:
        secrets: [KILN_TEST_MARK]
        content: [touch "$KILN_TEST_MARK", sleep 3, mkdir -p $PREFIX/share, echo a > $PREFIX/share/a.txt]
  - package: {{name: dl-lib}}
    inherit: dl-build
"#
        ),
    );
    let b = write_recipe(
        dir.path(),
        "b",
        &format!(
            r#"
recipe: {{name: dl, version: "1.0"}}
outputs:{DEADLOCK_STAGING}
  - package: {{name: dl-other}}
    inherit: dl-build
"#
        ),
    );
    let out = dir.path().join("out");
    let counter = dir.path().join("counter.txt");
    let mark = dir.path().join("a-is-building-dl");
    let (log_a, log_b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let env = [
        ("KILN_TEST_COUNTER", counter.as_path()),
        ("KILN_TEST_MARK", mark.as_path()),
    ];
    let first = spawn_build(&a, &out, &log_a, &env, &[]);
    wait_for_file(&mark, "A's build of dl");
    let second = spawn_build(&b, &out, &log_b, &env, &[]);
    let (ra, rb) = (wait_with_timeout(first), wait_with_timeout(second));
    assert!(ra.status.success(), "A failed:\n{}", read(&log_a));
    assert!(rb.status.success(), "B failed:\n{}", read(&log_b));
    assert_eq!(read(&counter).lines().count(), 1, "one staging build serves both runs");
    let names = package_names(&out);
    for n in ["dl-1.0", "dl-lib-1.0", "dl-other-1.0"] {
        assert!(names.iter().any(|p| p.starts_with(n)), "{n} in {names:?}");
    }
}

#[test]
fn a_lock_wait_names_the_holder_and_ctrl_c_ends_it() {
    let dir = tempfile::tempdir().unwrap();
    let r = write_recipe(
        dir.path(),
        "locked",
        "package: {name: locked, version: '1.0'}\nbuild:\n  script: [mkdir -p $PREFIX/share, touch $PREFIX/share/x]\n",
    );
    let out = dir.path().join("out");
    let lock_path = out.join("bld/.locks/kiln_locked.lock");
    fs::create_dir_all(lock_path.parent().unwrap()).unwrap();
    let held = fs::File::create(&lock_path).unwrap();
    held.lock().unwrap();
    fs::write(&lock_path, std::process::id().to_string()).unwrap();

    let log = dir.path().join("kiln.log");
    let child = spawn_build(&r, &out, &log, &[], &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !read(&log).contains("waiting for") {
        assert!(Instant::now() < deadline, "kiln never said it waits:\n{}", read(&log));
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = read(&log);
    assert!(text.contains(&format!("held by pid {}", std::process::id())), "{text}");
    assert!(text.contains("kiln_locked"), "{text}");

    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let o = wait_with_timeout(child);
    assert!(!o.status.success(), "Ctrl-C must end the wait");
    assert!(packages(&out).is_empty());
    drop(held);
}

#[test]
fn a_daemon_left_holding_the_scripts_output_does_not_hang_the_build() {
    let dir = tempfile::tempdir().unwrap();
    let r = write_recipe(
        dir.path(),
        "daemon",
        r#"
package: {name: daemon, version: "1.0"}
build:
  script:
    secrets: [KILN_TEST_PIDFILE]
    content:
      # A compiler server: keeps stdout and stderr open long after the script.
      - sleep 600 &
      - echo $! > "$KILN_TEST_PIDFILE"
      - mkdir -p $PREFIX/share
      - echo done > $PREFIX/share/done.txt
"#,
    );
    let out = dir.path().join("out");
    let pidfile = dir.path().join("daemon.pid");
    let o = kiln()
        .env("KILN_TEST_PIDFILE", &pidfile)
        .args(["build", "--recipe"])
        .arg(&r)
        .arg("--output-dir")
        .arg(&out)
        .run()
        .unwrap();
    if let Ok(pid) = fs::read_to_string(&pidfile) {
        let _ = std::process::Command::new("kill").arg(pid.trim()).status();
    }
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("still holds its output open"), "{}", stderr(&o));
    assert_eq!(packages(&out).len(), 1);
}

#[test]
fn the_staging_key_covers_the_version_and_recipe_directory_files_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("r");
    fs::create_dir_all(&r).unwrap();
    let text = fs::read_to_string(recipe("staging/basic/recipe.yaml")).unwrap();
    fs::write(r.join("recipe.yaml"), &text).unwrap();
    // The output directory sits inside the recipe directory: what kiln
    // writes there is not an input.
    let out = r.join("output");
    build_ok(&r, &out, &["--experimental"]);
    let o = build_ok(&r, &out, &["--experimental"]);
    assert!(stderr(&o).contains("cache hit"), "{}", stderr(&o));

    fs::write(r.join("recipe.yaml"), text.replace("'0.1.0'", "'0.2.0'")).unwrap();
    let o = build_ok(&r, &out, &["--experimental"]);
    let log = stderr(&o);
    assert!(
        log.contains("cache miss") && log.contains("the version (0.1.0 → 0.2.0)"),
        "{log}"
    );

    fs::write(r.join("helper.sh"), "echo helper\n").unwrap();
    let o = build_ok(&r, &out, &["--experimental"]);
    let log = stderr(&o);
    assert!(log.contains("files in the recipe directory (helper.sh added)"), "{log}");
    fs::write(r.join("helper.sh"), "echo changed\n").unwrap();
    let o = build_ok(&r, &out, &["--experimental"]);
    assert!(stderr(&o).contains("helper.sh changed"), "{}", stderr(&o));
    assert_eq!(cache_entries(&out.join("build_cache")).len(), 4);
    let meta = json(&cache_entries(&out.join("build_cache"))[0].join("metadata.json"));
    assert!(meta["key_inputs"]["build_logic"].is_number(), "{meta}");
}

#[test]
fn other_runs_output_directories_are_not_inputs_and_links_are_followed() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("r");
    let shared = dir.path().join("shared");
    fs::create_dir_all(&r).unwrap();
    fs::create_dir_all(&shared).unwrap();
    fs::copy(recipe("staging/basic/recipe.yaml"), r.join("recipe.yaml")).unwrap();
    fs::write(shared.join("helper.sh"), "echo one\n").unwrap();
    std::os::unix::fs::symlink("../shared/helper.sh", r.join("helper.sh")).unwrap();
    let cache = dir.path().join("cache");
    let args = ["--experimental", "--staging-cache-dir", cache.to_str().unwrap()];
    build_ok(&r, &r.join("out1"), &args);
    // out1 (packages, bld/) now sits in the recipe directory: not an input.
    let o = build_ok(&r, &r.join("out2"), &args);
    assert!(stderr(&o).contains("cache hit"), "{}", stderr(&o));
    // The content behind a link is an input.
    fs::write(shared.join("helper.sh"), "echo two\n").unwrap();
    let o = build_ok(&r, &r.join("out2"), &args);
    assert!(stderr(&o).contains("helper.sh changed"), "{}", stderr(&o));
}

const RELOCATION: &str = r#"
recipe: {name: reloc, version: "1.0"}
outputs:
  - staging: {name: reloc-build}
    build:
      script:
        secrets: [KILN_TEST_COUNTER]
        content:
          - echo run >> "$KILN_TEST_COUNTER"
          # Many files that differ only in their extension, all naming the work dir.
          - for i in $(seq 1 40); do yes "$SRC_DIR/config.$i" | head -c 100000 > "$SRC_DIR/config.$i"; done
          # A binary file: a NUL-terminated path, then bytes that must not move.
          - printf 'head\0%s/obj.o\0tail\001\002\003' "$SRC_DIR" > "$SRC_DIR/binary.dat"
          - mkdir -p $PREFIX/lib
          - echo lib > $PREFIX/lib/x.txt
  - package: {name: reloc}
    inherit: reloc-build
    build:
      script:
        - mkdir -p $PREFIX/share/reloc
        - cp $SRC_DIR/config.* $SRC_DIR/binary.dat $PREFIX/share/reloc/
"#;

/// The work directory of the `reloc` build in `out`.
fn work_dir(out: &Path) -> String {
    format!("{}/bld/kiln_reloc/work", out.canonicalize().unwrap().display())
}

fn config_text(work: &str, i: usize) -> Vec<u8> {
    let line = format!("{work}/config.{i}\n");
    line.repeat(100000 / line.len() + 1).into_bytes()[..100000].to_vec()
}

#[test]
fn restores_relocate_text_and_binary_files_to_a_new_work_directory() {
    let dir = tempfile::tempdir().unwrap();
    let r = write_recipe(dir.path(), "reloc", RELOCATION);
    let cache = dir.path().join("cache");
    let counter = dir.path().join("counter.txt");
    let build = |out: &Path| {
        let o = build_with_env(
            &r,
            out,
            &["--experimental", "--staging-cache-dir", cache.to_str().unwrap()],
            &[("KILN_TEST_COUNTER", counter.to_str().unwrap())],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let pkg = extract(&packages(out)[0]);
        (pkg, stderr(&o))
    };
    let first = dir.path().join("output-number-one");
    let (_, _) = build(&first);
    let old = config_text(&work_dir(&first), 1);

    // A shorter work directory: a cache hit, every file relocated.
    let second = dir.path().join("o2");
    let (pkg, log) = build(&second);
    assert!(log.contains("cache hit"), "{log}");
    let new_work = work_dir(&second);
    for i in 1..=40 {
        let got = fs::read(pkg.path().join(format!("share/reloc/config.{i}"))).unwrap();
        let want = String::from_utf8(config_text(&work_dir(&first), i))
            .unwrap()
            .replace(&work_dir(&first), &new_work);
        assert!(got == want.as_bytes(), "config.{i} was not relocated correctly");
    }
    assert_ne!(old, fs::read(pkg.path().join("share/reloc/config.1")).unwrap());
    let binary = fs::read(pkg.path().join("share/reloc/binary.dat")).unwrap();
    let original_len = format!("head\0{}/obj.o\0tail\x01\x02\x03", work_dir(&first)).len();
    assert_eq!(binary.len(), original_len, "a binary file keeps its length");
    let padding = work_dir(&first).len() - new_work.len();
    let mut want = format!("head\0{new_work}/obj.o").into_bytes();
    want.extend(std::iter::repeat_n(0u8, padding + 1));
    want.extend_from_slice(b"tail\x01\x02\x03");
    assert_eq!(binary, want, "the string is NUL-padded; the bytes after it stay");
    assert_eq!(read(&counter).lines().count(), 1);

    // A longer work directory cannot be written into the binary file: the
    // entry is not used for this run (a miss that says why), never an error.
    let third = dir.path().join("output-number-three-with-a-much-longer-name");
    let (pkg, log) = build(&third);
    assert!(
        log.contains("cannot be used here") && log.contains("binary.dat"),
        "{log}"
    );
    let binary = fs::read(pkg.path().join("share/reloc/binary.dat")).unwrap();
    assert!(String::from_utf8_lossy(&binary).contains(&work_dir(&third)));
    assert_eq!(read(&counter).lines().count(), 2);
    // The published entry is still the one built first.
    assert_eq!(cache_entries(&cache).len(), 1);
    let leftovers: Vec<PathBuf> = fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with(".tmp-") || n.starts_with(".private-")
        })
        .collect();
    assert!(leftovers.is_empty(), "the private rebuild is removed: {leftovers:?}");
}

#[test]
fn cache_clean_keeps_an_entry_a_running_build_uses_and_runs_sweep_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let r = write_recipe(
        dir.path(),
        "inuse",
        r#"
recipe: {name: inuse, version: "1.0"}
outputs:
  - staging: {name: inuse-build}
    build:
      script: [mkdir -p $PREFIX/lib, echo x > $PREFIX/lib/x.txt]
  - package: {name: inuse}
    inherit: inuse-build
    build:
      script:
        secrets: [KILN_TEST_MARK]
        content: [touch "$KILN_TEST_MARK", sleep 3]
"#,
    );
    let out = dir.path().join("out");
    let cache = out.join("build_cache");
    // What killed processes leave behind.
    let dead_tmp = cache.join(format!(".tmp-staging_{}-999999", "a".repeat(64)));
    fs::create_dir_all(dead_tmp.join("prefix")).unwrap();
    fs::create_dir_all(cache.join(".trash-staging_x-1/entry")).unwrap();
    fs::create_dir_all(cache.join(".locks")).unwrap();
    fs::write(cache.join(".locks/staging_dead.build.lock"), "999999").unwrap();

    let mark = dir.path().join("inheritor-running");
    let log = dir.path().join("build.log");
    let child = spawn_build(&r, &out, &log, &[("KILN_TEST_MARK", mark.as_path())], &[]);
    wait_for_file(&mark, "the inheritor's script");
    let clean = kiln().args(["cache", "clean", "--output-dir"]).arg(&out).run().unwrap();
    assert!(clean.status.success(), "{}", stderr(&clean));
    assert!(
        stderr(&clean).contains("a running kiln build is using it"),
        "{}",
        stderr(&clean)
    );
    assert_eq!(cache_entries(&cache).len(), 1, "the entry in use is kept");
    let o = wait_with_timeout(child);
    assert!(o.status.success(), "{}", read(&log));
    assert!(!dead_tmp.exists() && !cache.join(".trash-staging_x-1").exists());
    assert!(!cache.join(".locks/staging_dead.build.lock").exists());
    assert!(cache.join("CACHEDIR.TAG").is_file());

    // Nobody uses it now: clean removes it, leaving no trash behind.
    let clean = kiln().args(["cache", "clean", "--output-dir"]).arg(&out).run().unwrap();
    assert!(clean.status.success());
    assert!(cache_entries(&cache).is_empty());
    let rest: Vec<String> = fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".trash") || n.starts_with(".tmp"))
        .collect();
    assert!(rest.is_empty(), "{rest:?}");
}
