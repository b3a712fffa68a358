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

/// The commit `src` names, fetched into the cache if needed (once per process).
pub fn resolve(src: &GitSource, recipe_dir: &Path, where_: &str) -> Result<String> {
    static MEMO: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    let url = repository(src, recipe_dir);
    let memo_key = format!("{url}\n{:?}\n{:?}", src.reference, src.depth);
    let memo = MEMO.get_or_init(Default::default);
    if let Some(c) = memo.lock().expect("git memo").get(&memo_key) {
        return Ok(c.clone());
    }
    let repo = Cache::open(&url)?;
    let commit = match repo.resolve(src, &url) {
        Ok(c) => c,
        Err(first) => {
            // A damaged cache: start over once, then report.
            tracing::warn!(
                "{where_}: the cached clone of {} failed ({first}); fetching it again",
                shown(&url)
            );
            repo.reset()?;
            repo.resolve(src, &url).map_err(|e| miette!("{where_}: {e}"))?
        }
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
    memo.lock().expect("git memo").insert(memo_key, commit.clone());
    Ok(commit)
}

/// Check out `src` into `dest` (a fresh, empty directory); returns the commit.
pub fn checkout(src: &GitSource, recipe_dir: &Path, dest: &Path, where_: &str) -> Result<String> {
    let commit = resolve(src, recipe_dir, where_)?;
    let url = repository(src, recipe_dir);
    let repo = Cache::open(&url)?;
    let fail = |e: String| miette!("{where_}: checking out {} at {commit}: {e}", shown(&url));
    let dest_s = dest.to_string_lossy().into_owned();
    git(&["init", "-q", &dest_s]).map_err(fail)?;
    let pin = format!("refs/kiln/pin/{commit}");
    let mut fetch = vec!["-C", &dest_s, "fetch", "-q", "--no-tags"];
    let depth = src.depth.map(|d| d.to_string());
    if let Some(d) = &depth {
        fetch.extend(["--depth", d]);
    }
    let cache_s = repo.path.to_string_lossy().into_owned();
    fetch.extend([cache_s.as_str(), pin.as_str()]);
    {
        let _lock = repo.lock()?;
        git(&fetch).map_err(fail)?;
    }
    git(&["-C", &dest_s, "checkout", "-q", "--detach", &commit]).map_err(fail)?;
    git(&["-C", &dest_s, "remote", "add", "origin", &url]).map_err(fail)?;
    if src.submodules && dest.join(".gitmodules").is_file() {
        git(&["-C", &dest_s, "submodule", "update", "-q", "--init", "--recursive"])
            .map_err(|e| fail(format!("submodules: {e}")))?;
    }
    if src.lfs {
        if git(&["lfs", "version"]).is_err() {
            return Err(miette!(
                help = "install git-lfs (for example from conda-forge) or set `lfs: false`",
                "{where_}: `lfs: true` needs git-lfs, which is not installed"
            ));
        }
        git(&["-C", &dest_s, "lfs", "install", "--local"]).map_err(fail)?;
        git(&["-C", &dest_s, "lfs", "pull"]).map_err(|e| fail(format!("git lfs pull: {e}")))?;
    }
    Ok(commit)
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

    /// Fetch what `src` needs (unless present) and return its commit.
    fn resolve(&self, src: &GitSource, url: &str) -> std::result::Result<String, String> {
        let _lock = self.lock().map_err(|e| e.to_string())?;
        self.ensure()?;
        let repo = self.path.to_string_lossy().into_owned();
        let depth = src.depth.map(|d| d.to_string());
        let fetch = |refspecs: &[&str], with_depth: bool| -> std::result::Result<(), String> {
            let mut args = vec!["-C", repo.as_str(), "fetch", "-q", "--no-tags"];
            if let (true, Some(d)) = (with_depth, &depth) {
                args.extend(["--depth", d.as_str()]);
            }
            args.push(url);
            args.extend(refspecs);
            git(&args)
                .map(drop)
                .map_err(|e| format!("fetching {}: {e}", shown(url)))
        };
        let commit_of = |r: &str| git(&["-C", &repo, "rev-parse", "-q", "--verify", &format!("{r}^{{commit}}")]);
        let commit = match &src.reference {
            GitRef::Rev(rev) => match commit_of(rev) {
                Ok(c) => c,
                Err(_) => {
                    fetch(&["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"], false)?;
                    commit_of(rev).map_err(|_| format!("{} has no commit `{rev}`", shown(url)))?
                }
            },
            GitRef::Tag(tag) => {
                let local = format!("refs/tags/{tag}");
                match commit_of(&local) {
                    Ok(c) => c,
                    Err(_) => {
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
        git(&["-C", &repo, "cat-file", "-e", &format!("{commit}^{{tree}}")])?;
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
    let out = Command::new("git")
        .args(["-c", "protocol.file.allow=always", "-c", "advice.detachedHead=false"])
        .args(args)
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
        Err(crate::redact::mask(err.trim()).into_owned())
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
