//! Platforms (`linux/amd64`, `linux/arm/v7`) as containerd's `platforms` package parses and
//! normalizes them.

use std::fmt;

/// An OS, architecture and optional variant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

/// A platform specifier containerd would reject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    /// An OS or architecture containerd does not know.
    #[error("{specifier:?}: unknown operating system or architecture: invalid argument")]
    Unknown {
        /// The specifier given.
        specifier: String,
    },
    /// Not of the form `os[/arch[/variant]]`.
    #[error("{specifier:?}: cannot parse platform specifier: invalid argument")]
    Malformed {
        /// The specifier given.
        specifier: String,
    },
}

const OSES: [&str; 18] = [
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "js",
    "linux",
    "nacl",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "wasip1",
    "windows",
    "zos",
];

const ARCHES: [&str; 25] = [
    "386",
    "amd64",
    "amd64p32",
    "arm",
    "armbe",
    "arm64",
    "arm64be",
    "loong64",
    "mips",
    "mipsle",
    "mips64",
    "mips64le",
    "mips64p32",
    "mips64p32le",
    "ppc",
    "ppc64",
    "ppc64le",
    "riscv",
    "riscv64",
    "s390",
    "s390x",
    "sparc",
    "sparc64",
    "wasm",
    "mips64r6",
];

impl Platform {
    /// A platform from its parts, normalized (`x86_64` becomes `amd64`, `aarch64` becomes `arm64`).
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        let (architecture, variant) =
            normalize_arch(&architecture.to_lowercase(), variant.unwrap_or_default());
        Platform {
            os: normalize_os(os),
            architecture,
            variant: (!variant.is_empty()).then_some(variant),
        }
    }

    /// Parses `os`, `arch`, `os/arch` or `os/arch/variant`. A lone OS takes `default`'s
    /// architecture and a lone architecture takes `default`'s OS (containerd uses the running
    /// host; the frontend is pure, so the caller says which platform that is).
    pub fn parse(specifier: &str, default: &Platform) -> Result<Platform, PlatformError> {
        let unknown = || PlatformError::Unknown {
            specifier: specifier.to_owned(),
        };
        let parts: Vec<&str> = specifier.split('/').collect();
        if parts.iter().any(|p| {
            p.is_empty()
                || !p
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        }) {
            return Err(PlatformError::Malformed {
                specifier: specifier.to_owned(),
            });
        }
        match parts.as_slice() {
            [one] => {
                let os = normalize_os(one);
                if OSES.contains(&os.as_str()) {
                    return Ok(Platform {
                        os,
                        ..default.clone()
                    });
                }
                let p = Platform::new(&default.os, one, None);
                if ARCHES.contains(&p.architecture.as_str()) {
                    Ok(p)
                } else {
                    Err(unknown())
                }
            }
            [os, arch] | [os, arch, _] => {
                let p = Platform::new(os, arch, parts.get(2).copied());
                if OSES.contains(&p.os.as_str()) && ARCHES.contains(&p.architecture.as_str()) {
                    Ok(p)
                } else {
                    Err(unknown())
                }
            }
            _ => Err(PlatformError::Malformed {
                specifier: specifier.to_owned(),
            }),
        }
    }

    /// The OS (`linux`).
    pub fn os(&self) -> &str {
        &self.os
    }

    /// The architecture (`amd64`).
    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    /// The variant (`v7`), if any.
    pub fn variant(&self) -> Option<&str> {
        self.variant.as_deref()
    }

    /// Whether an image built for `candidate` runs on this platform.
    ///
    /// ```
    /// use kiln_frontend::graph::Platform;
    /// let v7 = Platform::new("linux", "arm", Some("v7"));
    /// assert!(v7.matches(&Platform::new("linux", "arm", Some("v6"))));
    /// assert!(!Platform::new("linux", "arm", Some("v6")).matches(&v7));
    /// ```
    pub fn matches(&self, candidate: &Platform) -> bool {
        self.rank(candidate).is_some()
    }

    /// How well `candidate` fits, lower is better; `None` if it does not run here.
    ///
    /// An exact match is best. Older 32-bit ARM variants run on newer ones (`arm/v6` on an
    /// `arm/v7` machine), ranked by distance, as containerd's default matcher orders them.
    pub fn rank(&self, candidate: &Platform) -> Option<u32> {
        if self.os != candidate.os || self.architecture != candidate.architecture {
            return None;
        }
        if self.variant == candidate.variant {
            return Some(0);
        }
        if self.architecture != "arm" {
            return None;
        }
        let level = |variant: &Option<String>| {
            variant
                .as_deref()
                .and_then(|v| v.strip_prefix('v'))
                .and_then(|n| n.parse::<u32>().ok())
        };
        match (level(&self.variant), level(&candidate.variant)) {
            (Some(wanted), Some(offered)) if offered <= wanted => Some(wanted - offered),
            _ => None,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

fn normalize_os(os: &str) -> String {
    let os = os.to_lowercase();
    if os == "macos" { "darwin".to_owned() } else { os }
}

/// containerd's `normalizeArch`.
fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let variant = variant.to_lowercase();
    let (arch, variant) = match arch {
        "i386" => ("386", String::new()),
        "x86_64" | "x86-64" | "amd64" => ("amd64", if variant == "v1" { String::new() } else { variant }),
        "aarch64" | "arm64" => (
            "arm64",
            if matches!(variant.as_str(), "8" | "v8" | "v8.0") {
                String::new()
            } else {
                variant
            },
        ),
        "armhf" => ("arm", "v7".to_owned()),
        "armel" => ("arm", "v6".to_owned()),
        "arm" => (
            "arm",
            match variant.as_str() {
                "" | "7" => "v7".to_owned(),
                "5" | "6" | "8" => format!("v{variant}"),
                _ => variant,
            },
        ),
        other => (other, variant),
    };
    (arch.to_owned(), variant)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Platform {
        Platform::new("linux", "amd64", None)
    }

    fn parse(s: &str) -> Result<String, String> {
        Platform::parse(s, &host())
            .map(|p| p.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn parses_and_normalizes() {
        assert_eq!(parse("linux/amd64").unwrap(), "linux/amd64");
        assert_eq!(parse("linux/x86_64").unwrap(), "linux/amd64");
        assert_eq!(parse("linux/aarch64").unwrap(), "linux/arm64");
        assert_eq!(parse("linux/arm64/v8").unwrap(), "linux/arm64");
        assert_eq!(parse("linux/arm").unwrap(), "linux/arm/v7");
        assert_eq!(parse("linux/arm/v6").unwrap(), "linux/arm/v6");
        assert_eq!(parse("Linux/AMD64").unwrap(), "linux/amd64");
        assert_eq!(parse("arm64").unwrap(), "linux/arm64");
        assert_eq!(parse("windows").unwrap(), "windows/amd64");
    }

    #[test]
    fn rejects_like_containerd() {
        assert_eq!(
            parse("foo").unwrap_err(),
            r#""foo": unknown operating system or architecture: invalid argument"#
        );
        assert_eq!(
            parse("linux/foo").unwrap_err(),
            r#""linux/foo": unknown operating system or architecture: invalid argument"#
        );
        assert_eq!(
            parse("a/b/c/d").unwrap_err(),
            r#""a/b/c/d": cannot parse platform specifier: invalid argument"#
        );
        assert_eq!(
            parse("linux/").unwrap_err(),
            r#""linux/": cannot parse platform specifier: invalid argument"#
        );
    }
}
