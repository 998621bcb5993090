//! Platforms: which OS and CPU an image manifest is built for, and which one a pull wants.

use std::fmt;
use std::str::FromStr;

/// An OS, architecture and optional CPU variant, as `--platform` spells it: `linux/amd64`,
/// `linux/arm64/v8`, `linux/arm/v7`.
///
/// Values are normalised the way containerd does, so that equal platforms compare equal:
/// `x86_64` is `amd64`, `aarch64` is `arm64`, `arm64/v8` is plain `arm64` (v8 is its baseline),
/// `armhf` is `arm/v7`, `arm` alone is `arm/v7`. One part is an OS (`linux`, host CPU) when it
/// names one, else an architecture (`arm64`, host OS).
///
/// ```
/// use kiln_builder::registry::Platform;
///
/// let p: Platform = "linux/aarch64/v8".parse()?;
/// assert_eq!(p.to_string(), "linux/arm64");
/// assert_eq!("linux/armhf".parse::<Platform>()?.to_string(), "linux/arm/v7");
/// assert!(p.matches(&"linux/arm64/v8".parse()?));
/// assert!("linux//amd64".parse::<Platform>().is_err());
/// # Ok::<(), kiln_builder::registry::PlatformError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

/// Why a string is not a platform.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    /// Not `os[/arch[/variant]]` with each part made of letters, digits, `_`, `.` or `-`.
    #[error("invalid platform {input:?}: expected os/arch[/variant], such as linux/amd64")]
    InvalidFormat {
        /// The rejected input.
        input: String,
    },
}

/// Operating systems Go (and so OCI) knows, used to tell `linux` apart from `amd64`.
const KNOWN_OS: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "illumos",
    "ios",
    "js",
    "linux",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "wasip1",
    "windows",
];

impl Platform {
    /// A normalised platform from its parts.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        let os = match os.to_ascii_lowercase().as_str() {
            "macos" => "darwin".to_owned(),
            other => other.to_owned(),
        };
        let (architecture, variant) = normalize_arch(
            &architecture.to_ascii_lowercase(),
            &variant.unwrap_or_default().to_ascii_lowercase(),
        );
        Platform {
            os,
            architecture,
            variant: Some(variant).filter(|v| !v.is_empty()),
        }
    }

    /// Parses `os[/arch[/variant]]`, or a lone architecture.
    pub fn parse(input: &str) -> Result<Platform, PlatformError> {
        let invalid = || PlatformError::InvalidFormat {
            input: input.to_owned(),
        };
        let parts: Vec<&str> = input.split('/').collect();
        let valid_part = |part: &&str| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        };
        if parts.len() > 3 || !parts.iter().all(valid_part) {
            return Err(invalid());
        }
        let host = Platform::host();
        Ok(match parts.as_slice() {
            [one] if KNOWN_OS.contains(&one.to_ascii_lowercase().as_str()) => {
                Platform::new(one, &host.architecture, host.variant.as_deref())
            }
            [arch] => Platform::new(&host.os, arch, None),
            [os, arch] => Platform::new(os, arch, None),
            [os, arch, variant] => Platform::new(os, arch, Some(variant)),
            _ => return Err(invalid()),
        })
    }

    /// The platform this process runs on, in OCI words (GOOS/GOARCH).
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "loongarch64" => "loong64",
            other => other,
        };
        Platform::new(std::env::consts::OS, arch, None)
    }

    /// The operating system: `linux`.
    pub fn os(&self) -> &str {
        &self.os
    }

    /// The CPU architecture: `amd64`, `arm64`.
    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    /// The CPU variant, if any: `v7` for `arm/v7` (none for `arm64`, whose baseline is v8).
    pub fn variant(&self) -> Option<&str> {
        self.variant.as_deref()
    }

    /// Whether a manifest built for `candidate` runs on this platform.
    pub fn matches(&self, candidate: &Platform) -> bool {
        self.rank(candidate).is_some()
    }

    /// How well `candidate` fits, lower is better; `None` if it does not run here.
    ///
    /// An exact match is best. Older 32-bit ARM variants run on newer ones (`arm/v6` on an
    /// `arm/v7` machine), ranked by distance, as containerd's default matcher orders them.
    pub(crate) fn rank(&self, candidate: &Platform) -> Option<u32> {
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

/// containerd's `normalizeArch`.
fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let (arch, variant) = match (arch, variant) {
        ("i386", _) => ("386", ""),
        ("x86_64" | "x86-64" | "amd64", "v1") => ("amd64", ""),
        ("x86_64" | "x86-64", v) => ("amd64", v),
        ("aarch64" | "arm64", "8" | "v8" | "v8.0") => ("arm64", ""),
        ("aarch64" | "arm64", v) => ("arm64", v),
        ("armhf", _) | ("arm", "" | "7") => ("arm", "v7"),
        ("armel", _) | ("arm", "6") => ("arm", "v6"),
        ("arm", "5") => ("arm", "v5"),
        ("arm", "8") => ("arm", "v8"),
        (arch, variant) => (arch, variant),
    };
    (arch.to_owned(), variant.to_owned())
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Platform({self})")
    }
}

impl FromStr for Platform {
    type Err = PlatformError;

    fn from_str(s: &str) -> Result<Platform, PlatformError> {
        Platform::parse(s)
    }
}

impl Default for Platform {
    fn default() -> Platform {
        Platform::host()
    }
}
