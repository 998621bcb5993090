//! `--chmod` values as chmod(1) reads them: octal (`755`, `4755`) or symbolic (`u+x`, `go-w`,
//! `a=rX`, `u=rwx,go=u-w`).
//!
//! BuildKit applies symbolic modes with BSD's `setmode` semantics (the `dchapes-mode` port): each
//! comma-separated clause names who (`u`, `g`, `o`, `a`, or nobody, which means everybody minus the
//! umask), then one or more actions: an operator (`+`, `-`, `=`) with permissions (`rwxXst`) or a
//! class to copy (`u`, `g`, `o`). `X` adds execute only where some execute bit was already set or on
//! a directory, and only with `+` (`a=rX` gives `r--r--r--`, as in BuildKit). The umask is fixed at 022 (BuildKit's daemon's usual one), so a
//! bare `+w` grants write to the owner only, exactly as on a default Docker host, whatever kiln's
//! own umask is.

use std::fmt;
use std::str::FromStr;

/// The umask that clauses without a `who` are relative to.
const UMASK: u32 = 0o022;
const SET_ID: u32 = 0o6000;
const STICKY: u32 = 0o1000;
const STANDARD: u32 = 0o6777;

/// A `--chmod` value, parsed: [`Mode::apply`] gives the mode of each copied file and directory.
///
/// ```
/// use kiln_builder::fsop::Mode;
///
/// let exec: Mode = "u+x,go-w".parse().unwrap();
/// assert_eq!(exec.apply(0o666, false), 0o744);
/// assert_eq!("go+rX".parse::<Mode>().unwrap().apply(0o700, true), 0o755);
/// assert_eq!(Mode::octal(0o640).unwrap().apply(0o4777, false), 0o640);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mode {
    text: String,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Octal(u32),
    Symbolic(Vec<Clause>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Clause {
    /// The bits `u`/`g`/`o`/`a` select; 0 when the clause names nobody.
    who: u32,
    actions: Vec<Action>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Action {
    op: Op,
    what: What,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Remove,
    Set,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum What {
    /// Permission bits (before `who` masking) and whether `X` was given.
    Perms {
        bits: u32,
        sticky: bool,
        cond_exec: bool,
    },
    /// Copy the permissions of a class: the shift of its bits (6 user, 3 group, 0 other).
    Copy(u32),
}

/// A `--chmod` value that is neither an octal mode up to 07777 nor a symbolic mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid chmod parameter: '{value}'. it should be octal string and between 0 and 07777, or a symbolic mode"
)]
pub struct ModeError {
    /// The rejected value.
    pub value: String,
}

impl Mode {
    /// An octal mode: permission bits plus setuid, setgid and sticky (at most `0o7777`).
    pub fn octal(bits: u32) -> Result<Mode, ModeError> {
        if bits > 0o7777 {
            return Err(ModeError {
                value: format!("{bits:o}"),
            });
        }
        Ok(Mode {
            text: format!("{bits:o}"),
            kind: Kind::Octal(bits),
        })
    }

    /// Parses a `--chmod` value.
    pub fn parse(value: &str) -> Result<Mode, ModeError> {
        let invalid = || ModeError {
            value: value.to_owned(),
        };
        let kind = if value.starts_with(|c: char| c.is_ascii_digit()) {
            let bits = u32::from_str_radix(value, 8).map_err(|_| invalid())?;
            if bits > 0o7777 {
                return Err(invalid());
            }
            Kind::Octal(bits)
        } else {
            Kind::Symbolic(
                value
                    .split(',')
                    .map(parse_clause)
                    .collect::<Option<_>>()
                    .ok_or_else(invalid)?,
            )
        };
        Ok(Mode {
            text: value.to_owned(),
            kind,
        })
    }

    /// The value as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The mode (permission, setuid/setgid and sticky bits) a file whose mode is `mode` gets.
    /// `is_dir` matters to `X`. File type bits in `mode` are ignored.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let original = mode & 0o7777;
        match &self.kind {
            Kind::Octal(bits) => *bits,
            Kind::Symbolic(clauses) => clauses
                .iter()
                .fold(original, |mode, clause| clause.apply(mode, original, is_dir)),
        }
    }
}

impl Clause {
    fn apply(&self, mut mode: u32, original: u32, is_dir: bool) -> u32 {
        let mask = !UMASK & 0o7777;
        for action in &self.actions {
            match &action.what {
                What::Perms {
                    bits,
                    sticky,
                    cond_exec,
                } => {
                    let mut who = self.who;
                    let mut perms = *bits;
                    // `s` and `t` mean nothing for "other" alone. `t` also narrows a clause without
                    // `who` to the sticky bit alone: setmode's quirk, which BuildKit keeps.
                    let not_other_only = who == 0 || who & !0o007 != 0;
                    if !not_other_only {
                        perms &= !SET_ID;
                    }
                    if *sticky && not_other_only {
                        who |= STICKY;
                        perms |= STICKY;
                    }
                    let selected = |bits: u32| if who == 0 { mask & bits } else { who & bits };
                    match action.op {
                        Op::Add => mode |= selected(perms),
                        Op::Remove => mode &= !selected(perms),
                        Op::Set => {
                            mode &= !(if who == 0 { STANDARD } else { who });
                            mode |= selected(perms);
                        }
                    }
                    if *cond_exec && action.op == Op::Add && (original & 0o111 != 0 || is_dir) {
                        mode |= selected(0o111);
                    }
                }
                What::Copy(shift) => {
                    let value = (mode >> shift) & 0o7;
                    let limit = if self.who == 0 { mask } else { 0o7777 };
                    for (class_bits, class_shift) in [(0o4700, 6), (0o2070, 3), (0o0007, 0)] {
                        if self.who != 0 && self.who & class_bits == 0 {
                            continue;
                        }
                        let clear = match action.op {
                            Op::Set => 0o7,
                            Op::Remove => value,
                            Op::Add => 0,
                        };
                        mode &= !((clear << class_shift) & limit);
                        if action.op != Op::Remove {
                            mode |= (value << class_shift) & limit;
                        }
                    }
                }
            }
        }
        mode
    }
}

fn parse_clause(clause: &str) -> Option<Clause> {
    let mut who = 0;
    let mut rest = clause;
    while let Some(c) = rest.chars().next() {
        who |= match c {
            'u' => 0o4700,
            'g' => 0o2070,
            'o' => 0o0007,
            'a' => STANDARD,
            _ => break,
        };
        rest = &rest[1..];
    }
    let mut actions = Vec::new();
    while let Some(op) = rest.chars().next() {
        let op = match op {
            '+' => Op::Add,
            '-' => Op::Remove,
            '=' => Op::Set,
            _ => return None,
        };
        rest = &rest[1..];
        let end = rest.find(['+', '-', '=']).unwrap_or(rest.len());
        let (perms, after) = rest.split_at(end);
        rest = after;
        let what = match perms {
            "u" => What::Copy(6),
            "g" => What::Copy(3),
            "o" => What::Copy(0),
            perms => {
                let (mut bits, mut sticky, mut cond_exec) = (0, false, false);
                for c in perms.chars() {
                    match c {
                        'r' => bits |= 0o444,
                        'w' => bits |= 0o222,
                        'x' => bits |= 0o111,
                        's' => bits |= SET_ID,
                        't' => sticky = true,
                        'X' => cond_exec = true,
                        _ => return None,
                    }
                }
                What::Perms {
                    bits,
                    sticky,
                    cond_exec,
                }
            }
        };
        actions.push(Action { op, what });
    }
    if actions.is_empty() {
        return None;
    }
    Some(Clause { who, actions })
}

impl FromStr for Mode {
    type Err = ModeError;

    fn from_str(s: &str) -> Result<Mode, ModeError> {
        Mode::parse(s)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl TryFrom<&kiln_frontend::instruction::Chmod> for Mode {
    type Error = ModeError;

    fn try_from(chmod: &kiln_frontend::instruction::Chmod) -> Result<Mode, ModeError> {
        match chmod {
            kiln_frontend::instruction::Chmod::Octal(bits) => Mode::octal(*bits),
            kiln_frontend::instruction::Chmod::Symbolic(text) => Mode::parse(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Mode;

    fn apply(mode: &str, from: u32, is_dir: bool) -> u32 {
        Mode::parse(mode).unwrap().apply(from, is_dir)
    }

    #[test]
    fn octal() {
        assert_eq!(apply("755", 0o600, false), 0o755);
        assert_eq!(apply("0644", 0o7777, true), 0o644);
        assert_eq!(apply("4755", 0o644, false), 0o4755);
        assert!(Mode::parse("10000").is_err());
        assert!(Mode::parse("789").is_err());
    }

    #[test]
    fn symbolic_like_chmod() {
        assert_eq!(apply("u+x", 0o644, false), 0o744);
        assert_eq!(apply("go-w", 0o666, false), 0o644);
        assert_eq!(apply("a=r", 0o777, false), 0o444);
        assert_eq!(apply("u=rwx,go=rx", 0, false), 0o755);
        assert_eq!(apply("+x", 0o600, false), 0o711);
        // Without who, the umask (022) holds write back from group and other.
        assert_eq!(apply("+w", 0o444, false), 0o644);
        assert_eq!(apply("=rw", 0o4777, false), 0o644);
        assert_eq!(apply("u=rw,+X", 0o600, true), 0o711);
        assert_eq!(apply("+X", 0o644, false), 0o644);
        assert_eq!(apply("+X", 0o744, false), 0o755);
        assert_eq!(apply("go=u-w", 0o700, false), 0o755);
        assert_eq!(apply("u=g", 0o640, false), 0o440);
        assert_eq!(apply("g+s", 0o755, true), 0o2755);
        assert_eq!(apply("o+s", 0o755, true), 0o755);
        assert_eq!(apply("+t", 0o755, true), 0o1755);
        assert_eq!(apply("u-x,g+w", 0o755, false), 0o675);
        assert_eq!(apply("a-rwx", 0o4777, false), 0o4000);
        assert_eq!(apply("a=rX", 0o700, true), 0o444);
        assert_eq!(apply("=t", 0o755, true), 0o1755);
    }

    #[test]
    fn rejects_what_chmod_rejects() {
        for bad in ["", "u", "u+q", "rwx", "u+x,", "z+x", "+x,,g-w"] {
            assert!(Mode::parse(bad).is_err(), "{bad:?}");
        }
    }
}
