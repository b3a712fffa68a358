//! YAML with spans: parsing a document that must be a mapping, with errors
//! located in its source file.

use marked_yaml::{loader::LoaderOptions, LoadError, Node, Span};

use crate::diagnostics::{SourceError, SourceFile};

/// Parse YAML text that must be a mapping (`what` names the document in errors).
pub fn parse_mapping(file: &SourceFile, what: &str) -> Result<Node, SourceError> {
    let options = LoaderOptions::default()
        .error_on_duplicate_keys(true)
        .prevent_coercion(true);
    marked_yaml::parse_yaml_with_options(0, file.text.as_str(), options).map_err(|e| {
        let (marker, msg) = match &e {
            LoadError::TopLevelMustBeMapping(m) => (Some(*m), format!("{what} must be a YAML mapping")),
            LoadError::UnexpectedAnchor(m) => (Some(*m), "YAML anchors are not supported here".to_string()),
            LoadError::MappingKeyMustBeScalar(m) => (Some(*m), "mapping keys must be plain strings".to_string()),
            LoadError::UnexpectedTag(m) => (Some(*m), "YAML tags are not supported here".to_string()),
            LoadError::ScanError(m, se) => (Some(*m), format!("invalid YAML: {se}")),
            LoadError::DuplicateKey(inner) => (
                inner.key.span().start().copied(),
                format!("duplicate key `{}`", inner.key.as_str()),
            ),
            other => (None, format!("invalid YAML: {other}")),
        };
        let span = marker.map(Span::new_start).unwrap_or_else(Span::new_blank);
        file.error(&span, msg, "here")
    })
}
