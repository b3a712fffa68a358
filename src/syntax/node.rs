//! Rendered YAML: the recipe's node tree after `${{ }}` evaluation and
//! `if`/`then`/`else` splicing, with every node still carrying its span so
//! later stages can point at the line that caused a problem.

use marked_yaml::types::MarkedMappingNode;
use marked_yaml::{Node, Span};
use minijinja::value::{Value, ValueKind};

use super::jinja::{Jinja, JinjaError};
use crate::diagnostics::{SourceError, SourceFile};

/// A rendered YAML node.
#[derive(Debug, Clone)]
pub struct RNode {
    /// Where the node came from.
    pub span: Span,
    /// The rendered content.
    pub value: RValue,
}

/// Content of a rendered node.
#[derive(Debug, Clone)]
pub enum RValue {
    /// A scalar with its type (string, integer, boolean, float or none).
    Scalar(Value),
    /// A list, conditionals already spliced in.
    Seq(Vec<RNode>),
    /// A mapping in source order.
    Map(Vec<(Key, RNode)>),
}

/// A mapping key.
#[derive(Debug, Clone)]
pub struct Key {
    /// Key text.
    pub name: String,
    /// Where the key is written.
    pub span: Span,
}

/// Renders marked YAML nodes with a [`Jinja`] evaluator.
pub struct Renderer<'a> {
    /// The file the nodes come from (for errors).
    pub file: &'a SourceFile,
    /// The evaluator.
    pub jinja: &'a Jinja,
}

impl Renderer<'_> {
    /// Render a node. `None` means it rendered to nothing (and is dropped).
    pub fn render(&self, node: &Node) -> Result<Option<RNode>, SourceError> {
        match node {
            Node::Scalar(s) => {
                let value = if s.may_coerce() {
                    if s.as_str().contains("${{") || s.as_str().contains("{%") {
                        let v = self.eval_scalar(s.as_str(), s.span())?;
                        coerce_rendered(v)
                    } else {
                        coerce_plain(s.as_str())
                    }
                } else if s.as_str().contains("${{") || s.as_str().contains("{%") {
                    let v = self.eval_scalar(s.as_str(), s.span())?;
                    if v.kind() == ValueKind::String {
                        v
                    } else {
                        Value::from(v.to_string())
                    }
                } else {
                    Value::from(s.as_str())
                };
                if is_empty(&value) {
                    return Ok(None);
                }
                Ok(Some(RNode {
                    span: *s.span(),
                    value: RValue::Scalar(value),
                }))
            }
            Node::Sequence(seq) => {
                let mut out = Vec::new();
                for item in seq.iter() {
                    self.render_seq_item(item, &mut out)?;
                }
                Ok(Some(RNode {
                    span: *seq.span(),
                    value: RValue::Seq(out),
                }))
            }
            Node::Mapping(map) => self.render_map(map, false),
        }
    }

    /// Render a `build` section: `string` is left out (it is rendered later,
    /// once `hash` and `build_number` are known) and `skip` entries are
    /// evaluated as expressions (`skip: [win, python == "3.10"]`).
    pub fn render_build(&self, node: &Node) -> Result<Option<RNode>, SourceError> {
        match node.as_mapping() {
            Some(map) => self.render_map(map, true),
            None => self.render(node),
        }
    }

    /// A `skip` value: each expression (or `${{ }}` template) evaluated to a boolean.
    fn render_skip(&self, node: &Node) -> Result<Option<RNode>, SourceError> {
        let eval = |s: &marked_yaml::types::MarkedScalarNode| -> Result<RNode, SourceError> {
            let text = s.as_str();
            let value = if text.contains("${{") {
                self.eval_scalar(text, s.span())?
            } else {
                self.jinja.eval(text).map_err(|e| self.jinja_error(e, s.span(), text))?
            };
            Ok(RNode {
                span: *s.span(),
                value: RValue::Scalar(Value::from(value.is_true())),
            })
        };
        match node {
            Node::Scalar(s) => eval(s).map(Some),
            Node::Sequence(seq) => {
                let mut out = Vec::new();
                for item in seq.iter() {
                    match item {
                        Node::Scalar(s) => out.push(eval(s)?),
                        other => {
                            return Err(self.file.error(
                                other.span(),
                                "`skip` entries must be expressions",
                                "expected e.g. `win` or `python == \"3.10\"`",
                            ))
                        }
                    }
                }
                Ok(Some(RNode {
                    span: *seq.span(),
                    value: RValue::Seq(out),
                }))
            }
            Node::Mapping(m) => Err(self.file.error(
                m.span(),
                "`skip` must be an expression or a list of expressions",
                "expected e.g. `win` or `python == \"3.10\"`",
            )),
        }
    }

    /// Render a mapping; `build` marks a `build` section (see [`Self::render_build`]).
    fn render_map(&self, map: &MarkedMappingNode, build: bool) -> Result<Option<RNode>, SourceError> {
        let mut out = Vec::new();
        for (k, v) in map.iter() {
            if build && k.as_str() == "string" {
                continue;
            }
            // Scripts see build-time variables (`${{ PYTHON }}`) as markers.
            let script = matches!(k.as_str(), "script" | "steps");
            let was = script.then(|| self.jinja.defer(true));
            let rendered = if build && k.as_str() == "skip" {
                self.render_skip(v)
            } else if build && k.as_str() == "steps" {
                self.render_steps(v)
            } else {
                self.render(v)
            };
            if let Some(was) = was {
                self.jinja.defer(was);
            }
            if let Some(rv) = rendered? {
                out.push((
                    Key {
                        name: k.as_str().to_string(),
                        span: *k.span(),
                    },
                    rv,
                ));
            }
        }
        Ok(Some(RNode {
            span: *map.span(),
            value: RValue::Map(out),
        }))
    }

    /// `build.steps`: a step with `if` (and no `then`) is kept when its
    /// expression is true, without the `if`; `if/then/else` items are
    /// conditionals as anywhere else.
    fn render_steps(&self, node: &Node) -> Result<Option<RNode>, SourceError> {
        let Some(seq) = node.as_sequence() else {
            return self.render(node);
        };
        let mut out = Vec::new();
        for item in seq.iter() {
            let step = item.as_mapping().filter(|m| m.get_node("then").is_none());
            let Some((map, cond)) = step.and_then(|m| m.get_node("if").map(|c| (m, c))) else {
                self.render_seq_item(item, &mut out)?;
                continue;
            };
            let Some(expr) = cond.as_scalar() else {
                return Err(self
                    .file
                    .error(cond.span(), "`if` must be an expression", "expected a string"));
            };
            let keep = self.condition(expr)?;
            if !keep {
                continue;
            }
            let mut entries = Vec::new();
            for (k, v) in map.iter().filter(|(k, _)| k.as_str() != "if") {
                if let Some(rv) = self.render(v)? {
                    entries.push((
                        Key {
                            name: k.as_str().to_string(),
                            span: *k.span(),
                        },
                        rv,
                    ));
                }
            }
            out.push(RNode {
                span: *map.span(),
                value: RValue::Map(entries),
            });
        }
        Ok(Some(RNode {
            span: *seq.span(),
            value: RValue::Seq(out),
        }))
    }

    /// An `if` expression's truth. Build-time variables have no value
    /// yet, so a condition on one is an error (not a comparison with a
    /// marker), in scripts too.
    fn condition(&self, expr: &marked_yaml::types::MarkedScalarNode) -> Result<bool, SourceError> {
        let was = self.jinja.defer(false);
        let value = self.jinja.eval(expr.as_str());
        self.jinja.defer(was);
        Ok(value
            .map_err(|e| self.jinja_error(e, expr.span(), expr.as_str()))?
            .is_true())
    }

    fn render_seq_item(&self, item: &Node, out: &mut Vec<RNode>) -> Result<(), SourceError> {
        let Some(map) = item.as_mapping() else {
            if let Some(r) = self.render(item)? {
                out.push(r);
            }
            return Ok(());
        };
        let Some(cond) = map.get_node("if") else {
            if let Some(r) = self.render(item)? {
                out.push(r);
            }
            return Ok(());
        };
        for (k, _) in map.iter() {
            if !matches!(k.as_str(), "if" | "then" | "else") {
                return Err(self.file.error(
                    k.span(),
                    format!("unexpected key `{}` in a conditional", k.as_str()),
                    "conditionals take only `if`, `then` and `else`",
                ));
            }
        }
        let Some(expr) = cond.as_scalar() else {
            return Err(self
                .file
                .error(cond.span(), "`if` must be an expression", "expected a string"));
        };
        let then = map.get_node("then").ok_or_else(|| {
            self.file
                .error(map.span(), "conditional without `then`", "add a `then:` branch")
        })?;
        let truthy = self.condition(expr)?;
        let branch = if truthy { Some(then) } else { map.get_node("else") };
        match branch {
            None => {}
            Some(Node::Sequence(seq)) => {
                for n in seq.iter() {
                    self.render_seq_item(n, out)?;
                }
            }
            Some(n) => self.render_seq_item(n, out)?,
        }
        Ok(())
    }

    fn eval_scalar(&self, text: &str, span: &Span) -> Result<Value, SourceError> {
        self.jinja
            .render_scalar(text)
            .map_err(|e| self.jinja_error(e, span, text))
    }

    /// Turn an evaluation error into a located error.
    pub fn jinja_error(&self, e: JinjaError, span: &Span, text: &str) -> SourceError {
        let label = if e.undefined {
            "undefined here"
        } else {
            "in this expression"
        };
        let mut err = self
            .file
            .error_at(self.file.source_span(span, text.len().max(1)), e.message.clone(), label);
        if e.undefined {
            err = err.with_help(
                "define it under `context:`, add it to the variant config (variants.yaml next to the recipe, or a `-m` file), or check the spelling",
            );
        }
        err
    }
}

/// YAML 1.2 core-schema typing of an unquoted, untemplated scalar.
pub fn coerce_plain(s: &str) -> Value {
    match s {
        "true" | "True" | "TRUE" => return Value::from(true),
        "false" | "False" | "FALSE" => return Value::from(false),
        "null" | "Null" | "NULL" | "~" | "" => return Value::from(()),
        _ => {}
    }
    if let Ok(i) = s.parse::<i64>() {
        return Value::from(i);
    }
    if s.contains('.') && !s.ends_with('.') && s.chars().all(|c| c.is_ascii_digit() || c == '.') {
        if let Ok(f) = s.parse::<f64>() {
            // Keep the text: `1.10` as a float would lose its meaning as a version.
            let _ = f;
            return Value::from(s);
        }
    }
    Value::from(s)
}

/// Mixed templates render to text; `true`/`false` and integers are typed.
fn coerce_rendered(v: Value) -> Value {
    if v.kind() != ValueKind::String {
        return v;
    }
    let s = v.as_str().unwrap_or_default();
    match s {
        "true" | "True" => Value::from(true),
        "false" | "False" => Value::from(false),
        _ => s.parse::<i64>().map(Value::from).unwrap_or(v),
    }
}

fn is_empty(v: &Value) -> bool {
    v.is_none()
        || v.is_undefined()
        || (v.kind() == ValueKind::String && v.as_str().is_some_and(|s| s.trim().is_empty()))
}

impl RNode {
    /// The mapping entries, if this is a mapping.
    pub fn as_map(&self) -> Option<&[(Key, RNode)]> {
        match &self.value {
            RValue::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The list items, if this is a list.
    pub fn as_seq(&self) -> Option<&[RNode]> {
        match &self.value {
            RValue::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// The scalar value, if this is a scalar.
    pub fn as_scalar(&self) -> Option<&Value> {
        match &self.value {
            RValue::Scalar(v) => Some(v),
            _ => None,
        }
    }

    /// Look up a key in a mapping.
    pub fn get(&self, key: &str) -> Option<&RNode> {
        self.as_map()?.iter().find(|(k, _)| k.name == key).map(|(_, v)| v)
    }

    /// Convert to JSON (for `extra`, `tests` and the rendered recipe).
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            RValue::Scalar(v) => serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
            RValue::Seq(s) => serde_json::Value::Array(s.iter().map(RNode::to_json).collect()),
            RValue::Map(m) => serde_json::Value::Object(m.iter().map(|(k, v)| (k.name.clone(), v.to_json())).collect()),
        }
    }
}
