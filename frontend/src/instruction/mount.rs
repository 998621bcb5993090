//! `RUN --mount=...` values: a CSV list of `key=value` fields (or bare `ro`, `rw`, `required`).
//!
//! Keys are case-insensitive and read in order, so `type=` must come before keys that depend on it
//! (`required`, `size`), as in BuildKit. Path-like values (`target`, `source`, `from`, `id`, `env`)
//! stay unexpanded for the builder; the other values must be literal here. The mount type defaults
//! to `bind`; `readonly` defaults to true for bind, secret and ssh mounts and false for cache and
//! tmpfs mounts.

use super::error::go_quote;
use super::suggest::{did_you_mean, suggest};
use crate::go::go_lower;

/// What a mount provides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum MountType {
    /// A directory of the build context or of another stage or image (default).
    #[default]
    Bind,
    /// A persistent cache directory shared between builds.
    Cache,
    /// An empty in-memory filesystem.
    Tmpfs,
    /// A secret file (or environment variable) given to the build.
    Secret,
    /// The SSH agent socket given to the build.
    Ssh,
}

impl MountType {
    const ALL: [(&'static str, MountType); 5] = [
        ("bind", MountType::Bind),
        ("cache", MountType::Cache),
        ("tmpfs", MountType::Tmpfs),
        ("secret", MountType::Secret),
        ("ssh", MountType::Ssh),
    ];

    /// The name used in Dockerfiles.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, t)| *t == self)
            .map_or("bind", |(n, _)| n)
    }
}

impl std::fmt::Display for MountType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How concurrent builds share a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sharing {
    /// Writers share one directory (the default).
    Shared,
    /// Each concurrent writer gets its own directory.
    Private,
    /// Writers wait for each other.
    Locked,
}

impl Sharing {
    const ALL: [(&'static str, Sharing); 3] = [
        ("shared", Sharing::Shared),
        ("private", Sharing::Private),
        ("locked", Sharing::Locked),
    ];
}

/// One `--mount` of a RUN instruction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mount {
    /// The mount type.
    pub kind: MountType,
    /// Where it is mounted in the container (`target`, `dst`, `destination`), unexpanded.
    pub target: Option<String>,
    /// The path inside `from` (or the secret's id for secrets, `source`/`src`), unexpanded.
    pub source: Option<String>,
    /// The stage or image to mount from (`from`); the build context when absent.
    pub from: Option<String>,
    /// The cache or secret id (`id`), unexpanded.
    pub id: Option<String>,
    /// Whether the mount is read-only, after applying the per-type default.
    pub read_only: bool,
    /// For cache mounts, the sharing mode; `None` means BuildKit's default (shared).
    pub sharing: Option<Sharing>,
    /// For secret and ssh mounts, whether a missing secret or socket is an error.
    pub required: bool,
    /// For tmpfs mounts, the size limit in bytes.
    pub size: Option<u64>,
    /// For secret, ssh and cache mounts, the file mode (octal in the Dockerfile).
    pub mode: Option<u32>,
    /// For secret, ssh and cache mounts, the owner's uid.
    pub uid: Option<u32>,
    /// For secret, ssh and cache mounts, the owner's gid.
    pub gid: Option<u32>,
    /// For secret mounts, the environment variable to expose the secret as, unexpanded.
    pub env: Option<String>,
}

/// A `--mount` value that does not parse, with BuildKit's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MountError {
    /// The value is not valid CSV.
    #[error("failed to parse csv mounts: parse error on line 1, column {column}: {reason}")]
    Csv {
        /// The 1-based column where reading failed.
        column: usize,
        /// What was wrong there.
        reason: &'static str,
    },
    /// A bare word other than `ro`, `rw`, `readonly`, `readwrite` or `required`.
    #[error("invalid field '{field}' must be a key=value pair")]
    NotKeyValue {
        /// The field.
        field: String,
    },
    /// A key that the mount type (as set so far) does not take.
    #[error("unexpected key '{key}' for mount type '{kind}'")]
    KeyNotForType {
        /// The key, lower case.
        key: String,
        /// The mount type when the key was read.
        kind: MountType,
    },
    /// `from=` with a variable in it: the stage graph is static.
    #[error("'from' doesn't support variable expansion, define alias stage instead")]
    FromVariable,
    /// `type=` with an unknown type.
    #[error("unsupported mount type {}{}", go_quote(value), did_you_mean(suggestion.as_ref()))]
    UnsupportedType {
        /// The value given.
        value: String,
        /// The closest type, if any.
        suggestion: Option<String>,
    },
    /// `sharing=` with an unknown mode.
    #[error("unsupported sharing value {}{}", go_quote(value), did_you_mean(suggestion.as_ref()))]
    UnsupportedSharing {
        /// The value given.
        value: String,
        /// The closest mode, if any.
        suggestion: Option<String>,
    },
    /// A boolean or size that does not parse (`ro=maybe`, `size=lots`).
    #[error("invalid value for {key}: {value}")]
    InvalidValue {
        /// The key.
        key: String,
        /// The value given.
        value: String,
    },
    /// A `mode`, `uid` or `gid` that does not parse.
    #[error("invalid value {value} for {key}")]
    InvalidNumber {
        /// `mode`, `uid` or `gid`.
        key: &'static str,
        /// The value given.
        value: String,
    },
    /// A key no mount takes.
    #[error("unexpected key '{key}' in '{field}'{}", did_you_mean(suggestion.as_ref()))]
    UnknownKey {
        /// The key, lower case.
        key: String,
        /// The whole field.
        field: String,
        /// The closest key, if any.
        suggestion: Option<String>,
    },
    /// `mode`, `uid` or `gid` on a bind or tmpfs mount.
    #[error("{key} not allowed for {} type mounts", go_quote(kind.as_str()))]
    FileInfoNotAllowed {
        /// `mode`, `uid` or `gid`.
        key: &'static str,
        /// The mount type.
        kind: MountType,
    },
    /// A secret mount with `from`.
    #[error("secret mount should not have a from")]
    SecretFrom,
    /// A secret mount with `sharing`.
    #[error("secret mount should not define sharing")]
    SecretSharing,
    /// A secret mount with neither source, target, id nor env.
    #[error("invalid secret mount. one of source, target required")]
    SecretIncomplete,
    /// A secret mount with both `source` and `id`.
    #[error("both source and id can't be set")]
    SecretSourceAndId,
    /// `sharing` on a mount other than cache.
    #[error("invalid cache sharing set for {kind} mount")]
    SharingNotForType {
        /// The mount type.
        kind: MountType,
    },
}

const KEYS: [&str; 19] = [
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "size",
    "env",
];

impl Mount {
    /// Parses one `--mount` value. `is_literal` tells whether a `from=` value is free of variables
    /// (the instruction layer passes the shell lexer's verdict).
    pub fn parse(value: &str, is_literal: &dyn Fn(&str) -> bool) -> Result<Mount, MountError> {
        let mut m = Mount::default();
        let mut read_only_given = false;
        let fields = super::csv_record(value).map_err(|e| MountError::Csv {
            column: e.column,
            reason: e.reason,
        })?;
        for field in fields {
            let (key, value) = match field.split_once('=') {
                Some((k, v)) => (lower(k), Some(v)),
                None => (lower(&field), None),
            };
            let Some(value) = value else {
                match key.as_str() {
                    "readonly" | "ro" => (m.read_only, read_only_given) = (true, true),
                    "readwrite" | "rw" => (m.read_only, read_only_given) = (false, true),
                    "required" if matches!(m.kind, MountType::Secret | MountType::Ssh) => m.required = true,
                    "required" => return Err(MountError::KeyNotForType { key, kind: m.kind }),
                    _ => return Err(MountError::NotKeyValue { field }),
                }
                continue;
            };
            m.set(&key, value, &field, &mut read_only_given, is_literal)?;
        }
        m.validate(read_only_given)?;
        Ok(m)
    }

    fn set(
        &mut self,
        key: &str,
        value: &str,
        field: &str,
        read_only_given: &mut bool,
        is_literal: &dyn Fn(&str) -> bool,
    ) -> Result<(), MountError> {
        let invalid = || MountError::InvalidValue {
            key: key.to_owned(),
            value: value.to_owned(),
        };
        match key {
            "type" => {
                let folded = lower(value);
                let Some((_, kind)) = MountType::ALL.iter().find(|(n, _)| *n == folded) else {
                    let suggestion = suggest(value, MountType::ALL.iter().map(|(n, _)| *n), true);
                    return Err(MountError::UnsupportedType {
                        value: value.to_owned(),
                        suggestion,
                    });
                };
                self.kind = *kind;
            }
            "from" if !is_literal(value) => return Err(MountError::FromVariable),
            "from" => self.from = Some(value.to_owned()),
            "source" | "src" => self.source = Some(value.to_owned()),
            "target" | "dst" | "destination" => self.target = Some(value.to_owned()),
            "readonly" | "ro" => {
                self.read_only = parse_go_bool(value).ok_or_else(invalid)?;
                *read_only_given = true;
            }
            "readwrite" | "rw" => {
                self.read_only = !parse_go_bool(value).ok_or_else(invalid)?;
                *read_only_given = true;
            }
            "required" if matches!(self.kind, MountType::Secret | MountType::Ssh) => {
                self.required = parse_go_bool(value).ok_or_else(invalid)?;
            }
            "size" if self.kind == MountType::Tmpfs => {
                self.size = Some(ram_in_bytes(value).ok_or_else(invalid)?);
            }
            "env" if self.kind == MountType::Secret => self.env = Some(value.to_owned()),
            "required" | "size" | "env" => {
                return Err(MountError::KeyNotForType {
                    key: key.to_owned(),
                    kind: self.kind,
                });
            }
            "id" => self.id = Some(value.to_owned()),
            "sharing" => {
                let folded = lower(value);
                let Some((_, sharing)) = Sharing::ALL.iter().find(|(n, _)| *n == folded) else {
                    let suggestion = suggest(value, Sharing::ALL.iter().map(|(n, _)| *n), true);
                    return Err(MountError::UnsupportedSharing {
                        value: value.to_owned(),
                        suggestion,
                    });
                };
                self.sharing = Some(*sharing);
            }
            "mode" => self.mode = Some(parse_u32(value, 8, "mode")?),
            "uid" => self.uid = Some(parse_u32(value, 10, "uid")?),
            "gid" => self.gid = Some(parse_u32(value, 10, "gid")?),
            _ => {
                let suggestion = suggest(key, KEYS, true);
                return Err(MountError::UnknownKey {
                    key: key.to_owned(),
                    field: field.to_owned(),
                    suggestion,
                });
            }
        }
        Ok(())
    }

    fn validate(&mut self, read_only_given: bool) -> Result<(), MountError> {
        if !matches!(self.kind, MountType::Secret | MountType::Ssh | MountType::Cache) {
            for (key, set) in [
                ("mode", self.mode.is_some()),
                ("uid", self.uid.is_some()),
                ("gid", self.gid.is_some()),
            ] {
                if set {
                    return Err(MountError::FileInfoNotAllowed { key, kind: self.kind });
                }
            }
        }
        if !read_only_given {
            self.read_only = !matches!(self.kind, MountType::Cache | MountType::Tmpfs);
        }
        if self.kind == MountType::Secret {
            if self.from.is_some() {
                return Err(MountError::SecretFrom);
            }
            if self.sharing.is_some() {
                return Err(MountError::SecretSharing);
            }
            if self.source.is_none() && self.target.is_none() && self.id.is_none() && self.env.is_none() {
                return Err(MountError::SecretIncomplete);
            }
            if self.source.is_some() && self.id.is_some() {
                return Err(MountError::SecretSourceAndId);
            }
        }
        if self.sharing.is_some() && self.kind != MountType::Cache {
            return Err(MountError::SharingNotForType { kind: self.kind });
        }
        Ok(())
    }
}

/// Go's `strings.ToLower`, without its per-char work for the usual ASCII keys and values.
fn lower(s: &str) -> String {
    if s.is_ascii() {
        s.to_ascii_lowercase()
    } else {
        go_lower(s)
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseUint(s, radix, 32)`, with a `+` sign refused as Go does.
fn parse_u32(value: &str, radix: u32, key: &'static str) -> Result<u32, MountError> {
    let ok = !value.is_empty() && value.chars().all(|c| c.is_digit(radix));
    ok.then(|| u32::from_str_radix(value, radix).ok())
        .flatten()
        .ok_or_else(|| MountError::InvalidNumber {
            key,
            value: value.to_owned(),
        })
}

/// docker/go-units' `RAMInBytes`: `512`, `64k`, `1.5m`, `2GiB` (binary multiples, case-insensitive).
fn ram_in_bytes(s: &str) -> Option<u64> {
    let number_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_end);
    let number_ok =
        !number.is_empty() && !number.starts_with('.') && !number.ends_with('.') && !number.contains("..");
    if !number_ok {
        return None;
    }
    let mut suffix = suffix.strip_prefix(' ').unwrap_or(suffix).to_ascii_lowercase();
    if suffix.ends_with('b') {
        suffix.pop();
    }
    if suffix.ends_with('i') {
        suffix.pop();
    }
    let shift = match suffix.as_str() {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return None,
    };
    // go-units accepts `1.5.2` style only via its regexp's `(\.\d+)*`; keep the first fraction.
    let value: f64 = number
        .split('.')
        .take(2)
        .collect::<Vec<_>>()
        .join(".")
        .parse()
        .ok()?;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Some((value * f64::from(1u32 << 10).powi(shift / 10)) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Mount, String> {
        Mount::parse(s, &|w: &str| !w.contains('$')).map_err(|e| e.to_string())
    }

    #[test]
    fn bind_is_the_read_only_default() {
        let m = parse("target=/src").unwrap();
        assert_eq!(m.kind, MountType::Bind);
        assert_eq!(m.target.as_deref(), Some("/src"));
        assert!(m.read_only);
        assert!(!parse("target=/src,rw").unwrap().read_only);
        assert!(!parse("target=/src,readwrite=true").unwrap().read_only);
    }

    #[test]
    fn cache_mount_with_every_key() {
        let m = parse("type=cache,id=go,target=/root/.cache,sharing=locked,mode=0700,uid=1000,gid=100,from=base,source=/c")
            .unwrap();
        assert_eq!(m.kind, MountType::Cache);
        assert_eq!(m.id.as_deref(), Some("go"));
        assert_eq!(m.sharing, Some(Sharing::Locked));
        assert_eq!((m.mode, m.uid, m.gid), (Some(0o700), Some(1000), Some(100)));
        assert_eq!(m.from.as_deref(), Some("base"));
        assert!(!m.read_only);
    }

    #[test]
    fn tmpfs_secret_ssh() {
        let m = parse("type=tmpfs,dst=/tmp,size=64m").unwrap();
        assert_eq!(m.size, Some(64 << 20));
        let m = parse("type=secret,id=npm,required,env=NPM_TOKEN").unwrap();
        assert!(m.required && m.read_only);
        assert_eq!(m.env.as_deref(), Some("NPM_TOKEN"));
        let m = parse("type=ssh,required=false").unwrap();
        assert_eq!(m.kind, MountType::Ssh);
        assert!(!m.required);
        assert_eq!(parse("TYPE=Cache,Target=/x").unwrap().kind, MountType::Cache);
    }

    #[test]
    fn quoted_csv_fields() {
        let m = parse(r#""target=/a,b",type=bind"#).unwrap();
        assert_eq!(m.target.as_deref(), Some("/a,b"));
        assert_eq!(
            parse(r#"target=/a"b"#).unwrap_err(),
            r#"failed to parse csv mounts: parse error on line 1, column 10: bare " in non-quoted field"#
        );
    }

    #[test]
    fn errors_use_buildkit_wording() {
        assert_eq!(
            parse("type=cahce,target=/x").unwrap_err(),
            r#"unsupported mount type "cahce" (did you mean cache?)"#
        );
        assert_eq!(
            parse("type=cache,sharing=lock").unwrap_err(),
            r#"unsupported sharing value "lock" (did you mean locked?)"#
        );
        assert_eq!(
            parse("taget=/x").unwrap_err(),
            "unexpected key 'taget' in 'taget=/x' (did you mean target?)"
        );
        assert_eq!(
            parse("target=/x,bogus").unwrap_err(),
            "invalid field 'bogus' must be a key=value pair"
        );
        assert_eq!(
            parse("required,type=secret").unwrap_err(),
            "unexpected key 'required' for mount type 'bind'"
        );
        assert_eq!(
            parse("type=cache,size=1m").unwrap_err(),
            "unexpected key 'size' for mount type 'cache'"
        );
        assert_eq!(
            parse("target=/x,ro=maybe").unwrap_err(),
            "invalid value for ro: maybe"
        );
        assert_eq!(
            parse("type=cache,target=/x,mode=999").unwrap_err(),
            "invalid value 999 for mode"
        );
        assert_eq!(
            parse("type=cache,target=/x,uid=-1").unwrap_err(),
            "invalid value -1 for uid"
        );
        assert_eq!(
            parse("target=/x,mode=0700").unwrap_err(),
            r#"mode not allowed for "bind" type mounts"#
        );
        assert_eq!(
            parse("type=secret,id=a,from=x").unwrap_err(),
            "secret mount should not have a from"
        );
        assert_eq!(
            parse("type=secret,id=a,sharing=shared").unwrap_err(),
            "secret mount should not define sharing"
        );
        assert_eq!(
            parse("type=secret").unwrap_err(),
            "invalid secret mount. one of source, target required"
        );
        assert_eq!(
            parse("type=secret,id=a,source=b").unwrap_err(),
            "both source and id can't be set"
        );
        assert_eq!(
            parse("type=tmpfs,target=/x,sharing=shared").unwrap_err(),
            "invalid cache sharing set for tmpfs mount"
        );
        assert_eq!(
            parse("from=$STAGE,target=/x").unwrap_err(),
            "'from' doesn't support variable expansion, define alias stage instead"
        );
    }

    #[test]
    fn ram_sizes() {
        assert_eq!(ram_in_bytes("512"), Some(512));
        assert_eq!(ram_in_bytes("64k"), Some(65536));
        assert_eq!(ram_in_bytes("1.5M"), Some(1_572_864));
        assert_eq!(ram_in_bytes("2GiB"), Some(2 << 30));
        assert_eq!(ram_in_bytes("2 gb"), Some(2 << 30));
        assert_eq!(ram_in_bytes("lots"), None);
        assert_eq!(ram_in_bytes("1x"), None);
    }
}
