//! Putting built packages into a channel (`kiln publish`, `kiln upload`):
//! a local channel (a directory or `file://` URL: copied in atomically, then
//! indexed with kiln's incremental indexer) or a channel server, through
//! rattler's upload support (`quetz://`, `artifactory://`).

use std::path::{Path, PathBuf};

use miette::{miette, IntoDiagnostic, Result};
use url::Url;

/// Where packages go.
#[derive(Debug, Clone)]
pub enum Target {
    /// A channel directory on this machine.
    Local(PathBuf),
    /// A Quetz server: its base URL and the channel.
    Quetz(Url, String),
    /// An Artifactory conda repository: the server URL and the channel.
    Artifactory(Url, String),
}

impl Target {
    /// The target `to` names: a directory, `file://`, `quetz://HOST/CHANNEL`
    /// or `artifactory://HOST/CHANNEL` (`quetz+http://` and
    /// `artifactory+http://` for a HOST named by `--allow-insecure-host`).
    pub fn parse(to: &str, insecure: &[String]) -> Result<Target> {
        let unsupported = || {
            miette!(
                help = "use a directory, file:///path, quetz://HOST/CHANNEL or artifactory://HOST/CHANNEL",
                "--to {to}: publishing there is not supported yet"
            )
        };
        let Ok(url) = Url::parse(to) else {
            return Ok(Target::Local(crate::build_command::prepare::absolute(
                Path::new(to),
                false,
            )?));
        };
        let (kind, secure) = match url.scheme() {
            "file" => {
                let path = url
                    .to_file_path()
                    .map_err(|()| miette!("--to {to}: not a local path"))?;
                return Ok(Target::Local(path));
            }
            "quetz" => ("quetz", true),
            "quetz+http" => ("quetz", false),
            "artifactory" => ("artifactory", true),
            "artifactory+http" => ("artifactory", false),
            _ => return Err(unsupported()),
        };
        let host = url.host_str().ok_or_else(unsupported)?.to_string();
        if !secure && !insecure.iter().any(|h| h.eq_ignore_ascii_case(&host)) {
            miette::bail!(
                help = format!("pass --allow-insecure-host {host} to send the package (and key) over plain HTTP"),
                "--to {}: plain HTTP to {host}",
                crate::redact::url_for_display(&url)
            );
        }
        let mut segments: Vec<&str> = url
            .path_segments()
            .map(|s| s.filter(|p| !p.is_empty()).collect())
            .unwrap_or_default();
        let channel = segments
            .pop()
            .ok_or_else(|| miette!("--to {to}: name the channel: {kind}://{host}/CHANNEL"))?;
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        let base = format!(
            "{}://{host}{port}/{}",
            if secure { "https" } else { "http" },
            segments.iter().map(|s| format!("{s}/")).collect::<String>()
        );
        let base = Url::parse(&base).into_diagnostic()?;
        Ok(match kind {
            "quetz" => Target::Quetz(base, channel.to_string()),
            _ => Target::Artifactory(base, channel.to_string()),
        })
    }

    /// The local channel directory, if the target is one.
    pub fn local(&self) -> Option<&Path> {
        match self {
            Target::Local(p) => Some(p),
            _ => None,
        }
    }
}

/// Put `packages` into `target`. `api_key` (else the credentials store)
/// authenticates with a server; `force` replaces a different package of the
/// same file name.
pub fn publish(target: &Target, packages: &[PathBuf], api_key: Option<String>, force: bool) -> Result<()> {
    if let Some(key) = &api_key {
        crate::redact::register(key);
    }
    match target {
        Target::Local(dir) => publish_local(dir, packages, force),
        Target::Quetz(url, channel) => {
            let data = rattler_upload::upload::opt::QuetzData::new(
                url.clone(),
                channel.clone(),
                api_key,
                rattler_upload::upload::opt::ForceOverwrite(force),
            );
            let storage = crate::net::auth_storage()?;
            runtime()?.block_on(rattler_upload::upload::upload_package_to_quetz(
                &storage,
                &packages.to_vec(),
                data,
            ))?;
            for p in packages {
                crate::ui::print_line(&format!("uploaded {} to {url}{channel}", p.display()));
            }
            Ok(())
        }
        Target::Artifactory(url, channel) => {
            let mut data = rattler_upload::upload::opt::ArtifactoryData::new(url.clone(), channel.clone());
            if let Some(key) = api_key {
                data = data.with_bearer_auth(key);
            }
            let storage = crate::net::auth_storage()?;
            runtime()?.block_on(rattler_upload::upload::upload_package_to_artifactory(
                &storage,
                &packages.to_vec(),
                data,
            ))?;
            Ok(())
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| miette!("cannot start the async runtime: {e}"))
}

/// Copy `packages` into `<dir>/<subdir>/` (temporary name, then rename) and
/// index the channel. An identical package already there is kept; a
/// different one under the same name is an error without `force`.
fn publish_local(dir: &Path, packages: &[PathBuf], force: bool) -> Result<()> {
    let mut added = Vec::new();
    for p in packages {
        let record = crate::package_command::index_json(p)?;
        let subdir = record
            .subdir
            .clone()
            .ok_or_else(|| miette!("{}: info/index.json names no subdir", p.display()))?;
        let name = p.file_name().ok_or_else(|| miette!("{} is not a file", p.display()))?;
        let dest_dir = dir.join(&subdir);
        fs_err::create_dir_all(&dest_dir).into_diagnostic()?;
        let dest = dest_dir.join(name);
        if dest.exists() {
            if crate::disk::file_sha256(&dest)? == crate::disk::file_sha256(p)? {
                crate::ui::print_line(&format!("{} is already in {}", name.to_string_lossy(), dir.display()));
                added.push(dest);
                continue;
            }
            if !force {
                miette::bail!(
                    help = "bump the build number (--build-number +1), or pass --force to replace it",
                    "{} already holds a different {}",
                    dir.display(),
                    name.to_string_lossy()
                );
            }
        }
        let tmp = dest_dir.join(format!(".{}.kiln-tmp-{}", name.to_string_lossy(), std::process::id()));
        crate::disk::copy_file(p, &tmp)?;
        fs_err::rename(&tmp, &dest).into_diagnostic()?;
        crate::ui::print_line(&format!(
            "published {} to {}",
            name.to_string_lossy(),
            dest_dir.display()
        ));
        added.push(dest);
    }
    crate::channel::add_to_channel(dir, &added)
}
