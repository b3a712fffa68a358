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
        let Ok(url) = Url::parse(to) else {
            return Ok(Target::Local(crate::build_command::prepare::absolute(
                Path::new(to),
                false,
            )?));
        };
        // Credentials in the URL never reach a message.
        crate::redact::register_url(to);
        let to = crate::redact::url_for_display(&url);
        let unsupported = || {
            miette!(
                help = "use a directory, file:///path, quetz://HOST/CHANNEL or artifactory://HOST/CHANNEL",
                "--to {to}: publishing there is not supported yet"
            )
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
                "--to {to}: plain HTTP to {host}"
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

/// Copy `packages` into `<dir>/<subdir>/` (temporary name, synced, then
/// renamed, under the channel's publish lock) and index the channel. Every
/// package is checked before any is copied. An identical package already
/// there is kept; a different one under the same name is an error without
/// `force`. What was placed before an error is indexed all the same.
fn publish_local(dir: &Path, packages: &[PathBuf], force: bool) -> Result<()> {
    let mut plan = Vec::new();
    for p in packages {
        let record = crate::package_command::index_json(p)?;
        // The subdir a package names is one known directory of the channel.
        let subdir = record
            .subdir
            .as_deref()
            .filter(|s| s.parse::<rattler_conda_types::Subdir>().is_ok())
            .ok_or_else(|| {
                miette!(
                    "{}: info/index.json names no known subdir ({:?})",
                    p.display(),
                    record.subdir
                )
            })?
            .to_string();
        let name = p.file_name().ok_or_else(|| miette!("{} is not a file", p.display()))?;
        plan.push((p, dir.join(&subdir).join(name)));
    }
    fs_err::create_dir_all(dir).into_diagnostic()?;
    let _lock = crate::lock::Lock::acquire(
        &dir.join(".kiln/.locks/publish.lock"),
        crate::lock::Mode::Exclusive,
        &format!("the channel {}", dir.display()),
    )
    .into_diagnostic()?;
    let mut fresh = Vec::new();
    let placed = (|| -> Result<()> {
        for (p, dest) in &plan {
            place(dir, p, dest, force, &mut fresh)?;
        }
        Ok(())
    })();
    let indexed = crate::channel::add_to_channel(dir, &fresh);
    placed.and(indexed)
}

/// Place one package at `dest` (see [`publish_local`]); `fresh` gets it
/// when it is new there.
fn place(dir: &Path, p: &Path, dest: &Path, force: bool, fresh: &mut Vec<PathBuf>) -> Result<()> {
    let shown = dest.file_name().unwrap_or_default().to_string_lossy().into_owned();
    if dest.exists() {
        if crate::disk::file_sha256(dest)? == crate::disk::file_sha256(p)? {
            crate::ui::print_line(&format!("{shown} is already in {}", dir.display()));
            return Ok(());
        }
        if !force {
            miette::bail!(
                help = "bump the build number (--build-number +1), or pass --force to replace it",
                "{} already holds a different {shown}",
                dir.display()
            );
        }
    }
    let dest_dir = dest
        .parent()
        .ok_or_else(|| miette!("{} has no directory", dest.display()))?;
    fs_err::create_dir_all(dest_dir).into_diagnostic()?;
    let tmp = dest_dir.join(format!(".{shown}.kiln-tmp-{}", std::process::id()));
    let copied = (|| -> Result<()> {
        crate::disk::copy_file(p, &tmp)?;
        fs_err::File::open(&tmp).and_then(|f| f.sync_all()).into_diagnostic()?;
        fs_err::rename(&tmp, dest).into_diagnostic()?;
        crate::disk::sync_dir(dest_dir)
    })();
    if copied.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    copied?;
    crate::ui::print_line(&format!("published {shown} to {}", dest_dir.display()));
    fresh.push(dest.to_path_buf());
    Ok(())
}
