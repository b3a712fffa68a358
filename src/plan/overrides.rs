//! Command-line overrides of what the recipe says about an output's build:
//! `--build-number N|+N` and `--build-string-prefix`.

use std::collections::BTreeMap;

/// `--build-number`: an absolute number, or one relative to the highest
/// build of the same name and version already in the output channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildNumber {
    /// Every output gets this number.
    Set(u64),
    /// Every output gets the highest number the channel has for its name
    /// and version plus this; the recipe's number when it has none.
    Bump(u64),
}

impl std::str::FromStr for BuildNumber {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not a build number: use N (e.g. 3) or +N (e.g. +1)");
        match s.trim().strip_prefix('+') {
            Some(n) => n.parse().map(BuildNumber::Bump).map_err(|_| bad()),
            None => s.trim().parse().map(BuildNumber::Set).map_err(|_| bad()),
        }
    }
}

/// Overrides applied to every planned output.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--build-number`.
    pub build_number: Option<BuildNumber>,
    /// The highest build number per `(name, version)` in the output
    /// channel, for [`BuildNumber::Bump`].
    pub highest: BTreeMap<(String, String), u64>,
    /// `--build-string-prefix`: put in front of every build string.
    pub build_string_prefix: Option<String>,
}

impl Overrides {
    /// The build number of output `name` `version` whose recipe says `recipe`.
    pub fn build_number(&self, name: &str, version: &str, recipe: u64) -> u64 {
        match self.build_number {
            None => recipe,
            Some(BuildNumber::Set(n)) => n,
            Some(BuildNumber::Bump(by)) => self
                .highest
                .get(&(name.to_string(), version.to_string()))
                .map_or(recipe, |h| h.saturating_add(by)),
        }
    }

    /// `build_string` with the prefix in front.
    pub fn build_string(&self, build_string: String) -> String {
        match &self.build_string_prefix {
            Some(prefix) => format!("{prefix}{build_string}"),
            None => build_string,
        }
    }
}

/// Check a `--build-string-prefix`: letters, digits, `_`, `.` and `+` only
/// (a build string has no `-` or spaces).
pub fn parse_prefix(s: &str) -> Result<String, String> {
    if s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || "_.+".contains(c)) {
        return Err(format!(
            "`{s}` cannot start a build string: use letters, digits, `_`, `.` or `+`"
        ));
    }
    Ok(s.to_string())
}
