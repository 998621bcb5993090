//! Entry names as a layer may use them: relative, no `..`, no NUL.
//!
//! Names are taken relative to the target root whatever their form: a leading `/` is dropped, as GNU tar
//! and every container runtime do (`/etc/passwd` and `etc/passwd` are the same entry), and `.` and empty
//! components vanish (`./a//b/` is `a/b`). A `..` component is refused wherever it stands, even where it
//! would stay inside the root (`a/../b`): no layer writer emits one, and refusing them all is the rule
//! that needs no reasoning about where a path ends up.

use crate::layer::Refusal;

/// A normalized entry path: components joined by single `/`, empty for the root.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct EntryPath(Vec<u8>);

impl EntryPath {
    /// Normalizes the raw name stored in a layer.
    pub(crate) fn parse(raw: &[u8]) -> Result<EntryPath, Refusal> {
        if raw.contains(&0) {
            return Err(Refusal::NulByte);
        }
        let mut out = Vec::with_capacity(raw.len());
        for component in raw.split(|&b| b == b'/') {
            match component {
                b"" | b"." => {}
                b".." => return Err(Refusal::ParentComponent),
                name => {
                    if !out.is_empty() {
                        out.push(b'/');
                    }
                    out.extend_from_slice(name);
                }
            }
        }
        Ok(EntryPath(out))
    }

    /// Whether the path names the root itself (`/`, `.`, `./`).
    pub(crate) fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The whole path, `a/b/c`.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The parent's path, `a/b` for `a/b/c` (empty for a top-level name).
    pub(crate) fn parent(&self) -> &[u8] {
        self.0
            .iter()
            .rposition(|&b| b == b'/')
            .map_or(&[], |i| &self.0[..i])
    }

    /// The last component, `c` for `a/b/c`.
    pub(crate) fn file_name(&self) -> &[u8] {
        self.0
            .iter()
            .rposition(|&b| b == b'/')
            .map_or(&self.0[..], |i| &self.0[i + 1..])
    }

    /// The path of `name` inside this one.
    pub(crate) fn join(&self, name: &[u8]) -> EntryPath {
        let mut out = self.0.clone();
        if !out.is_empty() {
            out.push(b'/');
        }
        out.extend_from_slice(name);
        EntryPath(out)
    }
}

#[cfg(test)]
mod tests {
    use super::EntryPath;
    use crate::layer::Refusal;

    #[test]
    fn names_normalize_relative_to_the_root() {
        for (raw, want) in [
            ("a/b", "a/b"),
            ("/etc/passwd", "etc/passwd"),
            ("./a//b/", "a/b"),
            ("./", ""),
            ("/", ""),
            ("a/./b", "a/b"),
        ] {
            assert_eq!(
                EntryPath::parse(raw.as_bytes()).unwrap().as_bytes(),
                want.as_bytes(),
                "{raw}"
            );
        }
    }

    #[test]
    fn dot_dot_is_refused_anywhere() {
        for raw in ["../x", "/abs/../../x", "a/../b", "a/..", ".."] {
            assert_eq!(
                EntryPath::parse(raw.as_bytes()),
                Err(Refusal::ParentComponent),
                "{raw}"
            );
        }
    }

    #[test]
    fn parent_and_name_split_at_the_last_slash() {
        let p = EntryPath::parse(b"a/b/c").unwrap();
        assert_eq!((p.parent(), p.file_name()), (&b"a/b"[..], &b"c"[..]));
        let top = EntryPath::parse(b"c").unwrap();
        assert_eq!((top.parent(), top.file_name()), (&b""[..], &b"c"[..]));
    }
}
