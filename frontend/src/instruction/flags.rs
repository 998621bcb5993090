//! Instruction flags (`--from=build`, `--link`), read as BuildKit's `BFlags` reads them.
//!
//! Each instruction declares the flags it takes with their kind: a boolean (`--link`,
//! `--link=false`), a single string (`--from=x`, at most once) or a repeatable string
//! (`--mount=...`, `--exclude=...`). A lone `--` ends the flags.

use crate::go::go_lower;
use std::collections::HashMap;

use super::ErrorKind;
use super::suggest::suggest;

/// How a flag takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlagKind {
    /// `--name`, `--name=true`, `--name=false` (any case).
    Bool,
    /// `--name=value`, once.
    String,
    /// `--name=value`, any number of times.
    Strings,
}

/// The flags an instruction was given, checked against what it takes.
#[derive(Debug, Default)]
pub(crate) struct Flags {
    bools: HashMap<&'static str, bool>,
    strings: HashMap<&'static str, String>,
    lists: HashMap<&'static str, Vec<String>>,
}

impl Flags {
    /// Parses `raw` (each with its leading `--`) against `allowed`.
    pub(crate) fn parse(raw: &[String], allowed: &[(&'static str, FlagKind)]) -> Result<Flags, ErrorKind> {
        let mut flags = Flags::default();
        for arg in raw {
            if arg == "--" {
                break;
            }
            let (dashed, value) = match arg.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (arg.as_str(), None),
            };
            let Some(name) = dashed.strip_prefix("--") else {
                // The parser only hands over words starting with `--`; keep BFlags' check anyway.
                return Err(ErrorKind::UnknownFlag {
                    flag: dashed.to_owned(),
                    suggestion: None,
                });
            };
            let Some(&(name, kind)) = allowed.iter().find(|(n, _)| *n == name) else {
                let suggestion = suggest(name, allowed.iter().map(|(n, _)| *n), true);
                return Err(ErrorKind::UnknownFlag {
                    flag: dashed.to_owned(),
                    suggestion,
                });
            };
            let seen = flags.bools.contains_key(name) || flags.strings.contains_key(name);
            if seen && kind != FlagKind::Strings {
                return Err(ErrorKind::DuplicateFlag {
                    flag: dashed.to_owned(),
                });
            }
            match (kind, value) {
                (FlagKind::Bool, None) => {
                    flags.bools.insert(name, true);
                }
                (FlagKind::Bool, Some("")) | (FlagKind::String | FlagKind::Strings, None) => {
                    return Err(ErrorKind::MissingFlagValue {
                        flag: dashed.to_owned(),
                    });
                }
                (FlagKind::Bool, Some(v)) => {
                    let b = match go_lower(v).as_str() {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err(ErrorKind::InvalidBoolFlag {
                                flag: dashed.to_owned(),
                                value: v.to_owned(),
                            });
                        }
                    };
                    flags.bools.insert(name, b);
                }
                (FlagKind::String, Some(v)) => {
                    flags.strings.insert(name, v.to_owned());
                }
                (FlagKind::Strings, Some(v)) => flags.lists.entry(name).or_default().push(v.to_owned()),
            }
        }
        Ok(flags)
    }

    /// A boolean flag's value, `None` when it was not given.
    pub(crate) fn bool(&self, name: &str) -> Option<bool> {
        self.bools.get(name).copied()
    }

    /// A string flag's value, `None` when it was not given.
    pub(crate) fn string(&mut self, name: &str) -> Option<String> {
        self.strings.remove(name)
    }

    /// A repeatable flag's values in order, empty when it was not given.
    pub(crate) fn strings(&mut self, name: &str) -> Vec<String> {
        self.lists.remove(name).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COPY: &[(&str, FlagKind)] = &[
        ("from", FlagKind::String),
        ("link", FlagKind::Bool),
        ("exclude", FlagKind::Strings),
    ];

    fn parse(raw: &[&str]) -> Result<Flags, String> {
        let raw: Vec<String> = raw.iter().map(|s| (*s).to_owned()).collect();
        Flags::parse(&raw, COPY).map_err(|e| e.to_string())
    }

    #[test]
    fn values_by_kind() {
        let mut f = parse(&["--from=build", "--link", "--exclude=a", "--exclude=b"]).unwrap();
        assert_eq!(f.string("from").as_deref(), Some("build"));
        assert_eq!(f.bool("link"), Some(true));
        assert_eq!(f.strings("exclude"), ["a", "b"]);
        let f = parse(&["--link=FALSE"]).unwrap();
        assert_eq!(f.bool("link"), Some(false));
        assert_eq!(parse(&[]).unwrap().bool("link"), None);
    }

    #[test]
    fn double_dash_ends_flags() {
        let f = parse(&["--link", "--", "--bogus"]).unwrap();
        assert_eq!(f.bool("link"), Some(true));
    }

    #[test]
    fn errors_use_buildkit_wording() {
        assert_eq!(
            parse(&["--form=x"]).unwrap_err(),
            "unknown flag: --form (did you mean from?)"
        );
        assert_eq!(parse(&["--chmod=755"]).unwrap_err(), "unknown flag: --chmod");
        assert_eq!(
            parse(&["--from=a", "--from=b"]).unwrap_err(),
            "duplicate flag specified: --from"
        );
        assert_eq!(
            parse(&["--link", "--link"]).unwrap_err(),
            "duplicate flag specified: --link"
        );
        assert_eq!(parse(&["--from"]).unwrap_err(), "missing a value on flag: --from");
        assert_eq!(
            parse(&["--link="]).unwrap_err(),
            "missing a value on flag: --link"
        );
        assert_eq!(
            parse(&["--link=yes"]).unwrap_err(),
            "expecting boolean value for flag --link, not: yes"
        );
        assert_eq!(
            parse(&["--exclude"]).unwrap_err(),
            "missing a value on flag: --exclude"
        );
    }
}
