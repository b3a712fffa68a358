//! `kiln publish` and `kiln upload`: the real `kiln` binary puts packages
//! into a local channel (indexed, readable as a channel) and uploads them
//! to a Quetz-style server on 127.0.0.1 that the test runs.

mod common;

use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};

use common::*;

const RECIPE: &str = "package: {name: published, version: '1.0'}\nbuild:\n  script: [mkdir -p $PREFIX/share, echo CONTENT > $PREFIX/share/p.txt]\n";

fn publish(recipe: &Path, out: &Path, to: &str, extra: &[&str]) -> std::process::Output {
    kiln()
        .args(["publish", "--to", to, "--recipe"])
        .arg(recipe)
        .arg("--output-dir")
        .arg(out)
        .args(extra)
        .run()
        .unwrap()
}

/// The `(file name, build_number)` of every package the channel's index lists.
fn indexed(channel: &Path) -> Vec<(String, u64)> {
    let mut all = Vec::new();
    for subdir in fs::read_dir(channel).unwrap() {
        let repodata = subdir.unwrap().path().join("repodata.json");
        if !repodata.is_file() {
            continue;
        }
        let r = json(&repodata);
        for key in ["packages", "packages.conda"] {
            for (name, record) in r[key].as_object().into_iter().flatten() {
                all.push((name.clone(), record["build_number"].as_u64().unwrap()));
            }
        }
    }
    all.sort();
    all
}

#[test]
fn publish_into_a_local_channel_twice() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = write_recipe(dir.path(), "published", &RECIPE.replace("CONTENT", "one"));
    let out = dir.path().join("out");
    let channel = dir.path().join("channel");
    let to = url::Url::from_directory_path(&channel).unwrap().to_string();

    let o = publish(&recipe, &out, &to, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(indexed(&channel).iter().map(|(_, n)| *n).collect::<Vec<_>>(), [0]);
    assert!(channel.join(".kiln").is_dir() && !channel.join("bld").exists());

    // +1 counts from the target channel, which this fresh output directory does not hold.
    let out2 = dir.path().join("out2");
    let o = publish(&recipe, &out2, &to, &["--build-number", "+1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(indexed(&channel).iter().map(|(_, n)| *n).collect::<Vec<_>>(), [0, 1]);

    // The same package again is kept; a different one under its name needs --force.
    let o = publish(&recipe, &out, &to, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("is already in"), "{}", stderr(&o));
    fs::write(recipe.join("recipe.yaml"), RECIPE.replace("CONTENT", "two")).unwrap();
    let o = publish(&recipe, &out, &to, &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("already holds a different"), "{}", stderr(&o));
    let o = publish(&recipe, &out, &to, &["--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(indexed(&channel).len(), 2);
    let pkg = packages(&channel)
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with("_0.conda"))
        .unwrap();
    let x = extract(&pkg);
    assert_eq!(fs::read_to_string(x.path().join("share/p.txt")).unwrap(), "two\n");

    // As rattler-build takes them: package files as they are, recipes built.
    let third = dir.path().join("third");
    let o = kiln()
        .args(["publish", "--to", &third.to_string_lossy(), "--output-dir"])
        .arg(dir.path().join("out3"))
        .args(["--build-number", "7"])
        .arg(&pkg)
        .arg(&recipe)
        .run()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let numbers: Vec<u64> = indexed(&third).iter().map(|(_, n)| *n).collect();
    assert_eq!(numbers, [0, 7]);
    let o = kiln()
        .args(["publish", "--to", &third.to_string_lossy()])
        .arg(dir.path().join("missing.conda"))
        .run()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no such file"), "{}", stderr(&o));

    let o = kiln()
        .args(["publish", "--to", &third.to_string_lossy(), "--build-number", "+1"])
        .arg(&pkg)
        .run()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("apply to recipes; only package files were given"),
        "{}",
        stderr(&o)
    );

    // `kiln upload` of a file into a directory channel.
    let other = dir.path().join("other");
    let o = kiln()
        .args(["upload", "--to", &other.to_string_lossy()])
        .arg(&pkg)
        .run()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(indexed(&other).len(), 1);
}

/// One upload the server received: URL (path and query), API key, body.
type Received = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

/// A Quetz-style upload endpoint on 127.0.0.1; returns its host:port.
/// With `reject`, it refuses every upload, echoing the key it got.
fn quetz_server(reject: bool) -> (String, Received) {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let port = server.server_addr().to_ip().unwrap().port();
    let received: Received = Arc::new(Mutex::new(Vec::new()));
    let log = received.clone();
    std::thread::spawn(move || {
        for mut request in server.incoming_requests() {
            let key = request
                .headers()
                .iter()
                .find(|h| h.field.equiv("X-API-Key"))
                .map(|h| h.value.to_string())
                .unwrap_or_default();
            let mut body = Vec::new();
            std::io::Read::read_to_end(request.as_reader(), &mut body).unwrap();
            let ok = request.method() == &tiny_http::Method::Post && request.url().starts_with("/api/channels/");
            log.lock().unwrap().push((request.url().to_string(), key.clone(), body));
            let response = match (reject, ok) {
                (true, _) => tiny_http::Response::from_string(format!("invalid API key {key}")).with_status_code(401),
                (false, true) => tiny_http::Response::from_string("").with_status_code(201),
                (false, false) => tiny_http::Response::from_string("").with_status_code(404),
            };
            let _ = request.respond(response);
        }
    });
    (format!("127.0.0.1:{port}"), received)
}

#[test]
fn upload_to_a_quetz_server() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = write_recipe(dir.path(), "published", &RECIPE.replace("CONTENT", "one"));
    let out = dir.path().join("out");
    build_ok(&recipe, &out, &[]);
    let pkg = packages(&out).remove(0);
    let (host, received) = quetz_server(false);
    let to = format!("quetz+http://{host}/mychannel");

    // Plain HTTP only to a host named by --allow-insecure-host.
    let o = kiln()
        .args(["upload", "--to", &to, "--api-key", "sekrit-key-123"])
        .arg(&pkg)
        .run()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--allow-insecure-host 127.0.0.1"), "{}", stderr(&o));
    assert!(received.lock().unwrap().is_empty());

    let o = kiln()
        .args(["upload", "--to", &to, "--allow-insecure-host", "127.0.0.1"])
        .env("KILN_API_KEY", "sekrit-key-123")
        .arg(&pkg)
        .run()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("sekrit-key-123"));
    let got = received.lock().unwrap();
    let (url, key, body) = got.last().expect("an upload");
    let name = pkg.file_name().unwrap().to_string_lossy();
    assert!(
        url.starts_with(&format!("/api/channels/mychannel/upload/{name}?")),
        "{url}"
    );
    let sha = {
        use sha2::Digest;
        format!("{:x}", sha2::Sha256::digest(fs::read(&pkg).unwrap()))
    };
    assert!(url.contains(&format!("sha256={sha}")), "{url}");
    assert_eq!(key, "sekrit-key-123");
    assert_eq!(body, &fs::read(&pkg).unwrap());
}

#[test]
fn a_refused_upload_never_shows_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = write_recipe(dir.path(), "published", &RECIPE.replace("CONTENT", "one"));
    let out = dir.path().join("out");
    build_ok(&recipe, &out, &[]);
    let pkg = packages(&out).remove(0);
    let (host, received) = quetz_server(true);
    let o = kiln()
        .args([
            "upload",
            "--to",
            &format!("quetz+http://{host}/mychannel"),
            "--allow-insecure-host",
            "127.0.0.1",
        ])
        .args(["--api-key", "sekrit-key-123", "-v"])
        .arg(&pkg)
        .run()
        .unwrap();
    assert!(!o.status.success());
    assert!(!received.lock().unwrap().is_empty(), "the server was asked");
    let log = stderr(&o);
    assert!(!log.contains("sekrit-key-123"), "{log}");
    assert!(
        log.contains("401") || log.contains("Unauthorized") || log.contains("invalid API key"),
        "{log}"
    );
}

#[test]
fn a_package_naming_an_unknown_subdir_is_not_published() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let recipe = write_recipe(dir.path(), "published", &RECIPE.replace("CONTENT", "one"));
    let out = dir.path().join("out");
    build_ok(&recipe, &out, &["--package-format", "tar.bz2"]);
    let pkg = packages(&out).remove(0);
    // The same package, its info/index.json naming `../escape` as its subdir.
    let mut bytes = Vec::new();
    bzip2::read::BzDecoder::new(fs::File::open(&pkg).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    let mut archive = tar::Archive::new(bytes.as_slice());
    let evil = dir.path().join("evil").join(pkg.file_name().unwrap());
    fs::create_dir_all(evil.parent().unwrap()).unwrap();
    let mut builder = tar::Builder::new(bzip2::write::BzEncoder::new(
        fs::File::create(&evil).unwrap(),
        bzip2::Compression::fast(),
    ));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        if path == Path::new("info/index.json") {
            let mut index: serde_json::Value = serde_json::from_slice(&data).unwrap();
            index["subdir"] = serde_json::json!("../escape");
            data = serde_json::to_vec(&index).unwrap();
        }
        let mut header = entry.header().clone();
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append_data(&mut header, &path, data.as_slice()).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap();

    let channel = dir.path().join("channel");
    let o = kiln()
        .args(["upload", "--to", &channel.to_string_lossy()])
        .arg(&evil)
        .run()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("names no known subdir"), "{}", stderr(&o));
    assert!(!dir.path().join("escape").exists());
    assert!(packages(&channel).is_empty());
}
