//! Build-time variables in expressions: `${{ PYTHON }}`, `${{ PREFIX }}`,
//! `${{ SP_DIR }}` and the others whose values exist only once a script's
//! environment does.
//!
//! Inside `script` and `steps` (of builds and of package tests) such a
//! name renders to a marker, the canonical text `${{ NAME }}`, which the
//! executor replaces with the value of the environment the script runs in
//! ([`substitute`]). So these names are not variant keys, never enter a
//! hash or staging key (the marker is the same in every run), and a test
//! script stored in a package gets the test environment's values.

/// The names rendered late, with where their value comes from (for errors).
pub const DEFERRED: &[(&str, &str)] = &[
    ("PREFIX", "the host prefix"),
    ("BUILD_PREFIX", "the build prefix"),
    ("SRC_DIR", "the work directory"),
    ("RECIPE_DIR", "the recipe's directory"),
    ("BUILD_DIR", "the build directory"),
    ("PYTHON", "the python interpreter"),
    ("PY_VER", "a python in the host environment"),
    ("PY3K", "a python in the host environment"),
    ("SP_DIR", "a python in the host environment"),
    ("STDLIB_DIR", "a python in the host environment"),
    ("NPY_VER", "numpy in the host environment"),
    ("PERL", "the perl interpreter"),
    ("R", "r-base in the host environment"),
    ("LUA", "lua in the host environment"),
];

/// Whether `name` is a build-time variable.
pub fn is_deferred(name: &str) -> bool {
    DEFERRED.iter().any(|(n, _)| *n == name)
}

/// The text a deferred `name` renders to.
pub fn marker(name: &str) -> String {
    format!("${{{{ {name} }}}}")
}

/// Replace every marker in `text` with the value `value` gives its name.
/// A name without a value is returned as the error, with what would
/// provide it.
pub fn substitute(text: &str, value: impl Fn(&str) -> Option<String>) -> Result<String, Missing> {
    if !text.contains("${{ ") {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${{ ") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 4..];
        let name = after.split_once(" }}").map(|(n, _)| n).filter(|n| is_deferred(n));
        match name {
            Some(name) => {
                let v = value(name).ok_or_else(|| Missing {
                    name: name.to_string(),
                    needs: DEFERRED.iter().find(|(n, _)| *n == name).map_or("", |(_, w)| w),
                })?;
                out.push_str(&v);
                rest = &after[name.len() + 3..];
            }
            None => {
                out.push_str("${{ ");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A build-time variable that has no value where the script runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// The variable.
    pub name: String,
    /// What gives it a value.
    pub needs: &'static str,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`${{{{ {} }}}}` has no value here: it needs {}",
            self.name, self.needs
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_replaced_and_other_text_is_kept() {
        let value = |n: &str| (n == "PYTHON").then(|| "/p/bin/python".to_string());
        let text = format!("{} -m pip install . # ${{{{ x }}}} ${{{{ ", marker("PYTHON"));
        assert_eq!(
            substitute(&text, value).unwrap(),
            "/p/bin/python -m pip install . # ${{ x }} ${{ "
        );
        let err = substitute(&marker("SP_DIR"), value).unwrap_err();
        assert_eq!(err.name, "SP_DIR");
        assert!(err.to_string().contains("a python in the host environment"), "{err}");
    }
}
