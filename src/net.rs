//! The network settings every download shares: kiln's cache directory, the
//! connection timeout, and the HTTP client (authentication from rattler's
//! credential store and `RATTLER_AUTH_FILE`, proxies from the standard
//! `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` variables, kiln's user agent).
//! Channels and source downloads use the same client.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use miette::{miette, Result};
use reqwest_middleware::ClientWithMiddleware;

/// Network settings from the configuration files ([`crate::config`]).
#[derive(Debug, Default, Clone)]
pub struct Settings {
    /// `mirrors`: URL prefixes and the mirrors that serve them, tried in order.
    pub mirrors: Vec<(url::Url, Vec<url::Url>)>,
    /// `authentication-override-file`: the only credentials file read.
    pub auth_file: Option<PathBuf>,
}

static SETTINGS: std::sync::OnceLock<Settings> = std::sync::OnceLock::new();

/// Set the network settings for this process, before the first client is made.
pub fn configure(settings: Settings) {
    let _ = SETTINGS.set(settings);
}

/// Seconds a connection may stay silent before kiln gives up (`KILN_NETWORK_TIMEOUT`).
const DEFAULT_NETWORK_TIMEOUT: u64 = 20;

/// `KILN_CACHE_DIR`, else rattler's shared cache directory (shared with
/// pixi and rattler-build, so packages are downloaded once per machine).
pub fn cache_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("KILN_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    rattler_cache::default_cache_dir()
        .map_err(|e| miette!(help = "set KILN_CACHE_DIR", "cannot find a cache directory: {e}"))
}

/// How long a connection may stay silent (`KILN_NETWORK_TIMEOUT`, seconds).
pub fn timeout() -> Result<Duration> {
    match std::env::var("KILN_NETWORK_TIMEOUT") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
            .ok_or_else(|| miette!("KILN_NETWORK_TIMEOUT must be a positive number of seconds, got `{v}`")),
        _ => Ok(Duration::from_secs(DEFAULT_NETWORK_TIMEOUT)),
    }
}

/// The HTTP client with kiln's timeouts and rattler's authentication.
pub fn client(timeout: Duration) -> Result<ClientWithMiddleware> {
    build(reqwest::Client::builder(), timeout)
}

/// The client for downloads that may only use plain HTTP, or a certificate
/// that does not verify, on the hosts in `insecure` (`--allow-insecure-host`):
/// `accept_invalid_certs` is for those hosts only, and a redirect to plain
/// HTTP, or from the insecure client to another host, is refused.
pub fn download_client(
    timeout: Duration,
    insecure: &[String],
    accept_invalid_certs: bool,
) -> Result<ClientWithMiddleware> {
    let insecure = insecure.to_vec();
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        let host = attempt.url().host_str().unwrap_or_default().to_string();
        let allowed = insecure.iter().any(|h| h.eq_ignore_ascii_case(&host));
        if attempt.previous().len() > 10 {
            attempt.error("too many redirects")
        } else if (attempt.url().scheme() == "http" || accept_invalid_certs) && !allowed {
            let to = crate::redact::url_for_display(attempt.url());
            attempt.error(format!("redirected to {to}, which --allow-insecure-host does not name"))
        } else {
            attempt.follow()
        }
    });
    build(
        reqwest::Client::builder()
            .redirect(policy)
            .danger_accept_invalid_certs(accept_invalid_certs),
        timeout,
    )
}

fn build(builder: reqwest::ClientBuilder, timeout: Duration) -> Result<ClientWithMiddleware> {
    let client = builder
        .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .read_timeout(timeout)
        .build()
        .map_err(|e| miette!("cannot create the HTTP client: {e}"))?;
    let settings = SETTINGS.get().cloned().unwrap_or_default();
    let auth = rattler_networking::AuthenticationMiddleware::from_auth_storage(auth_storage()?);
    let mut builder = reqwest_middleware::ClientBuilder::new(client);
    if !settings.mirrors.is_empty() {
        let with_slash = |u: &url::Url| {
            let mut u = u.clone();
            if !u.path().ends_with('/') {
                u.set_path(&format!("{}/", u.path()));
            }
            u
        };
        let map = settings
            .mirrors
            .iter()
            .map(|(from, to)| {
                let mirrors = to
                    .iter()
                    .map(|m| rattler_networking::mirror_middleware::Mirror {
                        url: with_slash(m),
                        no_zstd: false,
                        no_bz2: false,
                        max_failures: None,
                    })
                    .collect();
                (with_slash(from), mirrors)
            })
            .collect();
        builder = builder.with(rattler_networking::MirrorMiddleware::from_map(map));
    }
    Ok(builder.with_arc(Arc::new(auth)).build())
}

/// Where channel credentials come from: the configuration's
/// `authentication-override-file` alone, else rattler's defaults
/// (`RATTLER_AUTH_FILE`, the keyring, `~/.rattler/credentials.json`, `.netrc`).
pub fn auth_storage() -> Result<rattler_networking::AuthenticationStorage> {
    match SETTINGS.get().and_then(|s| s.auth_file.clone()) {
        Some(file) => {
            let storage =
                rattler_networking::authentication_storage::backends::file::FileStorage::from_path(file.clone())
                    .map_err(|e| miette!("cannot read the credentials file {}: {e}", file.display()))?;
            let mut store = rattler_networking::AuthenticationStorage::empty();
            store.add_backend(Arc::new(storage));
            Ok(store)
        }
        None => rattler_networking::AuthenticationStorage::from_env_and_defaults()
            .map_err(|e| miette!("cannot read channel credentials: {e}")),
    }
}

/// An error and its causes on one line.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}
