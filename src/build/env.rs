//! The environment a build script sees.
//!
//! Isolation is strict: nothing from the caller's environment reaches the
//! script except a short allow-list (proxies, certificates) and the
//! secrets the recipe names explicitly (`SSH_AUTH_SOCK` among them: it is
//! forwarded only when a script lists it in `secrets`).

use std::collections::BTreeMap;

use rattler_conda_types::Subdir;

use super::dirs::BuildDirs;

/// Caller variables forwarded to every build.
const FORWARDED: &[&str] = &[
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "DISPLAY",
    "http_proxy",
    "https_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// Variant keys that are not exported (they name interpreters, not settings).
const NOT_EXPORTED: &[&str] = &["python", "numpy", "perl", "lua", "r", "ruby", "nodejs"];

/// What identifies the thing being built, for `PKG_*` variables.
#[derive(Debug, Clone)]
pub struct BuildIdentity {
    /// `PKG_NAME`.
    pub name: String,
    /// `PKG_VERSION`.
    pub version: String,
    /// `PKG_BUILDNUM`; `None` for a staging build.
    pub build_number: Option<u64>,
    /// `PKG_BUILD_STRING`; `None` for a staging build.
    pub build_string: Option<String>,
    /// `PKG_HASH` (`<prefix>h<hash>`).
    pub hash: Option<String>,
    /// A `noarch: python` package (its build writes no byte-code).
    pub noarch_python: bool,
}

/// Inputs to compute a build environment.
pub struct EnvInputs<'a> {
    /// Directories of the build.
    pub dirs: &'a BuildDirs,
    /// Recipe directory (`RECIPE_DIR`).
    pub recipe_dir: &'a std::path::Path,
    /// Package identity.
    pub identity: &'a BuildIdentity,
    /// Target platform.
    pub target: Subdir,
    /// Build platform.
    pub build: Subdir,
    /// Variant values used by this build.
    pub variant: &'a BTreeMap<String, String>,
    /// `SOURCE_DATE_EPOCH`.
    pub timestamp: i64,
    /// `script.env`.
    pub script_env: &'a indexmap::IndexMap<String, String>,
}

/// The environment (name → value) for a build script, without secrets.
pub fn build_env(i: &EnvInputs) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for k in FORWARDED {
        if let Ok(v) = std::env::var(k) {
            env.insert(k.to_string(), v);
        }
    }
    let d = i.dirs;
    let s = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let mut set = |k: &str, v: String| {
        env.insert(k.to_string(), v);
    };
    set("PREFIX", s(&d.host_prefix));
    set("CONDA_DEFAULT_ENV", s(&d.host_prefix));
    set("BUILD_PREFIX", s(&d.build_prefix));
    set("SRC_DIR", s(&d.work_dir));
    set("RECIPE_DIR", s(i.recipe_dir));
    set("BUILD_DIR", s(&d.build_dir));
    set("PIP_CACHE_DIR", s(&d.build_dir.join("pip_cache")));
    set("PKG_NAME", i.identity.name.clone());
    set("PKG_VERSION", i.identity.version.clone());
    if let Some(n) = i.identity.build_number {
        set("PKG_BUILDNUM", n.to_string());
    }
    if let Some(b) = &i.identity.build_string {
        set("PKG_BUILD_STRING", b.clone());
    }
    if let Some(h) = &i.identity.hash {
        set("PKG_HASH", h.clone());
    }
    set("target_platform", i.target.as_str().to_string());
    set("host_platform", i.target.as_str().to_string());
    set("build_platform", i.build.as_str().to_string());
    set("SUBDIR", i.target.as_str().to_string());
    set("ARCH", crate::platform::arch_suffix(i.target));
    set(
        "CONDA_BUILD_CROSS_COMPILATION",
        if i.target != i.build { "1" } else { "0" }.to_string(),
    );
    set("CONDA_BUILD_STATE", "BUILD".into());
    set("CONDA_BUILD", "1".into());
    set("SHLIB_EXT", crate::platform::shlib_ext(i.target).into());
    set(
        "CPU_COUNT",
        std::env::var("CPU_COUNT").unwrap_or_else(|_| num_cpus::get().to_string()),
    );
    set("SOURCE_DATE_EPOCH", i.timestamp.to_string());
    set("PYTHONNOUSERSITE", "1".into());
    if i.identity.noarch_python {
        set("PYTHONDONTWRITEBYTECODE", "1".into());
    }
    set("PIP_NO_BUILD_ISOLATION", "False".into());
    set("PIP_NO_DEPENDENCIES", "True".into());
    set("PIP_IGNORE_INSTALLED", "True".into());
    set("PIP_NO_INDEX", "True".into());
    set("LANG", "C.UTF-8".into());
    set("LC_ALL", "C.UTF-8".into());
    set("HOME", s(&d.work_dir));
    set("USER", "kiln".into());
    set("SHELL", "/bin/bash".into());
    set("EDITOR", "/bin/false".into());
    set("TERM", "xterm-256color".into());
    if i.target.is_unix() {
        set("PKG_CONFIG_PATH", s(&d.host_prefix.join("lib/pkgconfig")));
        set("CMAKE_GENERATOR", "Unix Makefiles".into());
    }
    if i.target.is_linux() {
        set("LD_RUN_PATH", s(&d.host_prefix.join("lib")));
        let arch = i.target.arch().map(|a| a.as_str().to_string()).unwrap_or_default();
        set(
            "BUILD",
            format!("{arch}-conda_{}-linux-gnu", crate::platform::cdt_name(i.target)),
        );
    }
    // PYTHON, PY_VER, SP_DIR, NPY_VER, PERL, ... (from the prefixes'
    // records, else the variant).
    env.extend(crate::environment::interpreters::variables(
        &d.host_prefix,
        &d.build_prefix,
        i.target,
        i.variant,
    ));
    let system_path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
    // Activation (see `environment::activation`) puts the host, then the
    // build prefix in front of this.
    env.insert("PATH".into(), system_path);
    for (k, v) in i.variant {
        let key = crate::variants::normalize_key(k);
        if !NOT_EXPORTED.contains(&key.as_str()) {
            env.insert(key, v.clone());
        }
    }
    for (k, v) in i.script_env {
        env.insert(k.clone(), v.clone());
    }
    env
}
