//! Run exports: what installed build and host dependencies add to a
//! package's `depends` and `constrains`, with conda-build's rules and the
//! recipe's `ignore_run_exports` filters.
//!
//! Only directly requested packages export. From the build environment,
//! `strong` exports go to the host environment and to `depends`
//! (`strong_constrains` to `constrains`); from the host environment, `weak`
//! and `strong` go to `depends` and `weak_constrains`/`strong_constrains` to
//! `constrains`. A noarch package takes only the host's `noarch` exports.

use rattler_conda_types::package::RunExportsJson;
use rattler_conda_types::RepoDataRecord;
use serde::{Deserialize, Serialize};

use crate::recipe::model::{spec_name, IgnoreRunExports};

/// Which environment an export comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Env {
    /// `requirements.build`.
    Build,
    /// `requirements.host`.
    Host,
}

/// One exported spec and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exported {
    /// The spec added to `depends` or `constrains`.
    pub spec: String,
    /// The environment of the exporting package.
    pub from: Env,
    /// The exporting package.
    pub package: String,
}

/// The run exports that apply to one package (or that a staging output passes on).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// Added to `depends`.
    pub depends: Vec<Exported>,
    /// Added to `constrains`.
    pub constrains: Vec<Exported>,
}

impl Applied {
    /// Keep only what `ignore` does not filter out.
    pub fn filtered(&self, ignore: &IgnoreRunExports) -> Applied {
        let keep = |e: &&Exported| keeps(ignore, &e.package, &e.spec);
        Applied {
            depends: self.depends.iter().filter(keep).cloned().collect(),
            constrains: self.constrains.iter().filter(keep).cloned().collect(),
        }
    }

    /// Append `other`, skipping exact duplicates.
    pub fn extend(&mut self, other: &Applied) {
        for e in &other.depends {
            if !self.depends.contains(e) {
                self.depends.push(e.clone());
            }
        }
        for e in &other.constrains {
            if !self.constrains.contains(e) {
                self.constrains.push(e.clone());
            }
        }
    }
}

fn keeps(ignore: &IgnoreRunExports, package: &str, spec: &str) -> bool {
    let by_package = ignore.from_package.iter().any(|p| p.eq_ignore_ascii_case(package));
    let by_name = spec_name(spec).is_some_and(|n| ignore.by_name.iter().any(|b| b.eq_ignore_ascii_case(&n)));
    !by_package && !by_name
}

/// The records of an environment that export: those named by the request.
fn direct<'a>(records: &'a [RepoDataRecord], requested: &'a [String]) -> impl Iterator<Item = &'a RepoDataRecord> {
    records
        .iter()
        .filter(|r| requested.iter().any(|n| n == r.package_record.name.as_normalized()))
}

fn exports_of(r: &RepoDataRecord) -> RunExportsJson {
    r.package_record.run_exports.clone().unwrap_or_default()
}

/// Strong exports of the build environment's direct dependencies, as specs
/// to add to the host environment (after `ignore`).
pub fn host_additions(build: &[RepoDataRecord], requested: &[String], ignore: &IgnoreRunExports) -> Vec<String> {
    let mut out = Vec::new();
    for r in direct(build, requested) {
        let package = r.package_record.name.as_normalized();
        for spec in exports_of(r).strong {
            if keeps(ignore, package, &spec) && !out.contains(&spec) {
                out.push(spec);
            }
        }
    }
    out
}

/// What the direct dependencies of the build and host environments export to
/// the package's run requirements, after `ignore`.
pub fn collect(
    build: (&[RepoDataRecord], &[String]),
    host: (&[RepoDataRecord], &[String]),
    noarch: bool,
    ignore: &IgnoreRunExports,
) -> Applied {
    let mut applied = Applied::default();
    let add = |list: &mut Vec<Exported>, from: Env, package: &str, specs: Vec<String>| {
        for spec in specs {
            let e = Exported {
                spec,
                from,
                package: package.to_string(),
            };
            if keeps(ignore, package, &e.spec) && !list.contains(&e) {
                list.push(e);
            }
        }
    };
    if !noarch {
        for r in direct(build.0, build.1) {
            let x = exports_of(r);
            let name = r.package_record.name.as_normalized();
            add(&mut applied.depends, Env::Build, name, x.strong);
            add(&mut applied.constrains, Env::Build, name, x.strong_constrains);
        }
    }
    for r in direct(host.0, host.1) {
        let x = exports_of(r);
        let name = r.package_record.name.as_normalized();
        if noarch {
            add(&mut applied.depends, Env::Host, name, x.noarch);
            continue;
        }
        add(&mut applied.depends, Env::Host, name, x.weak);
        add(&mut applied.depends, Env::Host, name, x.strong);
        add(&mut applied.constrains, Env::Host, name, x.weak_constrains);
        add(&mut applied.constrains, Env::Host, name, x.strong_constrains);
    }
    applied
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exported(spec: &str, package: &str) -> Exported {
        Exported {
            spec: spec.into(),
            from: Env::Host,
            package: package.into(),
        }
    }

    #[test]
    fn filters_by_package_and_by_name() {
        let a = Applied {
            depends: vec![
                exported("libzlib >=1.3,<2.0a0", "zlib"),
                exported("python_abi 3.12.*", "python"),
            ],
            constrains: vec![exported("zlib-ng <3", "zlib")],
        };
        let by_package = a.filtered(&IgnoreRunExports {
            from_package: vec!["zlib".into()],
            by_name: vec![],
        });
        assert_eq!(by_package.depends, vec![exported("python_abi 3.12.*", "python")]);
        assert!(by_package.constrains.is_empty());
        let by_name = a.filtered(&IgnoreRunExports {
            from_package: vec![],
            by_name: vec!["python_abi".into()],
        });
        assert_eq!(by_name.depends, vec![exported("libzlib >=1.3,<2.0a0", "zlib")]);
        assert_eq!(by_name.constrains.len(), 1);
    }
}
