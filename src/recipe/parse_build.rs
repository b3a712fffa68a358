//! Strict conversion of the `build` section: number, string, script (in
//! all its forms), noarch, files, skip, always_include_files and variant
//! keys; every other v1 build key is an error at its line.

use std::path::PathBuf;

use indexmap::IndexMap;
use marked_yaml::Span;
use rattler_conda_types::NoArchType;

use super::model::*;
use super::parse::{PResult, Reader};
use crate::syntax::node::RNode;

impl Reader<'_> {
    /// The `build` section; `raw_string` is the unrendered `build.string`.
    pub fn build(&self, node: &RNode, raw_string: Option<(String, Span)>) -> PResult<BuildSection> {
        let allowed = [
            "number",
            "string",
            "script",
            "steps",
            "noarch",
            "files",
            "skip",
            "always_include_files",
            "always_copy_files",
            "merge_build_and_host_envs",
            "dynamic_linking",
            "variant",
            "prefix_detection",
            "python",
            "post_process",
            "flags",
        ];
        let entries = self.map(node, "build", &allowed)?;
        let mut b = BuildSection {
            string: raw_string,
            ..Default::default()
        };
        for (k, v) in entries {
            match k.name.as_str() {
                "number" => b.number = Some(self.u64(v, "build.number")?),
                "string" => {}
                "script" | "steps" if b.script.is_some() => {
                    return Err(self
                        .file
                        .error(
                            &k.span,
                            "`script` and `steps` are mutually exclusive",
                            "second one here",
                        )
                        .with_help("use `steps` for a list of separate steps, or `script` for one script"))
                }
                "script" => b.script = Some(self.script(v)?),
                "steps" => {
                    if !self.experimental {
                        return Err(self
                            .file
                            .error(
                                &k.span,
                                "`build.steps` is an experimental feature",
                                "needs --experimental",
                            )
                            .with_help("pass `--experimental` to `kiln build` (or set KILN_EXPERIMENTAL=1)"));
                    }
                    b.script = Some(self.steps(v)?)
                }
                "noarch" => {
                    let text = self.string(v, "build.noarch")?;
                    let kind = match text.as_str() {
                        "generic" => NoArchType::generic(),
                        "python" => NoArchType::python(),
                        _ => {
                            return Err(self.file.error(
                                &v.span,
                                format!("invalid `build.noarch` value `{text}`"),
                                "expected `generic` or `python`",
                            ))
                        }
                    };
                    b.noarch = Some((kind, v.span));
                }
                "files" => b.files = Some(self.file_filter(v)?),
                "skip" => {
                    b.skip = match v.as_seq() {
                        Some(items) => items.iter().any(|i| i.as_scalar().is_some_and(|s| s.is_true())),
                        None => v.as_scalar().is_some_and(|s| s.is_true()),
                    }
                }
                "always_include_files" => b.always_include_files = self.globs(v, "always_include_files")?,
                "variant" => b.variant = Some(self.variant_keys(v)?),
                "dynamic_linking" => b.dynamic_linking = Some(self.dynamic_linking(v)?),
                "prefix_detection" => b.prefix_detection = Some(self.prefix_detection(v)?),
                "post_process" => b.post_process = Some(self.post_process(v)?),
                "always_copy_files" => b.always_copy_files = Some(self.globs(v, "always_copy_files")?),
                "python" => b.python = Some(self.python(v)?),
                "merge_build_and_host_envs" => {
                    b.merge_build_and_host_envs = Some(self.bool(v, "build.merge_build_and_host_envs")?)
                }
                other => {
                    return Err(self
                        .file
                        .error(
                            &k.span,
                            format!("`build.{other}` is not supported yet"),
                            "not implemented in kiln yet",
                        )
                        .with_help("remove it, or follow the kiln issue tracker for support"))
                }
            }
        }
        Ok(b)
    }

    /// `build.dynamic_linking`: run-path relocation and the linking checks.
    fn dynamic_linking(&self, node: &RNode) -> PResult<DynamicLinking> {
        let keys = [
            "rpaths",
            "binary_relocation",
            "rpath_allowlist",
            "missing_dso_allowlist",
            "overdepending_behavior",
            "overlinking_behavior",
        ];
        let mut d = DynamicLinking::default();
        for (k, v) in self.map(node, "build.dynamic_linking", &keys)? {
            match k.name.as_str() {
                "rpaths" => d.rpaths = self.string_list(v, "rpaths")?.into_iter().map(|(s, _)| s).collect(),
                "binary_relocation" => {
                    d.binary_relocation = match v.as_scalar() {
                        Some(s) if s.kind() == minijinja::value::ValueKind::Bool => {
                            if s.is_true() {
                                BinaryRelocation::All
                            } else {
                                BinaryRelocation::None
                            }
                        }
                        _ => BinaryRelocation::Only(self.globs(v, "binary_relocation")?),
                    }
                }
                "rpath_allowlist" => d.rpath_allowlist = self.globs(v, "rpath_allowlist")?,
                "missing_dso_allowlist" => d.missing_dso_allowlist = self.globs(v, "missing_dso_allowlist")?,
                "overlinking_behavior" => d.overlinking_behavior = self.linking_behavior(v, &k.name)?,
                "overdepending_behavior" => d.overdepending_behavior = self.linking_behavior(v, &k.name)?,
                _ => unreachable!("keys are checked by map()"),
            }
        }
        Ok(d)
    }

    /// `ignore` or `error`.
    fn linking_behavior(&self, node: &RNode, key: &str) -> PResult<LinkingBehavior> {
        match node.as_scalar().map(|s| s.to_string()).as_deref() {
            Some("ignore") => Ok(LinkingBehavior::Ignore),
            Some("error") => Ok(LinkingBehavior::Error),
            _ => Err(self.file.error(
                &node.span,
                format!("`dynamic_linking.{key}` must be `ignore` or `error`"),
                "`ignore` warns, `error` fails the build",
            )),
        }
    }

    /// `build.post_process`: a list of `{files, regex, replacement}`.
    fn post_process(&self, node: &RNode) -> PResult<Vec<PostProcess>> {
        let items = node.as_seq().ok_or_else(|| {
            self.file.error(
                &node.span,
                "`post_process` must be a list",
                "expected a list of {files, regex, replacement}",
            )
        })?;
        items
            .iter()
            .map(|item| {
                let mut rule = PostProcess {
                    files: Vec::new(),
                    regex: String::new(),
                    replacement: String::new(),
                    span: item.span,
                };
                let mut has_regex = false;
                for (k, v) in self.map(item, "post_process", &["files", "regex", "replacement"])? {
                    match k.name.as_str() {
                        "files" => rule.files = self.globs(v, "files")?,
                        "regex" => {
                            rule.regex = self.string(v, "regex")?;
                            has_regex = true;
                            if let Err(e) = regex::bytes::Regex::new(&rule.regex) {
                                return Err(self.file.error(
                                    &v.span,
                                    format!("invalid regular expression: {e}"),
                                    "here",
                                ));
                            }
                        }
                        _ => rule.replacement = self.string(v, "replacement")?,
                    }
                }
                if rule.files.is_empty() || !has_regex {
                    return Err(self.file.error(
                        &item.span,
                        "a post_process rule needs `files` and `regex`",
                        "incomplete rule",
                    ));
                }
                Ok(rule)
            })
            .collect()
    }

    /// `build.prefix_detection: {force_file_type: {text, binary}, ignore, ignore_binary_files}`.
    fn prefix_detection(&self, node: &RNode) -> PResult<PrefixDetection> {
        let mut p = PrefixDetection::default();
        let keys = ["force_file_type", "ignore", "ignore_binary_files"];
        for (k, v) in self.map(node, "build.prefix_detection", &keys)? {
            match k.name.as_str() {
                "force_file_type" => {
                    for (fk, fv) in self.map(v, "prefix_detection.force_file_type", &["text", "binary"])? {
                        let globs = self.globs(fv, &fk.name)?;
                        if fk.name == "text" {
                            p.force_text = globs;
                        } else {
                            p.force_binary = globs;
                        }
                    }
                }
                "ignore" => match v.as_scalar() {
                    Some(s) if s.kind() == minijinja::value::ValueKind::Bool => p.ignore_all = s.is_true(),
                    _ => p.ignore = self.globs(v, "ignore")?,
                },
                _ => p.ignore_binary_files = self.bool(v, "ignore_binary_files")?,
            }
        }
        Ok(p)
    }

    /// `build.variant: {use_keys, ignore_keys, down_prioritize_variant}`.
    pub(super) fn variant_keys(&self, node: &RNode) -> PResult<VariantKeys> {
        let mut keys = VariantKeys::default();
        for (k, v) in self.map(
            node,
            "build.variant",
            &["use_keys", "ignore_keys", "down_prioritize_variant"],
        )? {
            match k.name.as_str() {
                "use_keys" => {
                    for (key, span) in self.string_list(v, "build.variant.use_keys")? {
                        keys.use_keys.push(crate::syntax::variant::normalize_key(&key));
                        keys.use_key_spans.push(span);
                    }
                }
                "ignore_keys" => {
                    keys.ignore_keys = self
                        .string_list(v, "build.variant.ignore_keys")?
                        .into_iter()
                        .map(|(key, _)| crate::syntax::variant::normalize_key(&key))
                        .collect();
                }
                _ => {
                    keys.down_prioritize_variant = Some(self.u64(v, "build.variant.down_prioritize_variant")?);
                }
            }
        }
        Ok(keys)
    }

    pub(super) fn file_filter(&self, node: &RNode) -> PResult<FileFilter> {
        if node.as_map().is_some() {
            let mut f = FileFilter::default();
            for (k, v) in self.map(node, "build.files", &["include", "exclude"])? {
                let globs = self.globs(v, &k.name)?;
                if k.name == "include" {
                    f.include = globs;
                } else {
                    f.exclude = globs;
                }
            }
            Ok(f)
        } else {
            Ok(FileFilter {
                include: self.globs(node, "build.files")?,
                exclude: vec![],
            })
        }
    }

    pub(super) fn script(&self, node: &RNode) -> PResult<Script> {
        self.script_in(node, false)
    }

    /// A script, or (`step`) one of `build.steps`: a mapping with `run`
    /// for the commands and no `file` or `secrets`.
    fn script_in(&self, node: &RNode, step: bool) -> PResult<Script> {
        let mut script = Script {
            body: ScriptBody::Inline(String::new()),
            env: IndexMap::new(),
            secrets: vec![],
            span: node.span,
            lines: vec![],
            cwd: None,
            interpreter: None,
            interpreter_span: None,
        };
        if !step {
            if let Some(items) = node.as_seq() {
                (script.body, script.lines) = self.script_lines(items, "build.script")?;
                return Ok(script);
            }
            if node.as_scalar().is_some() {
                script.body = ScriptBody::Inline(self.string(node, "build.script")?);
                return Ok(script);
            }
        }
        let entries = match step {
            true => self.map(node, "a build step", &["run", "env", "interpreter", "cwd"])?,
            false => self.map(
                node,
                "build.script",
                &["content", "file", "env", "secrets", "interpreter", "cwd"],
            )?,
        };
        let mut body = None;
        for (k, v) in entries {
            match k.name.as_str() {
                "content" | "file" if body.is_some() => {
                    return Err(self
                        .file
                        .error(&k.span, "`content` and `file` are mutually exclusive", "choose one"))
                }
                "content" | "run" => {
                    body = Some(match v.as_seq() {
                        Some(items) => {
                            let (b, lines) = self.script_lines(items, "content")?;
                            script.lines = lines;
                            b
                        }
                        None => ScriptBody::Inline(self.string(v, "content")?),
                    })
                }
                "file" => {
                    body = Some(ScriptBody::File {
                        file: PathBuf::from(self.string(v, "file")?),
                    })
                }
                "env" => {
                    for (ek, ev) in v
                        .as_map()
                        .ok_or_else(|| self.file.error(&v.span, "`env` must be a mapping", "here"))?
                    {
                        if !crate::syntax::variant::is_shell_name(&ek.name) {
                            return Err(self
                                .file
                                .error(
                                    &ek.span,
                                    format!("`{}` is not a valid environment variable name", ek.name),
                                    "here",
                                )
                                .with_help("use letters, digits and `_`, not starting with a digit"));
                        }
                        script.env.insert(ek.name.clone(), self.string(ev, &ek.name)?);
                    }
                }
                "secrets" => {
                    for (name, span) in self.string_list(v, "secrets")? {
                        if !crate::syntax::variant::is_shell_name(&name) {
                            return Err(self
                                .file
                                .error(
                                    &span,
                                    format!("`{name}` is not a valid environment variable name"),
                                    "here",
                                )
                                .with_help("use letters, digits and `_`, not starting with a digit"));
                        }
                        script.secrets.push(name);
                    }
                }
                "interpreter" => {
                    let i = self.string(v, "interpreter")?;
                    if step && i != "bash" {
                        return Err(self.file.error(
                            &v.span,
                            format!("interpreter `{i}` for a step is not supported yet"),
                            "steps run with bash for now",
                        ));
                    }
                    script.interpreter = Some(i);
                    script.interpreter_span = Some(v.span);
                }
                _ => {
                    let cwd = PathBuf::from(self.string(v, "cwd")?);
                    if crate::disk::safe_join(std::path::Path::new("/"), &cwd).is_none() {
                        return Err(self
                            .file
                            .error(&v.span, "`cwd` must stay inside the work directory", "leaves it")
                            .with_help("use a path relative to the work directory, without `..`"));
                    }
                    script.cwd = Some(cwd);
                }
            }
        }
        if step && body.is_none() {
            return Err(self
                .file
                .error(&node.span, "a build step needs `run`", "no `run` here")
                .with_help("write the step's commands under `run:`"));
        }
        script.body = body.unwrap_or(ScriptBody::Inline(String::new()));
        Ok(script)
    }

    /// `build.steps`: a list of `{run, env, cwd, interpreter}` (each step's
    /// `if` was evaluated when rendering).
    pub(super) fn steps(&self, node: &RNode) -> PResult<Script> {
        let items = node.as_seq().ok_or_else(|| {
            self.file
                .error(&node.span, "`build.steps` must be a list", "expected a list of steps")
        })?;
        let mut steps = Vec::new();
        let mut lines = Vec::new();
        for item in items {
            let step = self.script_in(item, true)?;
            let ScriptBody::Inline(run) = step.body else {
                unreachable!("a step's body is `run`");
            };
            steps.push(Step {
                run,
                env: step.env,
                cwd: step.cwd,
            });
            lines.extend(step.lines);
        }
        Ok(Script {
            body: ScriptBody::Steps(steps),
            env: IndexMap::new(),
            secrets: Vec::new(),
            span: node.span,
            lines,
            cwd: None,
            interpreter: None,
            interpreter_span: None,
        })
    }

    /// A script given as a list: the joined body and each item with its span.
    pub(super) fn script_lines(&self, items: &[RNode], what: &str) -> PResult<(ScriptBody, Vec<(String, Span)>)> {
        let lines: Vec<(String, Span)> = items
            .iter()
            .map(|i| Ok((self.string(i, what)?, i.span)))
            .collect::<PResult<_>>()?;
        let body = lines.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>().join("\n");
        Ok((ScriptBody::Inline(body), lines))
    }
}
