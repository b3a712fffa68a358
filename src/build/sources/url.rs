//! `url` sources: downloading into kiln's shared source cache.
//!
//! An entry is `<cache>/src_cache/<key>/<file name>`, where the key is the
//! expected SHA-256 (or MD5) when the recipe gives one, else a hash of the
//! first URL. A download streams into a temporary file in the cache while
//! both digests are computed; only a download whose checksums match is
//! renamed into place, so an interrupted or wrong download is never
//! trusted. One lock per entry makes concurrent builds download once. A
//! cached file is verified again before it is used; a damaged one is
//! fetched again.
//!
//! Downloads use [`crate::net`]'s client (authentication, proxies,
//! timeouts), try mirrors in order, retry transient failures, and refuse
//! plain HTTP (and accept invalid TLS certificates) only for hosts named
//! with `--allow-insecure-host`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use miette::{miette, IntoDiagnostic, Result};
use rattler_digest::digest::Digest;
use rattler_digest::{Md5, Sha256};
use reqwest_middleware::ClientWithMiddleware;

use crate::lock::{Lock, Mode};
use crate::recipe::model::UrlSource;

/// Attempts per URL for transient failures (connection errors, timeouts, 5xx, 429).
const ATTEMPTS: u32 = 3;

/// A verified file in the source cache, locked until dropped (so that no
/// other run replaces it while it is read).
#[derive(Debug)]
pub struct Downloaded {
    /// The cached file (read it, never write it).
    pub path: PathBuf,
    /// Its SHA-256.
    pub sha256: String,
    _lock: Lock,
}

/// The client pair and runtime every download of this process shares.
struct Net {
    rt: tokio::runtime::Runtime,
    secure: ClientWithMiddleware,
    insecure: ClientWithMiddleware,
}

/// The clients (`insecure` is the same in every call of one process: the
/// `--allow-insecure-host` list).
fn net(insecure: &[String]) -> Result<&'static Net> {
    static NET: OnceLock<Net> = OnceLock::new();
    if let Some(n) = NET.get() {
        return Ok(n);
    }
    let timeout = crate::net::timeout()?;
    let n = Net {
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| miette!("cannot start the async runtime: {e}"))?,
        secure: crate::net::download_client(timeout, insecure, false)?,
        insecure: crate::net::download_client(timeout, insecure, true)?,
    };
    Ok(NET.get_or_init(|| n))
}

/// The directory of downloaded and cloned sources.
pub fn cache_root() -> Result<PathBuf> {
    Ok(crate::net::cache_dir()?.join("src_cache"))
}

/// The name the download keeps: `file_name`, else the first URL's last segment.
pub fn file_name(src: &UrlSource) -> String {
    if let Some(n) = &src.file_name {
        return n.clone();
    }
    let last = url::Url::parse(&src.url[0])
        .ok()
        .and_then(|u| u.path_segments().and_then(|mut s| s.next_back().map(str::to_string)))
        .unwrap_or_default();
    let last = percent_decode(&last);
    if last.is_empty() || last == "." || last == ".." || last.contains('/') {
        "download".to_string()
    } else {
        last
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

/// The cache entry directory for `src`.
fn entry_key(src: &UrlSource) -> String {
    match (&src.sha256, &src.md5) {
        (Some(s), _) if !s.is_empty() => format!("sha256-{s}"),
        (_, Some(m)) if !m.is_empty() => format!("md5-{m}"),
        _ => {
            let h = Sha256::digest(src.url[0].as_bytes());
            format!("url-{}", &hex::encode(h)[..32])
        }
    }
}

/// The file of `src`, from the cache or downloaded (and then cached).
/// `where_` locates the source in messages; `insecure` lists the hosts
/// named with `--allow-insecure-host`.
pub fn obtain(src: &UrlSource, where_: &str, insecure: &[String]) -> Result<Downloaded> {
    let root = cache_root()?;
    let key = entry_key(src);
    let entry = root.join(&key);
    let name = file_name(src);
    // The cache keeps the file under its base name; `file_name` may add folders.
    let base = Path::new(&name)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "download".into());
    fs_err::create_dir_all(&root).into_diagnostic()?;
    let lock = Lock::acquire(
        &root.join(format!("{key}.lock")),
        Mode::Exclusive,
        "the source cache entry",
    )
    .into_diagnostic()?;
    let cached = entry.join(&base);
    if cached.is_file() {
        let (sha256, md5) = digests(&cached)?;
        // Damaged means: not what the entry's own key says it is.
        let intact = match key.split_once('-') {
            Some(("sha256", k)) => k.eq_ignore_ascii_case(&sha256),
            Some(("md5", k)) => k.eq_ignore_ascii_case(&md5),
            _ => true,
        };
        if intact {
            if let Some(why) = mismatch(src, &sha256, &md5) {
                return Err(miette!(
                    help = "fix the checksum in the recipe",
                    "{where_}: {name} (cached from an earlier download): {why}"
                ));
            }
            tracing::debug!("{where_}: using cached {}", cached.display());
            return Ok(Downloaded {
                path: cached,
                sha256,
                _lock: lock,
            });
        }
        tracing::warn!("{where_}: cached {} is damaged; downloading it again", cached.display());
        fs_err::remove_dir_all(&entry).into_diagnostic()?;
    }
    let mut failures = Vec::new();
    for url in &src.url {
        match download(url, &root, insecure, &name) {
            Ok((tmp, sha256, md5)) => {
                if let Some(why) = mismatch(src, &sha256, &md5) {
                    failures.push(format!("{}: {why}", crate::redact::mask(url)));
                    continue;
                }
                // On disk before it is published: a crash never leaves a
                // truncated file under the final name.
                tmp.as_file().sync_all().into_diagnostic()?;
                fs_err::create_dir_all(&entry).into_diagnostic()?;
                tmp.persist(&cached)
                    .map_err(|e| miette!("cannot store {} in the source cache: {e}", cached.display()))?;
                return Ok(Downloaded {
                    path: cached,
                    sha256,
                    _lock: lock,
                });
            }
            Err(e) => failures.push(e),
        }
    }
    Err(miette!(
        help = "check the URL and checksum in the recipe; mirrors are tried in order",
        "{where_}: could not obtain {name}:\n  {}",
        failures.join("\n  ")
    ))
}

/// Why the digests do not match the recipe's, with both values.
fn mismatch(src: &UrlSource, sha256: &str, md5: &str) -> Option<String> {
    let mut out = Vec::new();
    if let Some(expected) = src.sha256.as_deref().filter(|e| !e.eq_ignore_ascii_case(sha256)) {
        out.push(format!(
            "sha256 mismatch\n    expected sha256: {}\n    actual sha256:   {sha256}",
            if expected.is_empty() { "(empty)" } else { expected }
        ));
    }
    if let Some(expected) = src.md5.as_deref().filter(|e| !e.eq_ignore_ascii_case(md5)) {
        out.push(format!(
            "md5 mismatch\n    expected md5: {}\n    actual md5:   {md5}",
            if expected.is_empty() { "(empty)" } else { expected }
        ));
    }
    (!out.is_empty()).then(|| out.join("\n  "))
}

fn digests(path: &Path) -> Result<(String, String)> {
    let mut file = fs_err::File::open(path).into_diagnostic()?;
    let mut sink = Hashing::default();
    std::io::copy(&mut file, &mut sink).into_diagnostic()?;
    Ok(sink.finish())
}

/// A writer that only hashes.
#[derive(Default)]
struct Hashing {
    sha256: Sha256,
    md5: Md5,
}

impl Hashing {
    fn update(&mut self, bytes: &[u8]) {
        self.sha256.update(bytes);
        self.md5.update(bytes);
    }

    fn finish(self) -> (String, String) {
        (hex::encode(self.sha256.finalize()), hex::encode(self.md5.finalize()))
    }
}

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Download `url` into a temporary file in `dir`, with its digests. The
/// error is one line naming the URL (credentials masked).
fn download(
    url: &str,
    dir: &Path,
    insecure: &[String],
    name: &str,
) -> std::result::Result<(tempfile::NamedTempFile, String, String), String> {
    let shown = crate::redact::mask(url).into_owned();
    let fail = |why: String| format!("Failed to download from URL {shown}: {why}");
    let parsed = url::Url::parse(url).map_err(|e| fail(e.to_string()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".download-")
        .tempfile_in(dir)
        .map_err(|e| fail(e.to_string()))?;
    let mut hashing = Hashing::default();
    if parsed.scheme() == "file" {
        let path = parsed.to_file_path().map_err(|_| fail("not a local path".into()))?;
        let mut from = std::fs::File::open(&path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
        let mut both = Tee(tmp.as_file_mut(), &mut hashing);
        std::io::copy(&mut from, &mut both).map_err(|e| fail(e.to_string()))?;
        let (sha, md5) = hashing.finish();
        return Ok((tmp, sha, md5));
    }
    let host = parsed.host_str().unwrap_or_default().to_string();
    let allowed = insecure.iter().any(|h| h.eq_ignore_ascii_case(&host));
    if parsed.scheme() == "http" && !allowed {
        return Err(fail(format!(
            "plain HTTP is refused; pass `--allow-insecure-host {host}` to download from this host anyway"
        )));
    }
    let net = net(insecure).map_err(|e| fail(e.to_string()))?;
    let client = if allowed { &net.insecure } else { &net.secure };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = net
            .rt
            .block_on(fetch_into(client, parsed.clone(), &mut tmp, &mut hashing, name));
        match result {
            Ok(()) => {
                let (sha, md5) = hashing.finish();
                return Ok((tmp, sha, md5));
            }
            Err(Failure { why, transient }) if transient && attempt < ATTEMPTS => {
                tracing::warn!("{shown}: {why}; retrying ({attempt}/{ATTEMPTS})");
                std::thread::sleep(Duration::from_millis(500 * u64::from(attempt)));
                tmp.as_file_mut().set_len(0).map_err(|e| fail(e.to_string()))?;
                use std::io::Seek;
                tmp.as_file_mut().rewind().map_err(|e| fail(e.to_string()))?;
                hashing = Hashing::default();
            }
            Err(Failure { why, .. }) => return Err(fail(why)),
        }
    }
}

struct Failure {
    why: String,
    transient: bool,
}

async fn fetch_into(
    client: &ClientWithMiddleware,
    url: url::Url,
    tmp: &mut tempfile::NamedTempFile,
    hashing: &mut Hashing,
    name: &str,
) -> std::result::Result<(), Failure> {
    let transient = |e: &reqwest_middleware::Error| match e {
        reqwest_middleware::Error::Reqwest(e) => e.is_timeout() || e.is_connect() || e.is_request() || e.is_body(),
        reqwest_middleware::Error::Middleware(_) => false,
    };
    let mut response = client.get(url).send().await.map_err(|e| Failure {
        transient: transient(&e),
        why: crate::net::error_chain(&e),
    })?;
    let status = response.status();
    if !status.is_success() {
        return Err(Failure {
            why: format!("the server answered {status}"),
            transient: status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408,
        });
    }
    let total = response.content_length();
    let mut done = 0u64;
    loop {
        let chunk = response.chunk().await.map_err(|e| Failure {
            transient: e.is_timeout() || e.is_body() || e.is_decode(),
            why: crate::net::error_chain(&e),
        })?;
        let Some(chunk) = chunk else { break };
        tmp.as_file_mut().write_all(&chunk).map_err(|e| Failure {
            why: format!("writing the download: {e}"),
            transient: false,
        })?;
        hashing.update(&chunk);
        done += chunk.len() as u64;
        crate::ui::transfer(name, done, total);
    }
    if let Some(t) = total.filter(|t| *t != done) {
        return Err(Failure {
            why: format!("the connection closed after {done} of {t} bytes"),
            transient: true,
        });
    }
    tmp.as_file_mut().flush().map_err(|e| Failure {
        why: e.to_string(),
        transient: false,
    })?;
    Ok(())
}

/// Writes to a file and a hasher at once.
struct Tee<'a>(&'a mut std::fs::File, &'a mut Hashing);

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.0.write(buf)?;
        self.1.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(url: &str) -> UrlSource {
        UrlSource {
            url: vec![url.to_string()],
            sha256: None,
            md5: None,
            file_name: None,
            target_directory: None,
            patches: vec![],
            filter: Default::default(),
            span: marked_yaml::Span::new_blank(),
        }
    }

    #[test]
    fn names_come_from_the_url() {
        assert_eq!(file_name(&src("https://x.org/a/zlib-1.3.tar.gz")), "zlib-1.3.tar.gz");
        assert_eq!(file_name(&src("https://x.org/a/b%20c.zip?x=1")), "b c.zip");
        assert_eq!(file_name(&src("https://x.org/")), "download");
        assert_eq!(file_name(&src("https://x.org/a/%2E%2E")), "download");
    }
}
