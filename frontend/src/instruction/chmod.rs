//! `--chmod` values: octal (`755`, `0644`) up to 07777, or symbolic as chmod(1) writes them
//! (`u+x`, `go-w,a+r`, `u=rwX`).

use super::ErrorKind;

/// A parsed `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chmod {
    /// An octal mode, at most `0o7777`.
    Octal(u32),
    /// A symbolic mode, applied to each file's current mode.
    Symbolic(String),
}

impl Chmod {
    /// Parses a `--chmod` value (after expansion, if it held variables).
    pub fn parse(value: &str) -> Result<Chmod, ErrorKind> {
        let invalid = || ErrorKind::InvalidChmod {
            value: value.to_owned(),
        };
        if !value.is_empty() && value.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            let mode = u32::from_str_radix(value, 8).map_err(|_| invalid())?;
            return if mode > 0o7777 {
                Err(invalid())
            } else {
                Ok(Chmod::Octal(mode))
            };
        }
        if is_symbolic(value) {
            Ok(Chmod::Symbolic(value.to_owned()))
        } else {
            Err(invalid())
        }
    }
}

/// Whether `s` is a symbolic mode: comma-separated clauses `[ugoa]*([-+=]([rwxXst]*|[ugo]))+`.
fn is_symbolic(s: &str) -> bool {
    !s.is_empty() && s.split(',').all(is_clause)
}

fn is_clause(clause: &str) -> bool {
    let rest = clause.trim_start_matches(['u', 'g', 'o', 'a']);
    if rest.is_empty() {
        return false;
    }
    let mut actions = rest;
    while !actions.is_empty() {
        let Some(after_op) = actions.strip_prefix(['+', '-', '=']) else {
            return false;
        };
        let perm_end = after_op.find(['+', '-', '=']).unwrap_or(after_op.len());
        let perms = &after_op[..perm_end];
        let copy = matches!(perms, "u" | "g" | "o");
        if !copy && !perms.chars().all(|c| "rwxXst".contains(c)) {
            return false;
        }
        actions = &after_op[perm_end..];
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_and_symbolic() {
        assert_eq!(Chmod::parse("755"), Ok(Chmod::Octal(0o755)));
        assert_eq!(Chmod::parse("0644"), Ok(Chmod::Octal(0o644)));
        assert_eq!(Chmod::parse("7777"), Ok(Chmod::Octal(0o7777)));
        assert_eq!(Chmod::parse("u+x"), Ok(Chmod::Symbolic("u+x".into())));
        assert_eq!(Chmod::parse("go-w,a+rX"), Ok(Chmod::Symbolic("go-w,a+rX".into())));
        assert_eq!(Chmod::parse("u=g"), Ok(Chmod::Symbolic("u=g".into())));
        assert_eq!(Chmod::parse("+x-w"), Ok(Chmod::Symbolic("+x-w".into())));
    }

    #[test]
    fn rejects_like_buildkit() {
        for bad in ["10000", "789", "", "u", "u+q", "rwx", "u+x,"] {
            assert_eq!(
                Chmod::parse(bad).unwrap_err().to_string(),
                format!(
                    "invalid chmod parameter: '{bad}'. it should be octal string and between 0 and 07777"
                ),
                "{bad}"
            );
        }
    }
}
