//! Command-line surface: shell completions, the flags `kiln build --help`
//! lists, and `--render-only` writing nothing.

mod common;

use common::*;

#[test]
fn completion_scripts_name_the_subcommands_and_flags() {
    for shell in ["bash", "zsh", "fish"] {
        let o = kiln().args(["completion", shell]).run().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let text = String::from_utf8_lossy(&o.stdout);
        for word in ["skip-existing", "skip-unchanged", "package-format", "inspect"] {
            assert!(text.contains(word), "{shell}: {word} missing");
        }
    }
    let o = kiln().args(["completion", "cmd.exe"]).run().unwrap();
    assert!(!o.status.success());
    assert!(!stderr(&o).contains("panicked"));
}

#[test]
fn build_help_lists_the_maintainer_flags() {
    let o = kiln().args(["build", "--help"]).run().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    for flag in [
        "--skip-existing",
        "--skip-unchanged",
        "--no-include-recipe",
        "--markdown-summary",
        "--recipe-dir",
        "--up-to",
        "--continue-on-failure",
        "--build-number",
        "--build-num",
        "--build-string-prefix",
        "--channel-priority",
        "--exclude-newer",
        "--config-file",
        "--no-config",
        "--allow-absolute-license-paths",
        "--log-style",
        "--color",
        "--wrap-log-lines",
        "--extra-meta",
        "--package-format",
        "--compression-threads",
    ] {
        assert!(text.contains(flag), "{flag} missing from kiln build --help");
    }
}

#[test]
fn render_only_never_creates_the_output_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("not-created");
    let o = build_ok(&recipe("single"), &out, &["--render-only"]);
    assert!(!o.stdout.is_empty());
    assert!(!out.exists());
}

#[test]
fn markdown_summary_lists_built_and_reused_packages() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let summary = dir.path().join("summary.md");
    let arg = summary.to_string_lossy().into_owned();
    let recipe = write_recipe(
        dir.path(),
        "summed",
        "package: {name: summed, version: '1.0'}\nbuild:\n  script: [mkdir -p $PREFIX/share, touch $PREFIX/share/s]\n",
    );
    build_ok(&recipe, &out, &["--markdown-summary", &arg]);
    let text = std::fs::read_to_string(&summary).unwrap();
    let pkg = packages(&out).remove(0);
    let name = pkg.file_name().unwrap().to_string_lossy().into_owned();
    assert!(text.contains("| package | subdir | size | time | |"), "{text}");
    let row = text
        .lines()
        .find(|l| l.contains(&name))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains(subdir()) && row.ends_with("| built |"), "{row}");
    assert!(row.contains(" s |"), "{row}");

    // A second run appends; a reused package says so.
    build_ok(&recipe, &out, &["--markdown-summary", &arg, "--skip-existing"]);
    let text = std::fs::read_to_string(&summary).unwrap();
    assert_eq!(text.matches("### kiln build").count(), 2, "{text}");
    assert!(text.contains("| existing package used |"), "{text}");
}

#[test]
fn log_style_json_gives_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let ok = write_recipe(
        dir.path(),
        "talks",
        "package: {name: talks, version: '1.0'}\nbuild:\n  script: [echo hello-from-script, mkdir -p $PREFIX/share, touch $PREFIX/share/t]\n",
    );
    let failing = write_recipe(
        dir.path(),
        "fails",
        "package: {name: fails, version: '1.0'}\nbuild:\n  script: [exit 3]\n",
    );
    let lines = |o: &std::process::Output| -> Vec<serde_json::Value> {
        stderr(o)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    };
    let o = kiln()
        .args(["--log-style", "json", "build", "--output-dir"])
        .arg(&out)
        .arg("--recipe")
        .arg(&ok)
        .run()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let objects = lines(&o);
    assert!(objects
        .iter()
        .all(|v| v["level"].is_string() && v["fields"]["message"].is_string()));
    assert!(objects
        .iter()
        .any(|v| v["fields"]["script"] == true && v["fields"]["message"] == "hello-from-script"));

    let o = kiln()
        .args(["build", "--log-style", "json", "--output-dir"])
        .arg(&out)
        .arg("--recipe")
        .arg(&failing)
        .run()
        .unwrap();
    assert!(!o.status.success());
    let last = lines(&o).pop().unwrap();
    assert_eq!(last["level"], "ERROR");
    assert!(
        last["fields"]["message"]
            .as_str()
            .unwrap()
            .contains("failed (exit code 3)"),
        "{last}"
    );
}

#[test]
fn color_and_wrapping_follow_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let deep = dir
        .path()
        .join("a-rather-long-directory-name/and-another-long-directory-name");
    let failing = write_recipe(
        &deep,
        "fails",
        "package: {name: fails, version: '1.0'}\nbuild:\n  script: [exit 3]\n",
    );
    let run = |flags: &[&str], env: &[(&str, &str)]| {
        kiln()
            .envs(env.iter().copied())
            .args(flags)
            .arg("build")
            .arg("--output-dir")
            .arg(&out)
            .arg("--recipe")
            .arg(&failing)
            .run()
            .unwrap()
    };
    assert!(stderr(&run(&["--color", "always"], &[])).contains("\x1b["));
    assert!(!stderr(&run(&["--color", "never"], &[("CLICOLOR_FORCE", "1")])).contains("\x1b["));
    assert!(stderr(&run(&[], &[("CLICOLOR_FORCE", "1")])).contains("\x1b["));
    assert!(!stderr(&run(&[], &[])).contains("\x1b["));
    // `auto` off a terminal: no colors, also without NO_COLOR.
    let o = kiln()
        .env_remove("NO_COLOR")
        .args(["build", "--output-dir"])
        .arg(&out)
        .arg("--recipe")
        .arg(&failing)
        .run()
        .unwrap();
    assert!(
        !stderr(&o).contains("\x1b[") && stderr(&o).contains("exit code 3"),
        "{}",
        stderr(&o)
    );

    // The error names `<recipe path>:3:11: build script of ...` on one line unless wrapping is asked for.
    let whole = format!("{}:3:11: build script of fails", failing.join("recipe.yaml").display());
    assert!(stderr(&run(&[], &[])).contains(&whole));
    let wrapped = stderr(&run(&["--wrap-log-lines", "true"], &[]));
    assert!(!wrapped.contains(&whole), "{wrapped}");
    assert!(wrapped.contains("exit code 3"), "{wrapped}");
}

#[test]
fn recipe_from_standard_input_stores_only_its_text() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    std::fs::write(cwd.join("unrelated.txt"), "not part of any recipe").unwrap();
    std::fs::write(
        cwd.join("build.sh"),
        "mkdir -p $PREFIX/share\necho from-build-sh > $PREFIX/share/s\n",
    )
    .unwrap();
    let text = "package: {name: piped, version: '1.0'}\nbuild:\n  script: build.sh\n";
    let input = dir.path().join("piped.yaml");
    std::fs::write(&input, text).unwrap();
    let out = dir.path().join("out");
    let o = kiln()
        .current_dir(&cwd)
        .args(["build", "--recipe", "-", "--output-dir"])
        .arg(&out)
        .run_with_input(Some(&input))
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let x = extract(&packages(&out)[0]);
    // The script next to where kiln ran was used ...
    assert_eq!(
        std::fs::read_to_string(x.path().join("share/s")).unwrap(),
        "from-build-sh\n"
    );
    // ... but info/recipe/ holds the recipe alone.
    assert_eq!(
        std::fs::read_to_string(x.path().join("info/recipe/recipe.yaml")).unwrap(),
        text
    );
    let mut stored: Vec<String> = std::fs::read_dir(x.path().join("info/recipe"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    stored.sort();
    assert_eq!(stored, ["recipe.yaml", "rendered_recipe.yaml", "variant_config.yaml"]);

    // Mistakes point at <stdin>; empty input is an error.
    std::fs::write(&input, "package: {name: piped, version: '1.0'}\nbuild:\n  nmber: 1\n").unwrap();
    let o = kiln()
        .current_dir(&cwd)
        .args(["build", "--recipe", "-", "--output-dir"])
        .arg(&out)
        .run_with_input(Some(&input))
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("<stdin>:3:3"), "{}", stderr(&o));
    std::fs::write(&input, "").unwrap();
    let o = kiln()
        .args(["build", "--recipe", "-", "--output-dir"])
        .arg(&out)
        .run_with_input(Some(&input))
        .unwrap();
    assert!(stderr(&o).contains("standard input is empty"), "{}", stderr(&o));
}

#[test]
fn config_flags_are_refused_where_they_would_do_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let o = kiln()
        .args(["--no-config", "cache", "list", "--output-dir"])
        .arg(dir.path())
        .run()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(
            "--config-file and --no-config apply to build, debug, publish, upload, test and create-patch only"
        ),
        "{}",
        stderr(&o)
    );
}
