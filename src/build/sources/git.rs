//! `git` sources: a cache of bare repositories, refs resolved to commits,
//! and checkouts into the work directory, all with the `git` command line.
//!
//! The cache holds one bare repository per URL under
//! `<cache>/src_cache/git/`, guarded by a lock. A tag or commit already in
//! it is used without a request; a branch or the default branch is fetched
//! each time (it moves). A reference is resolved once per process, so the
//! staging key and the checkout agree on the commit. A cached repository
//! git cannot read is removed and fetched again. The checkout fetches the
//! pinned commit from the cache into a fresh repository (whose `origin` is
//! the real URL, for relative submodules and for scripts), then checks out
//! submodules and git-lfs files when asked.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use miette::{miette, IntoDiagnostic, Result};
use sha2::{Digest, Sha256};

use crate::lock::{Lock, Mode};
use crate::recipe::model::{GitRef, GitSource};

/// The repository `src.git` names: a URL, `user@host:path`, or a local
/// path made absolute from the recipe directory.
pub fn repository(src: &GitSource, recipe_dir: &Path) -> String {
    let g = src.git.trim();
    let scp_like = g
        .split_once(':')
        .is_some_and(|(host, _)| host.contains('@') && !host.contains('/'));
    if g.contains("://") || scp_like {
        return g.to_string();
    }
    let path = recipe_dir.join(g);
    std::fs::canonicalize(&path)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

fn memo() -> &'static Mutex<HashMap<String, String>> {
    static MEMO: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    MEMO.get_or_init(Default::default)
}

fn memo_key(src: &GitSource, url: &str) -> String {
    format!("{url}\n{:?}\n{:?}", src.reference, src.depth)
}

/// The commit `src` names, fetched into the cache if needed (once per process).
/// `insecure` lists the hosts `--allow-insecure-host` names: only they may
/// be reached over plain HTTP or with a certificate that does not verify.
pub fn resolve(src: &GitSource, recipe_dir: &Path, where_: &str, insecure: &[String]) -> Result<String> {
    let url = repository(src, recipe_dir);
    let tls = transport(&url, insecure).map_err(|e| miette!("{where_}: {e}"))?;
    if let Some(c) = memo().lock().expect("git memo").get(&memo_key(src, &url)) {
        return Ok(c.clone());
    }
    let repo = Cache::open(&url)?;
    let commit = match repo.resolve(src, &url, tls) {
        Ok(c) => c,
        // Only a clone git itself finds damaged is thrown away; a wrong
        // reference or a network failure is reported as it is.
        Err(first) if repo.damaged() => {
            tracing::warn!(
                "{where_}: the cached clone of {} is damaged ({first}); fetching it again",
                shown(&url)
            );
            repo.reset()?;
            repo.resolve(src, &url, tls).map_err(|e| miette!("{where_}: {e}"))?
        }
        Err(e) => return Err(miette!("{where_}: {e}")),
    };
    if let Some(expected) = &src.expected_commit {
        if !commit.eq_ignore_ascii_case(expected) {
            return Err(miette!(
                help = "the reference moved, or `expected_commit` is out of date",
                "{where_}: {} resolved to commit {commit}, but `expected_commit` is {expected}",
                describe(&src.reference)
            ));
        }
    }
    memo()
        .lock()
        .expect("git memo")
        .insert(memo_key(src, &url), commit.clone());
    Ok(commit)
}

/// Check out `src` into `dest` (a fresh, empty directory); returns the commit.
pub fn checkout(src: &GitSource, recipe_dir: &Path, dest: &Path, where_: &str, insecure: &[String]) -> Result<String> {
    let url = repository(src, recipe_dir);
    let commit = resolve(src, recipe_dir, where_, insecure)?;
    let tls = transport(&url, insecure).map_err(|e| miette!("{where_}: {e}"))?;
    let fail = |e: String| miette!("{where_}: checking out {} at {commit}: {e}", shown(&url));
    let dest_s = dest.to_string_lossy().into_owned();
    git(&["init", "-q", &dest_s]).map_err(fail)?;
    if let Err(e) = fetch_pinned(src, &url, &commit, &dest_s) {
        // Another run may have replaced a damaged cache since this one
        // resolved the reference: resolve again (same commit) and retry once.
        tracing::debug!("{where_}: {e}; resolving again");
        memo().lock().expect("git memo").remove(&memo_key(src, &url));
        let again = resolve(src, recipe_dir, where_, insecure)?;
        if again != commit {
            return Err(fail(format!("the reference now resolves to {again}")));
        }
        fetch_pinned(src, &url, &commit, &dest_s).map_err(fail)?;
    }
    git(&["-C", &dest_s, "checkout", "-q", "--detach", &commit]).map_err(fail)?;
    // The real URL while submodules and lfs files are fetched (relative
    // submodule URLs and credentials come from it); then the URL without
    // credentials, since the checkout may end up in a staging cache entry.
    git(&["-C", &dest_s, "remote", "add", "origin", &url]).map_err(fail)?;
    if src.submodules && dest.join(".gitmodules").is_file() {
        let mut args = vec!["-C", dest_s.as_str()];
        args.extend(tls);
        // Submodules may use local paths only when the repository itself is
        // local: a remote `.gitmodules` must not reach into this machine.
        if is_local(&url) {
            args.extend(["-c", "protocol.file.allow=always"]);
        }
        args.extend(["submodule", "update", "-q", "--init", "--recursive"]);
        git(&args).map_err(|e| fail(format!("submodules: {e}")))?;
    }
    if src.lfs {
        if git(&["lfs", "version"]).is_err() {
            return Err(miette!(
                help = "install git-lfs (for example from conda-forge) or set `lfs: false`",
                "{where_}: `lfs: true` needs git-lfs, which is not installed"
            ));
        }
        git(&["-C", &dest_s, "lfs", "install", "--local"]).map_err(fail)?;
        let mut pull = vec!["-C", dest_s.as_str()];
        pull.extend(tls);
        pull.extend(["lfs", "pull"]);
        git(&pull).map_err(|e| fail(format!("git lfs pull: {e}")))?;
    }
    let origin = ::url::Url::parse(&url)
        .map(|u| crate::redact::url_for_file(&u))
        .unwrap_or_else(|_| url.clone());
    git(&["-C", &dest_s, "remote", "set-url", "origin", &origin]).map_err(fail)?;
    Ok(commit)
}

/// Fetch the pinned commit (and a tag source's tag, for `git describe`)
/// from the cache into the checkout at `dest`.
fn fetch_pinned(src: &GitSource, url: &str, commit: &str, dest: &str) -> std::result::Result<(), String> {
    let repo = Cache::open(url).map_err(|e| e.to_string())?;
    let _lock = repo.lock().map_err(|e| e.to_string())?;
    let cache = repo.path.to_string_lossy().into_owned();
    let mut refspecs = vec![format!("refs/kiln/pin/{commit}")];
    if let GitRef::Tag(t) = &src.reference {
        refspecs.push(format!("+refs/tags/{t}:refs/tags/{t}"));
    }
    let depth = src.depth.map(|d| d.to_string());
    let mut args = vec!["-C", dest, "fetch", "-q", "--no-tags"];
    if let Some(d) = &depth {
        args.extend(["--depth", d]);
    }
    args.push(&cache);
    args.extend(refspecs.iter().map(String::as_str));
    git(&args).map(drop)
}

/// Extra git options for `url`: none, or skipping certificate checks for a
/// host `--allow-insecure-host` names; plain `http://` only for those hosts.
fn transport(url: &str, insecure: &[String]) -> std::result::Result<&'static [&'static str], String> {
    let Ok(parsed) = ::url::Url::parse(url) else {
        return Ok(&[]);
    };
    let host = parsed.host_str().unwrap_or_default();
    let allowed = insecure.iter().any(|h| h.eq_ignore_ascii_case(host));
    match parsed.scheme() {
        "http" if !allowed => Err(format!(
            "{}: plain HTTP is refused; pass `--allow-insecure-host {host}` to fetch from this host anyway",
            shown(url)
        )),
        "http" | "https" if allowed => Ok(&["-c", "http.sslVerify=false"]),
        _ => Ok(&[]),
    }
}

/// A local path or `file://` URL, as opposed to a remote.
fn is_local(url: &str) -> bool {
    url.starts_with('/') || url.starts_with("file://")
}

fn describe(r: &GitRef) -> String {
    match r {
        GitRef::Rev(x) => format!("rev `{x}`"),
        GitRef::Tag(x) => format!("tag `{x}`"),
        GitRef::Branch(x) => format!("branch `{x}`"),
        GitRef::Head => "the default branch".to_string(),
    }
}

fn shown(url: &str) -> String {
    crate::redact::mask(url).into_owned()
}

/// A bare repository in the source cache.
struct Cache {
    path: PathBuf,
}

impl Cache {
    fn open(url: &str) -> Result<Cache> {
        let root = super::url::cache_root()?.join("git");
        fs_err::create_dir_all(&root).into_diagnostic()?;
        let base = url
            .trim_end_matches('/')
            .trim_end_matches(".git")
            .rsplit(['/', ':'])
            .next()
            .unwrap_or("repo")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect::<String>();
        let hash = hex::encode(Sha256::digest(url.as_bytes()));
        Ok(Cache {
            path: root.join(format!("{base}-{}.git", &hash[..16])),
        })
    }

    fn lock(&self) -> Result<Lock> {
        Lock::acquire(
            &self.path.with_extension("lock"),
            Mode::Exclusive,
            "the git source cache",
        )
        .into_diagnostic()
    }

    /// Remove the repository (it is fetched again on next use).
    fn reset(&self) -> Result<()> {
        let _lock = self.lock()?;
        if self.path.exists() {
            fs_err::remove_dir_all(&self.path).into_diagnostic()?;
        }
        Ok(())
    }

    /// Whether git finds the repository damaged (missing or corrupt objects).
    fn damaged(&self) -> bool {
        let Ok(_lock) = self.lock() else { return false };
        let repo = self.path.to_string_lossy();
        self.path.exists() && git(&["-C", &repo, "fsck", "--connectivity-only", "--no-dangling"]).is_err()
    }

    /// Fetch what `src` needs (unless present) and return its commit.
    fn resolve(&self, src: &GitSource, url: &str, tls: &[&str]) -> std::result::Result<String, String> {
        let _lock = self.lock().map_err(|e| e.to_string())?;
        self.ensure()?;
        let repo = self.path.to_string_lossy().into_owned();
        // A clone made shallow by some earlier `depth` cannot serve a full
        // history from what it has: without `depth`, fetch and unshallow.
        let shallow = src.depth.is_none()
            && git(&["-C", &repo, "rev-parse", "--is-shallow-repository"]).is_ok_and(|o| o == "true");
        let depth = src.depth.map(|d| d.to_string());
        let fetch = |refspecs: &[&str], with_depth: bool| -> std::result::Result<(), String> {
            let mut args = vec!["-C", repo.as_str()];
            args.extend(tls);
            args.extend(["fetch", "-q", "--no-tags"]);
            match (&depth, with_depth) {
                (Some(d), true) => args.extend(["--depth", d.as_str()]),
                _ if shallow => args.push("--unshallow"),
                _ => {}
            }
            args.push(url);
            args.extend(refspecs);
            let fetched = git(&args)
                .map(drop)
                .map_err(|e| format!("fetching {}: {e}", shown(url)));
            // FETCH_HEAD records the URL, credentials included.
            let _ = std::fs::remove_file(self.path.join("FETCH_HEAD"));
            fetched
        };
        let commit_of = |r: &str| {
            git(&["-C", &repo, "rev-parse", "-q", "--verify", &format!("{r}^{{commit}}")])
                .map_err(|_| format!("{} has no {}", shown(url), r))
        };
        let commit = match &src.reference {
            GitRef::Rev(rev) => {
                // Only a commit id is used from the cache as it is; a branch
                // or tag name given as `rev` may have moved.
                let is_id = rev.len() >= 7 && rev.bytes().all(|b| b.is_ascii_hexdigit());
                match commit_of(rev).ok().filter(|_| is_id && !shallow) {
                    Some(c) => c,
                    None => {
                        fetch(&["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"], false)?;
                        commit_of(rev).map_err(|_| format!("{} has no commit `{rev}`", shown(url)))?
                    }
                }
            }
            GitRef::Tag(tag) => {
                let local = format!("refs/tags/{tag}");
                match commit_of(&local).ok().filter(|_| !shallow) {
                    Some(c) => c,
                    None => {
                        fetch(&[&format!("+{local}:{local}")], true)?;
                        commit_of(&local).map_err(|_| format!("{} has no tag `{tag}`", shown(url)))?
                    }
                }
            }
            GitRef::Branch(branch) => {
                let local = format!("refs/heads/{branch}");
                fetch(&[&format!("+{local}:{local}")], true)?;
                commit_of(&local).map_err(|_| format!("{} has no branch `{branch}`", shown(url)))?
            }
            GitRef::Head => {
                fetch(&["+HEAD:refs/kiln/head"], true)?;
                commit_of("refs/kiln/head")?
            }
        };
        // Objects must be readable: a damaged cache fails here, not mid-checkout.
        git(&["-C", &repo, "cat-file", "-e", &format!("{commit}^{{tree}}")])
            .map_err(|_| format!("the cached clone of {} lacks the objects of {commit}", shown(url)))?;
        git(&["-C", &repo, "update-ref", &format!("refs/kiln/pin/{commit}"), &commit])?;
        Ok(commit)
    }

    /// Create the bare repository if it is missing (atomically: a scratch
    /// repository renamed into place).
    fn ensure(&self) -> std::result::Result<(), String> {
        if self.path.join("HEAD").is_file() {
            return Ok(());
        }
        if self.path.exists() {
            std::fs::remove_dir_all(&self.path).map_err(|e| e.to_string())?;
        }
        let parent = self.path.parent().expect("cache path has a parent");
        let scratch = tempfile::Builder::new()
            .prefix(".init-")
            .tempdir_in(parent)
            .map_err(|e| e.to_string())?;
        git(&["init", "-q", "--bare", &scratch.path().to_string_lossy()])?;
        let scratch = scratch.keep();
        std::fs::rename(&scratch, &self.path).map_err(|e| e.to_string())
    }
}

/// Run git (never prompting for credentials); stdout trimmed, or stderr as the error.
fn git(args: &[&str]) -> std::result::Result<String, String> {
    let mut cmd = Command::new("git");
    cmd.args(["-c", "advice.detachedHead=false"]).args(args);
    // ssh must not wait for a passphrase or host-key answer nobody sees.
    if std::env::var_os("GIT_SSH_COMMAND").is_none() {
        cmd.env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
    }
    let out = cmd
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "true")
        .env("GIT_LFS_SKIP_SMUDGE", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                "git is not installed (or not on PATH); install git to use `git` sources".to_string()
            } else {
                format!("cannot run git: {e}")
            }
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let err = err.trim();
        if err.is_empty() {
            return Err(format!(
                "`git {}` failed ({})",
                crate::redact::mask(&args.join(" ")),
                out.status
            ));
        }
        Err(crate::redact::mask(err).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(g: &str) -> GitSource {
        GitSource {
            git: g.to_string(),
            reference: GitRef::Head,
            depth: None,
            submodules: true,
            lfs: false,
            expected_commit: None,
            target_directory: None,
            patches: vec![],
            filter: Default::default(),
            span: marked_yaml::Span::new_blank(),
        }
    }

    #[test]
    fn urls_and_paths() {
        let dir = Path::new("/recipes/x");
        assert_eq!(repository(&src("https://h.org/a/b.git"), dir), "https://h.org/a/b.git");
        assert_eq!(
            repository(&src("git@github.com:a/b.git"), dir),
            "git@github.com:a/b.git"
        );
        assert_eq!(repository(&src("../repo"), dir), "/recipes/x/../repo");
    }
}
