//! Facts about a conda platform (a subdir such as `linux-64`) that several
//! layers need and must agree on: the shared-library extension, the CDT
//! (core dependency tree) generation, and the `ARCH` value of build scripts.

use rattler_conda_types::Subdir;

/// `.so`, `.dylib` or `.dll`.
pub fn shlib_ext(p: Subdir) -> &'static str {
    if p.is_windows() {
        ".dll"
    } else if p.is_osx() {
        ".dylib"
    } else {
        ".so"
    }
}

/// The CDT generation for a Linux platform: `cos7` where CentOS 6 never
/// existed (aarch64, ppc64le, ppc64, s390x), `cos6` otherwise.
pub fn cdt_name(p: Subdir) -> &'static str {
    match p.arch().map(|a| a.as_str()) {
        Some("aarch64" | "ppc64le" | "ppc64" | "s390x") => "cos7",
        _ => "cos6",
    }
}

/// `ARCH` as conda-build sets it: `64`, `32`, or the architecture name.
pub fn arch_suffix(p: Subdir) -> String {
    match p.arch().map(|a| a.as_str()) {
        Some("x86_64") => "64".into(),
        Some("x86") => "32".into(),
        Some(a) => a.to_string(),
        None => "noarch".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_facts() {
        assert_eq!(shlib_ext(Subdir::Linux64), ".so");
        assert_eq!(shlib_ext(Subdir::OsxArm64), ".dylib");
        assert_eq!(shlib_ext(Subdir::Win64), ".dll");
        assert_eq!(cdt_name(Subdir::Linux64), "cos6");
        assert_eq!(cdt_name(Subdir::LinuxPpc64le), "cos7");
        assert_eq!(cdt_name(Subdir::LinuxPpc64), "cos7");
        assert_eq!(arch_suffix(Subdir::Linux64), "64");
        assert_eq!(arch_suffix(Subdir::LinuxAarch64), "aarch64");
    }
}
