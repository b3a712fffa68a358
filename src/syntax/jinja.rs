//! The `${{ }}` expression language: a minijinja environment configured like
//! rattler-build's (custom delimiters, strict undefined), the platform
//! variables, and the conda-specific functions and filters.
//!
//! The evaluator records which variables each evaluation reads (including
//! the variant keys `compiler()`, `stdlib()` and `cdt()` consult), so the
//! loader can tell which variant keys an output uses.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{from_args, Kwargs, Object, Value};
use minijinja::{Environment, Error, ErrorKind, State, UndefinedBehavior};
use rattler_conda_types::Subdir;

use super::pin::{Pin, PinKind};
pub use super::variant::Variant;
use super::variant::{normalize_key, variant_text};

/// Platforms a recipe is rendered for.
#[derive(Debug, Clone, Copy)]
pub struct Platforms {
    /// The platform the packages are built for (`target_platform`).
    pub target: Subdir,
    /// The platform the build runs on (`build_platform`).
    pub build: Subdir,
    /// The platform of the host environment; selectors follow it.
    pub host: Subdir,
}

/// Names read by evaluations, shared between the evaluator and its functions.
type Accessed = Arc<Mutex<BTreeSet<String>>>;

/// A configured expression evaluator with its variables.
pub struct Jinja {
    env: Environment<'static>,
    vars: Arc<BTreeMap<String, Value>>,
    accessed: Accessed,
    /// Whether build-time variables render to markers (inside scripts).
    deferring: Arc<AtomicBool>,
    /// Everything [`Jinja::take_accessed`] has handed out.
    taken: Mutex<BTreeSet<String>>,
}

impl Jinja {
    /// A new evaluator for `platforms` with the given variant values.
    pub fn new(platforms: Platforms, variant: &Variant) -> Self {
        let mut env = Environment::new();
        env.set_syntax(
            SyntaxConfig::builder()
                .block_delimiters("{%", "%}")
                .variable_delimiters("${{", "}}")
                .comment_delimiters("{#", "#}")
                .build()
                .expect("static syntax config is valid"),
        );
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        // Python string/list/dict methods (`version.split(".")`, `name.upper()`, ...).
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_filter("version_to_buildstring", version_to_buildstring);

        let target = platforms.target;
        let accessed: Accessed = Arc::default();
        // Functions read variant keys through this view, which records each read.
        let lookup = {
            let text: BTreeMap<String, String> = variant
                .iter()
                .map(|(k, v)| (normalize_key(k), variant_text(v)))
                .collect();
            let accessed = accessed.clone();
            Arc::new(move |key: &str| -> Option<String> {
                let v = text.get(key).cloned();
                if v.is_some() {
                    accessed.lock().expect("not poisoned").insert(key.to_string());
                }
                v
            })
        };
        let v = lookup.clone();
        env.add_function("compiler", move |lang: String| -> Result<String, Error> {
            Ok(toolchain_spec(
                &*v,
                target,
                &lang,
                "compiler",
                Some(default_compiler(&lang, target)),
            ))
        });
        let v = lookup.clone();
        env.add_function("stdlib", move |lang: String| -> Result<String, Error> {
            match v(&format!("{lang}_stdlib")) {
                Some(_) => Ok(toolchain_spec(&*v, target, &lang, "stdlib", None)),
                None => Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("stdlib('{lang}') needs `{lang}_stdlib` in the variant config"),
                )),
            }
        });
        let v = lookup.clone();
        env.add_function("cdt", move |name: String| -> String {
            let cdt_name = v("cdt_name").unwrap_or_else(|| crate::platform::cdt_name(target).into());
            let arch = v("cdt_arch").unwrap_or_else(|| match target.arch().map(|a| a.as_str()) {
                Some("x86") => "i686".into(),
                Some(a) => a.to_string(),
                None => "noarch".into(),
            });
            let (pkg, rest) = name.split_once(' ').map_or((name.as_str(), ""), |(a, b)| (a, b));
            let spec = format!("{pkg}-{cdt_name}-{arch}");
            if rest.is_empty() {
                spec
            } else {
                format!("{spec} {rest}")
            }
        });
        env.add_function("pin_subpackage", |name: String, kwargs: Kwargs| {
            pin_call(PinKind::PinSubpackage, name, kwargs)
        });
        env.add_function("pin_compatible", |name: String, kwargs: Kwargs| {
            pin_call(PinKind::PinCompatible, name, kwargs)
        });
        for (name, pred) in [
            ("is_linux", Subdir::is_linux as fn(Subdir) -> bool),
            ("is_osx", Subdir::is_osx),
            ("is_windows", Subdir::is_windows),
            ("is_unix", Subdir::is_unix),
        ] {
            env.add_function(name, move |p: String| -> bool {
                p.parse::<Subdir>().map(pred).unwrap_or(false)
            });
        }
        env.add_global("env", Value::from_object(EnvObject));

        let mut vars = BTreeMap::new();
        insert_platform_vars(&mut vars, platforms);
        for (k, val) in variant {
            vars.insert(normalize_key(k), Value::from_serialize(val));
        }
        Self {
            env,
            vars: Arc::new(vars),
            accessed,
            deferring: Arc::default(),
            taken: Mutex::default(),
        }
    }

    /// Add or replace a variable (used for `context` entries).
    pub fn set_var(&mut self, name: &str, value: Value) {
        Arc::make_mut(&mut self.vars).insert(name.to_string(), value);
    }

    /// The names read since the last call (variables, and variant keys
    /// consulted by functions), clearing the record.
    pub fn take_accessed(&self) -> BTreeSet<String> {
        let names = std::mem::take(&mut *self.accessed.lock().expect("not poisoned"));
        self.taken.lock().expect("not poisoned").extend(names.iter().cloned());
        names
    }

    /// The variables a template refers to, without evaluating it (for
    /// templates rendered later, such as `build.string`).
    pub fn referenced_names(&self, template: &str) -> BTreeSet<String> {
        self.env
            .template_from_str(template)
            .map(|t| t.undeclared_variables(false).into_iter().collect())
            .unwrap_or_default()
    }

    /// Every name read by any evaluation so far.
    pub fn all_accessed(&self) -> BTreeSet<String> {
        let mut all = self.taken.lock().expect("not poisoned").clone();
        all.extend(self.accessed.lock().expect("not poisoned").iter().cloned());
        all
    }

    /// The current variables, as a template context that records reads.
    pub fn context(&self) -> Value {
        Value::from_object(TrackedVars {
            vars: self.vars.clone(),
            accessed: self.accessed.clone(),
            deferring: self.deferring.clone(),
        })
    }

    /// Let build-time variables (`${{ PYTHON }}`, see
    /// [`super::deferred`]) render to markers, or stop doing so; returns
    /// the previous setting.
    pub fn defer(&self, on: bool) -> bool {
        self.deferring.swap(on, Ordering::Relaxed)
    }

    /// Render a template string to text.
    pub fn render_str(&self, template: &str) -> Result<String, JinjaError> {
        let ctx = self.context();
        self.env
            .render_str(template, ctx)
            .map_err(|e| self.explain(e, template))
    }

    /// Evaluate a bare expression (as in `if:` selectors) to a value.
    pub fn eval(&self, expr: &str) -> Result<Value, JinjaError> {
        let compiled = self
            .env
            .compile_expression(expr)
            .map_err(|e| self.explain(e, &format!("${{{{ {expr} }}}}")))?;
        let template = format!("${{{{ {expr} }}}}");
        let value = compiled.eval(self.context()).map_err(|e| self.explain(e, &template))?;
        if value.is_undefined() {
            // Strict mode only fails when an undefined value is printed; a bare
            // expression that names an unknown variable must fail too. (An
            // `x if cond` without `else` is undefined on purpose: empty.)
            let err = self.explain(Error::new(ErrorKind::UndefinedError, "undefined value"), &template);
            if err.undefined {
                return Err(err);
            }
        }
        Ok(value)
    }

    /// Render a YAML scalar: a scalar that is exactly one `${{ expr }}` keeps
    /// the expression's type; anything else renders to a string.
    pub fn render_scalar(&self, text: &str) -> Result<Value, JinjaError> {
        if let Some(expr) = single_expression(text) {
            return self.eval(expr);
        }
        self.render_str(text).map(Value::from)
    }

    fn explain(&self, err: Error, template: &str) -> JinjaError {
        let line = err.line();
        let undefined = if err.kind() == ErrorKind::UndefinedError {
            self.env
                .template_from_str(template)
                .ok()
                .map(|t| t.undeclared_variables(false))
                .and_then(|names| {
                    let mut missing: Vec<_> = names
                        .into_iter()
                        .filter(|n| !self.vars.contains_key(n) && self.env.globals().all(|(g, _)| g != n))
                        .collect();
                    missing.sort();
                    (!missing.is_empty()).then_some(missing)
                })
        } else {
            None
        };
        let message = match &undefined {
            Some(names) if names.iter().all(|n| super::deferred::is_deferred(n)) => format!(
                "`{}` is a build-time variable: it has a value only in `script` and `steps` (of the build or a test)",
                names.join("`, `")
            ),
            Some(names) => format!("undefined variable `{}`", names.join("`, `")),
            None => {
                let detail = err.detail().map(|d| format!(": {d}")).unwrap_or_default();
                format!("{}{detail}", err.kind())
            }
        };
        JinjaError {
            message,
            line,
            undefined: undefined.is_some(),
        }
    }
}

/// A failed template evaluation.
#[derive(Debug)]
pub struct JinjaError {
    /// What went wrong, phrased for the user.
    pub message: String,
    /// Line inside the template, if known.
    pub line: Option<usize>,
    /// Whether the error is a reference to an undefined variable.
    pub undefined: bool,
}

/// If `text` is exactly one `${{ expr }}`, return `expr`.
pub fn single_expression(text: &str) -> Option<&str> {
    let t = text.trim();
    let inner = t.strip_prefix("${{")?.strip_suffix("}}")?;
    (!inner.contains("${{") && !inner.contains("}}")).then_some(inner.trim())
}

fn default_compiler(lang: &str, target: Subdir) -> String {
    let osx = target.is_osx();
    let win = target.is_windows();
    match lang {
        "c" if osx => "clang",
        "c" if win => "vs2022",
        "c" => "gcc",
        "cxx" if osx => "clangxx",
        "cxx" if win => "vs2022",
        "cxx" => "gxx",
        "fortran" if win => "flang",
        "fortran" => "gfortran",
        other => other,
    }
    .to_string()
}

/// `<name>_<target_platform>` plus a version from `<lang>_<kind>_version`.
fn toolchain_spec(
    variant: &dyn Fn(&str) -> Option<String>,
    target: Subdir,
    lang: &str,
    kind: &str,
    default: Option<String>,
) -> String {
    let name = variant(&format!("{lang}_{kind}"))
        .or(default)
        .unwrap_or_else(|| lang.to_string());
    let mut spec = format!("{name}_{}", target.as_str());
    if let Some(version) = variant(&format!("{lang}_{kind}_version")) {
        if version.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
            spec.push_str(&format!(" ={version}"));
        } else {
            spec.push_str(&format!(" {version}"));
        }
    }
    spec
}

fn version_to_buildstring(value: String) -> String {
    let first = value.split_whitespace().next().unwrap_or("");
    first.split('.').take(2).collect::<Vec<_>>().join("")
}

fn insert_platform_vars(vars: &mut BTreeMap<String, Value>, p: Platforms) {
    vars.insert("target_platform".into(), Value::from(p.target.as_str()));
    vars.insert("build_platform".into(), Value::from(p.build.as_str()));
    vars.insert("host_platform".into(), Value::from(p.host.as_str()));
    let host = p.host;
    let families = [
        ("unix", host.is_unix()),
        ("linux", host.is_linux()),
        ("osx", host.is_osx()),
        ("win", host.is_windows()),
        ("emscripten", host.as_str().starts_with("emscripten")),
        ("wasi", host.as_str().starts_with("wasi")),
        ("ios", host.is_ios()),
        ("android", host.is_android()),
    ];
    for (name, on) in families {
        vars.insert(name.into(), Value::from(on));
    }
    // Platform booleans (`linux64`, `osxarm64`, ...) for every known subdir.
    for s in Subdir::all() {
        vars.insert(s.as_str().replace('-', ""), Value::from(s == host));
    }
    let archs = [
        "x86",
        "x86_64",
        "aarch64",
        "arm64",
        "armv6l",
        "armv7l",
        "ppc64le",
        "ppc64",
        "ppc",
        "s390x",
        "riscv32",
        "riscv64",
        "wasm32",
        "wasm64",
        "loongarch64",
    ];
    let host_arch = host.arch().map(|a| a.as_str().to_string()).unwrap_or_default();
    for a in archs {
        vars.insert(a.into(), Value::from(host_arch == a));
    }
    vars.insert("z".into(), Value::from(host_arch == "s390x"));
    vars.insert("SHLIB_EXT".into(), Value::from(crate::platform::shlib_ext(host)));
}

/// `pin_subpackage(...)` / `pin_compatible(...)`: checks the arguments and
/// returns the pin as JSON text, which requirement lists turn into a
/// [`Pin`] (applied once the pinned version is known).
fn pin_call(kind: PinKind, name: String, kwargs: Kwargs) -> Result<String, Error> {
    let invalid = |msg: String| Error::new(ErrorKind::InvalidOperation, msg);
    for (old, new) in [("min_pin", "lower_bound"), ("max_pin", "upper_bound")] {
        if kwargs.has(old) {
            return Err(invalid(format!("`{old}` is not supported; use `{new}` instead")));
        }
    }
    let bound = |key: &str, default: &str| -> Result<Option<String>, Error> {
        if !kwargs.has(key) {
            return Ok(Some(default.to_string()));
        }
        let v: Value = kwargs.get(key)?;
        if v.is_none() || v.is_undefined() {
            Ok(None)
        } else {
            Ok(Some(v.to_string()))
        }
    };
    let exact: bool = kwargs.get::<Option<bool>>("exact")?.unwrap_or(false);
    if exact && ["lower_bound", "upper_bound", "build"].iter().any(|k| kwargs.has(k)) {
        return Err(invalid(
            "`exact=True` cannot be combined with `lower_bound`, `upper_bound` or `build`".into(),
        ));
    }
    let pin = Pin {
        kind,
        name: name.trim().to_lowercase(),
        lower_bound: bound("lower_bound", "x.x.x.x.x.x")?,
        upper_bound: bound("upper_bound", "x")?,
        exact,
        build: kwargs.get::<Option<String>>("build")?,
    };
    kwargs.assert_all_used()?;
    if let Some(b) = pin
        .lower_bound
        .iter()
        .chain(&pin.upper_bound)
        .find(|b| b.trim().is_empty())
    {
        return Err(invalid(format!("pin bound `{b}` is empty; pass None to drop a bound")));
    }
    serde_json::to_string(&pin).map_err(|e| invalid(e.to_string()))
}

/// The template context: the variables, recording every name read.
#[derive(Debug)]
struct TrackedVars {
    vars: Arc<BTreeMap<String, Value>>,
    accessed: Accessed,
    deferring: Arc<AtomicBool>,
}

impl Object for TrackedVars {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let name = key.as_str()?;
        let v = self.vars.get(name).cloned();
        if v.is_some() {
            self.accessed.lock().expect("not poisoned").insert(name.to_string());
            return v;
        }
        (self.deferring.load(Ordering::Relaxed) && super::deferred::is_deferred(name))
            .then(|| Value::from(super::deferred::marker(name)))
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        minijinja::value::Enumerator::Values(self.vars.keys().map(|k| Value::from(k.as_str())).collect())
    }
}

/// The `env` object: `env.get(NAME, default=...)` and `env.exists(NAME)`.
#[derive(Debug)]
struct EnvObject;

impl Object for EnvObject {
    fn call_method(self: &Arc<Self>, _state: &State<'_, '_>, method: &str, args: &[Value]) -> Result<Value, Error> {
        match method {
            "get" => {
                let (name, kwargs): (String, Kwargs) = from_args(args)?;
                let default: Option<Value> = kwargs.get("default")?;
                kwargs.assert_all_used()?;
                match (std::env::var(&name), default) {
                    (Ok(v), _) => Ok(Value::from(v)),
                    (Err(_), Some(d)) => Ok(d),
                    (Err(_), None) => Err(Error::new(
                        ErrorKind::InvalidOperation,
                        format!("environment variable `{name}` is not set (pass `default=` to env.get)"),
                    )),
                }
            }
            "exists" => {
                let (name,): (String,) = from_args(args)?;
                Ok(Value::from(std::env::var_os(&name).is_some()))
            }
            _ => Err(Error::new(
                ErrorKind::UnknownMethod,
                format!("env has no method `{method}`"),
            )),
        }
    }
}
