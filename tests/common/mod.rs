//! Helpers shared by the integration tests: run the real `kiln` binary on
//! recipes under `tests/recipes/` and look inside the packages it writes.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use serde_json::Value;

/// Seconds any kiln run may take before the test fails
/// (`KILN_TEST_TIMEOUT`, default 300): a hang fails instead of blocking CI.
pub fn timeout() -> std::time::Duration {
    let secs = std::env::var("KILN_TEST_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    std::time::Duration::from_secs(secs)
}

/// `Command::output` with [`timeout`]: the process is killed and the test
/// fails when it takes longer.
pub trait RunExt {
    /// Run to completion, capturing stdout and stderr.
    fn run(&mut self) -> std::io::Result<Output> {
        self.run_with_input(None)
    }
    /// [`RunExt::run`] with standard input read from `input`.
    fn run_with_input(&mut self, input: Option<&Path>) -> std::io::Result<Output>;
}

impl RunExt for std::process::Command {
    fn run_with_input(&mut self, input: Option<&Path>) -> std::io::Result<Output> {
        let stdin = match input {
            Some(file) => std::process::Stdio::from(std::fs::File::open(file)?),
            None => std::process::Stdio::null(),
        };
        let child = self
            .stdin(stdin)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        Ok(wait_with_timeout(child))
    }
}

/// Wait for a spawned child (with piped or null output) for at most
/// [`timeout`]; kill it and fail the test when it takes longer.
pub fn wait_with_timeout(mut child: std::process::Child) -> Output {
    use std::io::Read;
    let pipe = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = pipe(child.stdout.take().map(|o| Box::new(o) as Box<dyn Read + Send>));
    let err = pipe(child.stderr.take().map(|e| Box::new(e) as Box<dyn Read + Send>));
    let deadline = std::time::Instant::now() + timeout();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let err = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
            panic!(
                "kiln did not finish within {:?}; it was killed. stderr:\n{err}",
                timeout()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Path of a test recipe.
pub fn recipe(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/recipes").join(rel)
}

/// A `kiln` command with a clean, deterministic environment. Repodata and
/// packages are cached in a directory private to this test process.
pub fn kiln() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"));
    cmd.env_remove("SOURCE_DATE_EPOCH")
        .env_remove("CONDA_BLD_PATH")
        .env_remove("KILN_NETWORK_TIMEOUT")
        .env("KILN_CACHE_DIR", cache_dir())
        // No configuration file of this machine's user applies.
        .env("XDG_CONFIG_HOME", cache_dir().join("no-config-home"))
        .env("KILN_HOME", cache_dir().join("no-kiln-home"))
        .env_remove("RATTLER_HOME")
        .env("NO_COLOR", "1");
    cmd
}

/// The repodata and package cache of this test process.
pub fn cache_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

/// A channel of stand-in packages (compilers, make, cmake, zlib, python),
/// built by kiln itself from `tests/fixtures/channel/*` once per test process.
pub fn fixture_channel() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/channel");
        // One run over the directory: kiln orders the recipes by what they need.
        let o = kiln()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(["build", "--recipe-dir"])
            .arg(&root)
            .arg("--output-dir")
            .arg(dir.path())
            .run()
            .unwrap();
        assert!(o.status.success(), "building the fixture channel:\n{}", stderr(&o));
        dir
    })
    .path()
}

/// `file://` URL of the fixture channel.
pub fn fixture_channel_url() -> String {
    url::Url::from_directory_path(fixture_channel()).unwrap().to_string()
}

/// Serve `dir` over HTTP on 127.0.0.1 for the rest of the test process;
/// returns the base URL. A `/t/<token>/` path prefix is ignored. Missing files are 404 (as for a channel without
/// `repodata.json.zst` or shards).
pub fn serve_http(dir: &Path) -> String {
    serve_http_logged(dir, 0).url
}

/// A test HTTP server and the paths it was asked for.
pub struct Served {
    /// Base URL (`http://127.0.0.1:PORT`).
    pub url: String,
    /// Every request's path, in order.
    pub requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Served {
    /// How many requests asked for a path ending in `suffix`.
    pub fn count(&self, suffix: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.ends_with(suffix))
            .count()
    }
}

/// Like [`serve_http`], recording requests; the first `fail_first`
/// requests are answered `503 Service Unavailable` (a transient failure).
/// A file `NAME.redirect` makes `NAME` a redirect to the URL it holds.
pub fn serve_http_logged(dir: &Path, fail_first: usize) -> Served {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let port = server.server_addr().to_ip().unwrap().port();
    let root = dir.to_path_buf();
    let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = requests.clone();
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            let root = root.clone();
            let log = log.clone();
            // Each request is answered on its own thread, so one slow or
            // stalled connection never holds back the others.
            std::thread::spawn(move || answer(request, &root, &log, fail_first));
        }
    });
    Served {
        url: format!("http://127.0.0.1:{port}"),
        requests,
    }
}

/// Answer one request of [`serve_http_logged`].
fn answer(request: tiny_http::Request, root: &Path, log: &std::sync::Mutex<Vec<String>>, fail_first: usize) {
    let mut rel = request
        .url()
        .trim_start_matches('/')
        .split('?')
        .next()
        .unwrap_or("")
        .to_string();
    let seen = {
        let mut log = log.lock().unwrap();
        log.push(rel.clone());
        log.len()
    };
    if seen <= fail_first {
        let _ = request.respond(tiny_http::Response::empty(503));
        return;
    }
    // A `/t/<token>/` prefix (anaconda.org-style tokens) is accepted and ignored.
    if let Some(rest) = rel.strip_prefix("t/") {
        rel = rest.split_once('/').map_or(String::new(), |(_, r)| r.to_string());
    }
    let path = root.join(&rel);
    // `NAME.redirect` holds the URL that `NAME` redirects to.
    let redirect = root.join(format!("{rel}.redirect"));
    let response = if !rel.contains("..") && redirect.is_file() {
        let to = std::fs::read_to_string(&redirect).unwrap();
        let header = tiny_http::Header::from_bytes("Location", to.trim()).unwrap();
        tiny_http::Response::empty(302).with_header(header).boxed()
    } else if !rel.contains("..") && path.is_file() {
        let file = std::fs::File::open(&path).unwrap();
        tiny_http::Response::from_file(file).boxed()
    } else {
        tiny_http::Response::empty(404).boxed()
    };
    let _ = request.respond(response);
}

/// A server on 127.0.0.1 that accepts connections and never answers.
pub fn silent_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    format!("http://127.0.0.1:{port}")
}

/// A port on 127.0.0.1 nothing listens on.
pub fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/nothing-here")
}

/// Run `kiln build --recipe <recipe> --output-dir <out> <extra>`.
pub fn build(recipe: &Path, out: &Path, extra: &[&str]) -> Output {
    build_with_env(recipe, out, extra, &[])
}

/// [`build`] with extra environment variables.
pub fn build_with_env(recipe: &Path, out: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    kiln()
        .envs(env.iter().copied())
        .arg("build")
        .arg("--recipe")
        .arg(recipe)
        .arg("--output-dir")
        .arg(out)
        .args(extra)
        .run()
        .expect("kiln runs")
}

/// Assert that a run failed without panicking, left no package in `out`,
/// and said each of `needles` on stderr.
pub fn assert_failed_with(o: &Output, out: &Path, needles: &[&str]) {
    let log = stderr(o);
    assert!(!o.status.success(), "expected a failure:\n{log}");
    assert!(!log.contains("panicked"), "kiln panicked:\n{log}");
    for n in needles {
        assert!(log.contains(n), "expected `{n}` in:\n{log}");
    }
    assert!(packages(out).is_empty(), "no package may be left behind");
}

/// Like [`build`], but panics with kiln's stderr when the build fails.
pub fn build_ok(recipe: &Path, out: &Path, extra: &[&str]) -> Output {
    let o = build(recipe, out, extra);
    assert!(o.status.success(), "kiln failed:\n{}", stderr(&o));
    o
}

/// Stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// All package files (`.conda`, `.tar.bz2`) below `out/<subdir>` dirs, sorted by name.
pub fn packages(out: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walkdir::WalkDir::new(out)
        .max_depth(2)
        .into_iter()
        .filter_map(|e| e.ok())
        .map(|e| e.path().to_path_buf())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.ends_with(".conda") || n.ends_with(".tar.bz2")
        })
        .collect();
    v.sort();
    v
}

/// File names of [`packages`].
pub fn package_names(out: &Path) -> Vec<String> {
    packages(out)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// Extract a package into a fresh directory.
pub fn extract(pkg: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    rattler_package_streaming::fs::extract(pkg, dir.path()).expect("package extracts");
    dir
}

/// Read a JSON file.
pub fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// Non-`info/` files of an extracted package, relative and sorted.
pub fn content_files(dir: &Path) -> Vec<String> {
    files_outside(dir, "info/")
}

/// Files and symlinks below `dir`, relative and sorted, except those
/// whose path starts with `skip`.
pub fn files_outside(dir: &Path, skip: &str) -> Vec<String> {
    let mut v: Vec<String> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_type().is_dir())
        .map(|e| e.path().strip_prefix(dir).unwrap().to_string_lossy().into_owned())
        .filter(|p| !p.starts_with(skip))
        .collect();
    v.sort();
    v
}

/// The `paths` array of `info/paths.json`, keyed by `_path`.
pub fn paths_json(dir: &Path) -> std::collections::BTreeMap<String, Value> {
    let pj = json(&dir.join("info/paths.json"));
    assert_eq!(pj["paths_version"], 1);
    pj["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["_path"].as_str().unwrap().to_string(), e.clone()))
        .collect()
}

/// The platform kiln builds for on this machine.
pub fn subdir() -> &'static str {
    rattler_conda_types::Subdir::current().unwrap().as_str()
}

/// The three symlinks of the `symlinks` recipes: relative kept, absolute
/// into the prefix made relative, broken kept.
pub fn assert_three_symlinks(d: &Path) {
    assert_eq!(
        std::fs::read_link(d.join("lib/relative.txt")).unwrap(),
        Path::new("real.txt")
    );
    assert_eq!(
        std::fs::read_link(d.join("bin/absolute.txt")).unwrap(),
        Path::new("../lib/real.txt")
    );
    assert_eq!(
        std::fs::read_link(d.join("lib/broken.txt")).unwrap(),
        Path::new("does-not-exist.txt")
    );
    let paths = paths_json(d);
    for link in ["lib/relative.txt", "bin/absolute.txt", "lib/broken.txt"] {
        assert_eq!(paths[link]["path_type"], "softlink", "{link}");
    }
}

/// The trusted cache entries (`staging_<64 hex>` directories).
pub fn cache_entries(cache: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(cache)
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| {
        let n = p.file_name().unwrap().to_string_lossy().into_owned();
        n.strip_prefix("staging_")
            .is_some_and(|k| k.len() == 64 && k.chars().all(|c| c.is_ascii_hexdigit()))
    });
    v.sort();
    v
}

/// The strings of a JSON array (`depends`, `constrains`); empty for anything else.
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// Write `text` as `recipe.yaml` into a new directory `dir/name`; returns the directory.
pub fn write_recipe(dir: &Path, name: &str, text: &str) -> PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("recipe.yaml"), text).unwrap();
    d
}

/// Every file below `dir`, with each package in it also extracted and
/// searched: the paths (and, for packages, inner paths) containing `needle`.
pub fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    for e in walkdir::WalkDir::new(dir).into_iter().filter_map(|e| e.ok()) {
        if !e.file_type().is_file() {
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".conda") || name.ends_with(".tar.bz2") {
            let x = extract(e.path());
            for inner in files_containing(x.path(), needle) {
                hits.push(format!("{}!{inner}", e.path().display()));
            }
            continue;
        }
        let data = std::fs::read(e.path()).unwrap_or_default();
        if data.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            hits.push(e.path().display().to_string());
        }
    }
    hits
}

/// The machine's own CPython as a real `python` package (with `pip`), in a
/// channel of its own, built once per test process from
/// `tests/fixtures/python-real`. Returns the channel and the two versions
/// it holds: the interpreter's own (`3.11.7`) and a second one, the same
/// interpreter recorded as `3.99.0`, so tests can ask for two versions on
/// a machine that has one Python.
pub fn real_python_channel() -> &'static (PathBuf, String, String) {
    static CHANNEL: OnceLock<(tempfile::TempDir, String, String)> = OnceLock::new();
    let (dir, a, b) = CHANNEL.get_or_init(|| {
        let probe = std::process::Command::new("python3")
            .arg("-c")
            .arg("import os, sys; print(os.path.realpath(sys.executable)); print('%d.%d.%d' % sys.version_info[:3])")
            .run()
            .unwrap();
        assert!(probe.status.success(), "python3 runs: {}", stderr(&probe));
        let text = String::from_utf8_lossy(&probe.stdout).into_owned();
        let mut lines = text.lines();
        let (exe, version) = (lines.next().unwrap().to_string(), lines.next().unwrap().to_string());
        let dir = tempfile::tempdir().unwrap();
        let recipe = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/python-real");
        for v in [version.as_str(), "3.99.0"] {
            let o = kiln()
                .env("SOURCE_DATE_EPOCH", "1700000000")
                .env("KILN_FIXTURE_PYTHON", &exe)
                .env("KILN_FIXTURE_PYTHON_VERSION", v)
                .args(["build", "--no-test", "--recipe"])
                .arg(&recipe)
                .arg("--output-dir")
                .arg(dir.path())
                .run()
                .unwrap();
            assert!(o.status.success(), "building the python fixture {v}:\n{}", stderr(&o));
        }
        (dir, version, "3.99.0".to_string())
    });
    // Leaked on purpose: the channel lives as long as the test process.
    static VIEW: OnceLock<(PathBuf, String, String)> = OnceLock::new();
    VIEW.get_or_init(|| (dir.path().to_path_buf(), a.clone(), b.clone()))
}

/// Run a Python snippet in `dir` (it writes archives or packages there).
pub fn python(dir: &Path, code: &str) {
    let o = std::process::Command::new("python3")
        .arg("-c")
        .arg(code)
        .current_dir(dir)
        .run()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}

/// A channel with no packages at `dir`; returns its `file://` URL.
pub fn empty_channel(dir: &Path) -> String {
    std::fs::create_dir_all(dir.join("noarch")).unwrap();
    std::fs::write(
        dir.join("noarch/repodata.json"),
        r#"{"packages":{},"packages.conda":{}}"#,
    )
    .unwrap();
    url::Url::from_directory_path(dir).unwrap().to_string()
}
