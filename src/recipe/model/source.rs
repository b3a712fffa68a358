//! `source`: path, url and git sources.

use std::path::{Path, PathBuf};

use marked_yaml::Span;
use serde::Serialize;

use super::FileFilter;

/// A source to place in the work directory.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Source {
    /// A local file or directory.
    Path(PathSource),
    /// A file downloaded from one of several URLs.
    Url(UrlSource),
    /// A git repository checked out at a tag, branch or commit.
    Git(GitSource),
}

impl Source {
    /// Where the source is declared.
    pub fn span(&self) -> Span {
        match self {
            Source::Path(s) => s.span,
            Source::Url(s) => s.span,
            Source::Git(s) => s.span,
        }
    }

    /// Patch files (relative to the recipe directory), applied in order.
    pub fn patches(&self) -> &[PathBuf] {
        match self {
            Source::Path(s) => &s.patches,
            Source::Url(s) => &s.patches,
            Source::Git(s) => &s.patches,
        }
    }

    /// Forget `patch` (for `kiln create-patch`, which replaces it).
    pub fn remove_patch(&mut self, patch: &Path) {
        let patches = match self {
            Source::Path(s) => &mut s.patches,
            Source::Url(s) => &mut s.patches,
            Source::Git(s) => &mut s.patches,
        };
        patches.retain(|p| p != patch);
    }

    /// The subdirectory of the work directory the source goes to.
    pub fn target_directory(&self) -> Option<&Path> {
        match self {
            Source::Path(s) => s.target_directory.as_deref(),
            Source::Url(s) => s.target_directory.as_deref(),
            Source::Git(s) => s.target_directory.as_deref(),
        }
    }

    /// Which files land in the work directory.
    pub fn filter(&self) -> &FileFilter {
        match self {
            Source::Path(s) => &s.filter,
            Source::Url(s) => &s.filter,
            Source::Git(s) => &s.filter,
        }
    }
}

/// `source: {path: ...}`.
#[derive(Debug, Clone, Serialize)]
pub struct PathSource {
    /// Path relative to the recipe directory (or absolute).
    pub path: PathBuf,
    /// Rename a file source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// Place it in this subdirectory of the work directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_directory: Option<PathBuf>,
    /// Expected SHA-256 of a file source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Expected MD5 of a file source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    /// Honour `.gitignore` when copying a directory.
    pub use_gitignore: bool,
    /// Patches applied after placing the source.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<PathBuf>,
    /// `filter`: which files of a directory or archive land in the work directory.
    #[serde(skip_serializing_if = "FileFilter::is_empty")]
    pub filter: FileFilter,
    /// Where the source is declared.
    #[serde(skip)]
    pub span: Span,
}

/// `source: {url: ...}`.
#[derive(Debug, Clone, Serialize)]
pub struct UrlSource {
    /// The URL, or mirrors tried in order.
    pub url: Vec<String>,
    /// Expected SHA-256 of the download.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Expected MD5 of the download.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    /// Keep the download as this file (not extracted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// Place it in this subdirectory of the work directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_directory: Option<PathBuf>,
    /// Patches applied after placing the source.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<PathBuf>,
    /// `filter`: which files of the archive land in the work directory.
    #[serde(skip_serializing_if = "FileFilter::is_empty")]
    pub filter: FileFilter,
    /// Where the source is declared.
    #[serde(skip)]
    pub span: Span,
}

/// Which commit of a git source to check out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitRef {
    /// A commit (or anything `git rev-parse` reads).
    Rev(String),
    /// A tag.
    Tag(String),
    /// The tip of a branch.
    Branch(String),
    /// The remote's default branch.
    Head,
}

impl Serialize for GitRef {
    /// As the recipe writes it: `rev: X`, `tag: X`, `branch: X`, or nothing.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        match self {
            GitRef::Rev(x) => map.serialize_entry("rev", x)?,
            GitRef::Tag(x) => map.serialize_entry("tag", x)?,
            GitRef::Branch(x) => map.serialize_entry("branch", x)?,
            GitRef::Head => {}
        }
        map.end()
    }
}

/// `source: {git: ...}`.
#[derive(Debug, Clone, Serialize)]
pub struct GitSource {
    /// Repository URL, `user@host:path`, or a local path (relative to the recipe directory).
    pub git: String,
    /// What to check out.
    #[serde(flatten)]
    pub reference: GitRef,
    /// Fetch only this many commits of history.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depth: Option<u64>,
    /// Check out submodules too.
    pub submodules: bool,
    /// Fetch git-lfs files.
    pub lfs: bool,
    /// The commit `reference` must resolve to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_commit: Option<String>,
    /// Place it in this subdirectory of the work directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_directory: Option<PathBuf>,
    /// Patches applied after the checkout.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<PathBuf>,
    /// `filter`: which files of the checkout land in the work directory.
    #[serde(skip_serializing_if = "FileFilter::is_empty")]
    pub filter: FileFilter,
    /// Where the source is declared.
    #[serde(skip)]
    pub span: Span,
}
