//! The `context` section: ordered, typed, each value may use the ones
//! before it, and which variant keys each value depends on.

use indexmap::IndexMap;
use marked_yaml::Node;
use minijinja::value::Value;

use super::outputs::*;
use super::parse::PResult;
use super::usage::Usage;
use crate::syntax::jinja::Jinja;
use crate::syntax::node::Renderer;

impl Loader<'_> {
    pub(super) fn context(
        &self,
        node: Option<&Node>,
        jinja: &mut Jinja,
        usage: &mut Usage,
    ) -> PResult<IndexMap<String, serde_json::Value>> {
        let mut out = IndexMap::new();
        let Some(node) = node else { return Ok(out) };
        let Some(map) = node.as_mapping() else {
            return Err(self.file.error(
                node.span(),
                "`context` must be a mapping",
                "expected `name: value` entries",
            ));
        };
        for (k, v) in map.iter() {
            if k.as_str().contains('-') {
                return Err(self
                    .file
                    .error(
                        k.span(),
                        format!("context key `{}` contains `-`", k.as_str()),
                        "not a valid variable name",
                    )
                    .with_help(format!("use `{}`", k.as_str().replace('-', "_"))));
            }
            jinja.take_accessed();
            let value = match (Renderer { file: self.file, jinja }).render(v)? {
                Some(n) => match n.as_scalar() {
                    Some(s) => s.clone(),
                    None => Value::from_serialize(n.to_json()),
                },
                None => Value::from(()),
            };
            out.insert(
                k.as_str().to_string(),
                serde_json::to_value(&value).unwrap_or(serde_json::Value::Null),
            );
            let deps = usage.resolve(jinja.take_accessed());
            usage.context.insert(k.as_str().to_string(), deps);
            jinja.set_var(k.as_str(), value);
        }
        Ok(out)
    }
}
