//! The recipe glob dialect (rattler-build's): globset syntax against paths
//! relative to the prefix, `*` may cross `/`, and a plain path also selects
//! everything below it (`lib` ≡ `lib` or `lib/**`).

use globset::{GlobBuilder, GlobMatcher};

use crate::recipe::model::{FileFilter, Glob};

/// One compiled recipe glob (a pattern may expand to two matchers).
struct Compiled {
    matchers: Vec<GlobMatcher>,
}

impl Compiled {
    fn new(pattern: &str) -> Result<Self, String> {
        let p = pattern.strip_prefix("./").unwrap_or(pattern);
        let expanded: Vec<String> = if p.is_empty() || p == "." {
            vec!["**".into()]
        } else if let Some(dir) = p.strip_suffix('/') {
            vec![format!("{dir}/**")]
        } else {
            vec![p.to_string(), format!("{p}/**")]
        };
        let matchers = expanded
            .iter()
            .map(|g| {
                GlobBuilder::new(g)
                    .literal_separator(false)
                    .backslash_escape(true)
                    .build()
                    .map(|g| g.compile_matcher())
                    .map_err(|e| format!("invalid glob `{pattern}`: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { matchers })
    }

    fn is_match(&self, path: &str) -> bool {
        self.matchers.iter().any(|m| m.is_match(path))
    }
}

/// A compiled `include`/`exclude` filter that counts hits per include glob.
pub struct Selector<'a> {
    include: Vec<(&'a Glob, Compiled)>,
    exclude: Vec<Compiled>,
    hits: Vec<usize>,
}

impl<'a> Selector<'a> {
    /// Compile a filter; the error names the invalid glob.
    pub fn new(filter: &'a FileFilter) -> Result<Self, (String, &'a Glob)> {
        let include = filter
            .include
            .iter()
            .map(|g| Compiled::new(&g.pattern).map(|c| (g, c)).map_err(|e| (e, g)))
            .collect::<Result<Vec<_>, _>>()?;
        let exclude = filter
            .exclude
            .iter()
            .map(|g| Compiled::new(&g.pattern).map_err(|e| (e, g)))
            .collect::<Result<Vec<_>, _>>()?;
        let hits = vec![0; include.len()];
        Ok(Self { include, exclude, hits })
    }

    /// Whether `path` (relative, `/`-separated) is selected.
    pub fn select(&mut self, path: &str) -> bool {
        if self.exclude.iter().any(|e| e.is_match(path)) {
            return false;
        }
        if self.include.is_empty() {
            return true;
        }
        let mut selected = false;
        for (i, (_, c)) in self.include.iter().enumerate() {
            if c.is_match(path) {
                self.hits[i] += 1;
                selected = true;
            }
        }
        selected
    }

    /// Include globs that selected nothing.
    pub fn unmatched(&self) -> Vec<&'a Glob> {
        self.include
            .iter()
            .zip(&self.hits)
            .filter(|(_, &h)| h == 0)
            .map(|((g, _), _)| *g)
            .collect()
    }
}

/// A list of recipe globs (any one matching), shareable across threads.
pub struct GlobList {
    compiled: Vec<Compiled>,
}

impl GlobList {
    /// Compile `globs`; the error names the invalid glob.
    pub fn new(globs: &[Glob]) -> Result<Self, (String, &Glob)> {
        let compiled = globs
            .iter()
            .map(|g| Compiled::new(&g.pattern).map_err(|e| (e, g)))
            .collect::<Result<_, _>>()?;
        Ok(Self { compiled })
    }

    /// Compile plain patterns (from the command line).
    pub fn from_patterns(patterns: &[String]) -> Result<Self, String> {
        let compiled = patterns.iter().map(|p| Compiled::new(p)).collect::<Result<_, _>>()?;
        Ok(Self { compiled })
    }

    /// Whether there are no globs.
    pub fn is_empty(&self) -> bool {
        self.compiled.is_empty()
    }

    /// Whether any glob matches `path` (relative, `/`-separated).
    pub fn is_match(&self, path: &str) -> bool {
        self.compiled.iter().any(|c| c.is_match(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use marked_yaml::Span;

    fn filter(inc: &[&str], exc: &[&str]) -> FileFilter {
        let g = |p: &&str| Glob {
            pattern: p.to_string(),
            span: Span::new_blank(),
        };
        FileFilter {
            include: inc.iter().map(g).collect(),
            exclude: exc.iter().map(g).collect(),
        }
    }

    #[test]
    fn dialect() {
        let f = filter(&["lib/*.so.*", "include"], &[]);
        let mut s = Selector::new(&f).unwrap();
        assert!(s.select("lib/libx.so.7"));
        assert!(s.select("lib/libx.so.7.0.0"));
        assert!(!s.select("lib/libx.so"));
        assert!(s.select("include/a/b.h"));
        let f = filter(&[], &["share/**"]);
        let mut s = Selector::new(&f).unwrap();
        assert!(s.select("bin/x"));
        assert!(!s.select("share/doc/x"));
        // `*` crosses directories, as in rattler-build.
        let f = filter(&["lib/*"], &[]);
        let mut s = Selector::new(&f).unwrap();
        assert!(s.select("lib/a/b.txt"));
        let f = filter(&["nothing/**"], &[]);
        let mut s = Selector::new(&f).unwrap();
        assert!(!s.select("lib/x"));
        assert_eq!(s.unmatched().len(), 1);
    }
}
