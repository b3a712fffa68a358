//! Strict conversion of the `source` section: `path`, `url` and `git`
//! sources with their checksums, patches, filters and git references. The
//! kind is chosen by key (`git`, then `url`, then `path`); a key that does
//! not belong to that kind is an error at its line.

use std::path::PathBuf;

use super::model::*;
use super::parse::{PResult, Reader};
use crate::syntax::node::{Key, RNode};

/// Keys every source kind accepts.
const COMMON: &[&str] = &["patches", "target_directory", "filter"];

impl Reader<'_> {
    /// The `source` section: a mapping or a list of them.
    pub fn sources(&self, node: &RNode) -> PResult<Vec<Source>> {
        let items: Vec<&RNode> = match node.as_seq() {
            Some(items) => items.iter().collect(),
            None => vec![node],
        };
        items.into_iter().map(|item| self.source(item)).collect()
    }

    fn source(&self, node: &RNode) -> PResult<Source> {
        let entries = node.as_map().ok_or_else(|| {
            self.file
                .error(&node.span, "a source must be a mapping", "expected e.g. `path: ../src`")
        })?;
        let has = |k: &str| entries.iter().any(|(key, _)| key.name == k);
        if has("git") {
            self.git_source(node)
        } else if has("url") {
            self.url_source(node)
        } else if has("path") {
            self.path_source(node)
        } else {
            Err(self.file.error(
                &node.span,
                "a source needs `path`, `url` or `git`",
                "no source type here",
            ))
        }
    }

    fn entries<'n>(&self, node: &'n RNode, kind: &str, own: &[&str]) -> PResult<&'n [(Key, RNode)]> {
        let allowed: Vec<&str> = own.iter().chain(COMMON).copied().collect();
        self.map(node, &format!("{kind} source"), &allowed)
    }

    fn path_source(&self, node: &RNode) -> PResult<Source> {
        let own = ["path", "file_name", "sha256", "md5", "use_gitignore"];
        let mut src = PathSource {
            path: PathBuf::new(),
            file_name: None,
            target_directory: None,
            sha256: None,
            md5: None,
            use_gitignore: true,
            patches: Vec::new(),
            filter: FileFilter::default(),
            span: node.span,
        };
        for (k, v) in self.entries(node, "path", &own)? {
            match k.name.as_str() {
                "path" => src.path = PathBuf::from(self.string(v, "path")?),
                "file_name" => src.file_name = Some(self.string(v, "file_name")?),
                "sha256" => src.sha256 = Some(self.checksum(v, "sha256", 64)?),
                "md5" => src.md5 = Some(self.checksum(v, "md5", 32)?),
                "use_gitignore" => src.use_gitignore = self.bool(v, "use_gitignore")?,
                "target_directory" => src.target_directory = Some(self.target_directory(v)?),
                "patches" => src.patches = self.patches(v)?,
                _ => src.filter = self.file_filter(v)?,
            }
        }
        Ok(Source::Path(src))
    }

    fn url_source(&self, node: &RNode) -> PResult<Source> {
        let own = ["url", "file_name", "sha256", "md5", "attestation"];
        let mut src = UrlSource {
            url: Vec::new(),
            sha256: None,
            md5: None,
            file_name: None,
            target_directory: None,
            patches: Vec::new(),
            filter: FileFilter::default(),
            span: node.span,
        };
        for (k, v) in self.entries(node, "url", &own)? {
            match k.name.as_str() {
                "url" => {
                    for (u, span) in self.string_list(v, "url")? {
                        match url::Url::parse(&u) {
                            Ok(parsed) if ["http", "https", "file"].contains(&parsed.scheme()) => {
                                crate::redact::register_url(&u);
                                src.url.push(u)
                            }
                            Ok(parsed) => {
                                return Err(self.file.error(
                                    &span,
                                    format!("`{}:` URLs are not supported", parsed.scheme()),
                                    "use http, https or file",
                                ))
                            }
                            Err(e) => return Err(self.file.error(&span, format!("invalid URL `{u}`: {e}"), "here")),
                        }
                    }
                    if src.url.is_empty() {
                        return Err(self.file.error(&v.span, "`url` lists no URL", "empty"));
                    }
                }
                "file_name" => src.file_name = Some(self.string(v, "file_name")?),
                "sha256" => src.sha256 = Some(self.checksum(v, "sha256", 64)?),
                "md5" => src.md5 = Some(self.checksum(v, "md5", 32)?),
                "attestation" => {
                    return Err(self.file.error(
                        &k.span,
                        "`attestation` (sigstore verification) is not supported yet",
                        "remove it for now",
                    ))
                }
                "target_directory" => src.target_directory = Some(self.target_directory(v)?),
                "patches" => src.patches = self.patches(v)?,
                _ => src.filter = self.file_filter(v)?,
            }
        }
        Ok(Source::Url(src))
    }

    fn git_source(&self, node: &RNode) -> PResult<Source> {
        let own = [
            "git",
            "rev",
            "tag",
            "branch",
            "depth",
            "submodules",
            "lfs",
            "expected_commit",
        ];
        let mut src = GitSource {
            git: String::new(),
            reference: GitRef::Head,
            depth: None,
            submodules: true,
            lfs: false,
            expected_commit: None,
            target_directory: None,
            patches: Vec::new(),
            filter: FileFilter::default(),
            span: node.span,
        };
        let mut chosen: Option<&Key> = None;
        for (k, v) in self.entries(node, "git", &own)? {
            let mut reference = |r: GitRef| {
                if let Some(first) = chosen {
                    return Err(self
                        .file
                        .error(
                            &k.span,
                            format!(
                                "a git source takes one of `rev`, `tag` and `branch`, not both `{}` and `{}`",
                                first.name, k.name
                            ),
                            "second reference",
                        )
                        .with_help("keep the one that names what to build"));
                }
                chosen = Some(k);
                src.reference = r;
                Ok(())
            };
            match k.name.as_str() {
                "git" => {
                    src.git = self.string(v, "git")?;
                    crate::redact::register_url(&src.git);
                }
                "rev" => reference(GitRef::Rev(self.string(v, "rev")?))?,
                "tag" => reference(GitRef::Tag(self.string(v, "tag")?))?,
                "branch" => reference(GitRef::Branch(self.string(v, "branch")?))?,
                "depth" => {
                    // rattler-build writes `-1` for "full history".
                    let text = self.string(v, "depth")?;
                    src.depth = match text.trim() {
                        "-1" => None,
                        _ => Some(self.u64(v, "depth")?).filter(|d| *d > 0),
                    }
                }
                "submodules" => src.submodules = self.bool(v, "submodules")?,
                "lfs" => src.lfs = self.bool(v, "lfs")?,
                "expected_commit" => src.expected_commit = Some(self.checksum(v, "expected_commit", 40)?),
                "target_directory" => src.target_directory = Some(self.target_directory(v)?),
                "patches" => src.patches = self.patches(v)?,
                _ => src.filter = self.file_filter(v)?,
            }
        }
        if src.git.trim().is_empty() {
            return Err(self.file.error(&node.span, "`git` names no repository", "empty"));
        }
        Ok(Source::Git(src))
    }

    /// A hex digest of `len` characters (`""` is a placeholder that never
    /// matches, so the mismatch error shows the real digest).
    fn checksum(&self, node: &RNode, what: &str, len: usize) -> PResult<String> {
        let text = self.string(node, what)?.trim().to_ascii_lowercase();
        if text.is_empty() || (text.len() == len && text.bytes().all(|b| b.is_ascii_hexdigit())) {
            return Ok(text);
        }
        Err(self.file.error(
            &node.span,
            format!("`{what}` must be {len} hexadecimal digits, got `{text}`"),
            "not a digest",
        ))
    }

    fn target_directory(&self, node: &RNode) -> PResult<PathBuf> {
        let dir = PathBuf::from(self.string(node, "target_directory")?);
        if crate::disk::safe_join(std::path::Path::new("/"), &dir).is_none() {
            return Err(self
                .file
                .error(
                    &node.span,
                    format!("`target_directory` {} leaves the work directory", dir.display()),
                    "must stay inside the work directory",
                )
                .with_help("use a relative path without `..`"));
        }
        Ok(dir)
    }

    fn patches(&self, node: &RNode) -> PResult<Vec<PathBuf>> {
        Ok(self
            .string_list(node, "patches")?
            .into_iter()
            .map(|(p, _)| PathBuf::from(p))
            .collect())
    }
}
