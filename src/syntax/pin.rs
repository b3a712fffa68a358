//! `pin_subpackage(...)` and `pin_compatible(...)`: the call as the
//! expression language records it, and the spec it gives once the pinned
//! package's version and build string are known.

use serde::Serialize;

/// Which pin function produced a [`Pin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PinKind {
    /// `pin_subpackage`: another output of the same recipe.
    PinSubpackage,
    /// `pin_compatible`: the version resolved in the host (or build) environment.
    PinCompatible,
}

/// A `pin_subpackage(...)` or `pin_compatible(...)` call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Pin {
    /// Which function.
    pub kind: PinKind,
    /// The pinned package.
    pub name: String,
    /// Lower bound: an `x.x` expression or a literal version; `None` for no bound.
    pub lower_bound: Option<String>,
    /// Upper bound: an `x.x` expression or a literal version; `None` for no bound.
    pub upper_bound: Option<String>,
    /// `name ==version build`.
    pub exact: bool,
    /// A build string pattern to add.
    pub build: Option<String>,
}

impl Pin {
    /// The spec this pin gives for a package at `version` with build string `build`.
    pub fn apply(&self, version: &str, build: &str) -> Result<String, String> {
        if self.exact {
            return Ok(format!("{} =={version} {build}", self.name));
        }
        let mut bounds = Vec::new();
        if let Some(lower) = &self.lower_bound {
            bounds.push(format!(">={}", pin_bound(lower, version, false)?));
        }
        if let Some(upper) = &self.upper_bound {
            bounds.push(format!("<{}", pin_bound(upper, version, true)?));
        }
        let mut spec = self.name.clone();
        if !bounds.is_empty() {
            spec.push(' ');
            spec.push_str(&bounds.join(","));
        }
        if let Some(b) = &self.build {
            if bounds.is_empty() {
                spec.push_str(" *");
            }
            spec.push(' ');
            spec.push_str(b);
        }
        Ok(spec)
    }
}

/// One bound of a pin: `x.x`-style expressions take (and for an upper bound,
/// bump) that many segments of `version`; anything else is a literal version.
fn pin_bound(expr: &str, version: &str, upper: bool) -> Result<String, String> {
    let expr = expr.trim();
    if expr.is_empty() {
        return Err("a pin bound may not be empty (use None to drop it)".into());
    }
    if !expr.chars().all(|c| c == 'x' || c == 'X' || c == '.') {
        return Ok(expr.to_string());
    }
    let n = expr.split('.').filter(|p| !p.is_empty()).count();
    if n == 0 || expr.split('.').any(|p| !p.eq_ignore_ascii_case("x")) {
        return Err(format!("invalid pin bound `{expr}`: use `x`, `x.x`, ... or a version"));
    }
    // Epoch and local version parts do not take part in pinning.
    let base = version.split('+').next().unwrap_or(version);
    let base = base.split_once('!').map_or(base, |(_, v)| v);
    let mut segments: Vec<String> = base.split(['.', '_']).map(str::to_string).collect();
    if !upper {
        segments.truncate(n);
        return Ok(segments.join("."));
    }
    while segments.len() < n {
        segments.push("0".into());
    }
    segments.truncate(n);
    let last = segments.last_mut().expect("n >= 1");
    let digits: String = last.chars().take_while(char::is_ascii_digit).collect();
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("cannot bump segment `{last}` of version `{version}` for upper bound `{expr}`"))?;
    *last = (number + 1).to_string();
    Ok(format!("{}.0a0", segments.join(".")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(lower: Option<&str>, upper: Option<&str>) -> Pin {
        Pin {
            kind: PinKind::PinSubpackage,
            name: "a".into(),
            lower_bound: lower.map(str::to_string),
            upper_bound: upper.map(str::to_string),
            exact: false,
            build: None,
        }
    }

    #[test]
    fn pins_follow_conda_build_bounds() {
        let default = pin(Some("x.x.x.x.x.x"), Some("x"));
        assert_eq!(default.apply("1.2.3", "h0_0").unwrap(), "a >=1.2.3,<2.0a0");
        assert_eq!(
            pin(Some("x.x.x.x.x.x"), Some("x.x")).apply("1.2.3", "h0_0").unwrap(),
            "a >=1.2.3,<1.3.0a0"
        );
        assert_eq!(pin(Some("x.x"), None).apply("1.2.3", "h0_0").unwrap(), "a >=1.2");
        assert_eq!(pin(None, Some("x.x.x")).apply("1.2", "h0_0").unwrap(), "a <1.2.1.0a0");
        assert_eq!(
            pin(Some("1.0"), Some("3")).apply("1.2.3", "h0_0").unwrap(),
            "a >=1.0,<3"
        );
        assert_eq!(pin(None, None).apply("1.2.3", "h0_0").unwrap(), "a");
        let exact = Pin {
            exact: true,
            ..default.clone()
        };
        assert_eq!(exact.apply("1.2.3", "h1234567_0").unwrap(), "a ==1.2.3 h1234567_0");
        let with_build = Pin {
            build: Some("py*".into()),
            ..default
        };
        assert_eq!(with_build.apply("1.2.3", "x").unwrap(), "a >=1.2.3,<2.0a0 py*");
        assert!(pin(Some("x.y"), None).apply("1.2.3", "x").is_ok(), "a literal version");
        assert!(pin(None, Some("x.x")).apply("1.rc", "x").is_err());
    }
}
