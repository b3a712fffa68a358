//! User-facing errors that point into a file.
//!
//! Every mistake in user input (recipe, variant file, script) becomes a
//! [`SourceError`]: a `miette` diagnostic carrying the file's text, the span
//! of the offending node and, where we can, a hint on what to do next.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use marked_yaml::Span;
use miette::{Diagnostic, NamedSource, SourceSpan};

/// A text file the user gave us, kept in memory so errors can quote it.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path as the user should see it.
    pub path: PathBuf,
    /// Full text of the file.
    pub text: Arc<String>,
}

/// An error located in a [`SourceFile`] (boxed, so results stay small).
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error(transparent)]
#[diagnostic(transparent)]
pub struct SourceError(Box<Located>);

/// The content of a [`SourceError`].
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{message}")]
pub struct Located {
    message: String,
    #[source_code]
    src: NamedSource<Arc<String>>,
    #[label("{label}")]
    span: SourceSpan,
    label: String,
    #[help]
    help: Option<String>,
}

impl SourceError {
    /// Attach a hint telling the user what to do next.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.0.help = Some(help.into());
        self
    }
}

impl SourceFile {
    /// Read a file from disk.
    pub fn read(path: &Path) -> miette::Result<Self> {
        let text = fs_err::read_to_string(path).map_err(|e| miette::miette!("{e}"))?;
        Ok(Self {
            path: path.to_path_buf(),
            text: Arc::new(text),
        })
    }

    /// Byte offset of a 1-based line and column (columns count characters).
    pub fn offset(&self, line: usize, column: usize) -> usize {
        let mut offset = 0;
        for (i, l) in self.text.split_inclusive('\n').enumerate() {
            if i + 1 == line {
                let col_bytes: usize = l.chars().take(column.saturating_sub(1)).map(char::len_utf8).sum();
                return offset + col_bytes;
            }
            offset += l.len();
        }
        self.text.len()
    }

    /// The miette span of a YAML span; `len_hint` is used when the span has no end.
    pub fn source_span(&self, span: &Span, len_hint: usize) -> SourceSpan {
        let Some(start) = span.start() else {
            return SourceSpan::from((0, 0));
        };
        let begin = self.offset(start.line(), start.column());
        let end = span
            .end()
            .map(|e| self.offset(e.line(), e.column()))
            .filter(|&e| e > begin)
            .unwrap_or(begin + len_hint);
        let end = end.min(self.text.len());
        SourceSpan::from((begin, end.saturating_sub(begin)))
    }

    /// `path:line:column` of a span, for plain-text messages.
    pub fn location(&self, span: &Span) -> String {
        match span.start() {
            Some(m) => format!("{}:{}:{}", self.path.display(), m.line(), m.column()),
            None => self.path.display().to_string(),
        }
    }

    /// Build an error pointing at `span`.
    pub fn error(&self, span: &Span, message: impl Into<String>, label: impl Into<String>) -> SourceError {
        self.error_at(self.source_span(span, 1), message, label)
    }

    /// Build an error pointing at a byte range.
    pub fn error_at(&self, span: SourceSpan, message: impl Into<String>, label: impl Into<String>) -> SourceError {
        let message = message.into();
        // Repeat the location in the message itself, so it survives plain logs.
        let (line, col) = self.line_col(span.offset());
        SourceError(Box::new(Located {
            message: format!("{}:{line}:{col}: {message}", self.path.display()),
            src: NamedSource::new(self.path.display().to_string(), self.text.clone()),
            span,
            label: label.into(),
            help: None,
        }))
    }

    fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }
}

/// Log a warning once per process, however many variants render the line
/// it is about.
pub fn warn_once(message: String) {
    static SEEN: std::sync::OnceLock<std::sync::Mutex<std::collections::BTreeSet<String>>> = std::sync::OnceLock::new();
    let seen = SEEN.get_or_init(Default::default);
    if seen.lock().map(|mut s| s.insert(message.clone())).unwrap_or(true) {
        tracing::warn!("{message}");
    }
}
