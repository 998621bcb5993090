//! The change set a layer describes, as a list of items in the order they go into the tar.
//!
//! Both ways of finding changes (walking an overlay upper dir, comparing two trees) produce [`Item`]s;
//! [`into_layer_order`] then adds every missing ancestor directory (a layer names the parents of what
//! it changes, so applying it never invents directory metadata) and sorts the items component by
//! component, so a directory always comes right before its children.

/// Prefix of a whiteout entry's name: `.wh.x` deletes `x` from the layers below.
pub(crate) const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// Name of the entry that makes its directory opaque: nothing below it in lower layers shows through.
pub(crate) const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";

/// One entry of the layer to be, named by its path relative to the snapshot root (`a/b`, no leading
/// or trailing slash; the empty path is the root).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Item {
    /// The path as it is in the snapshot (file, directory, symlink, device...).
    Node(Vec<u8>),
    /// The path was deleted: written as `<parent>/.wh.<name>`.
    Whiteout(Vec<u8>),
    /// The directory hides what lower layers hold below it: written as `<dir>/.wh..wh..opq`.
    Opaque(Vec<u8>),
}

impl Item {
    /// The entry's path in the tar, without the trailing slash directories get.
    pub(crate) fn tar_path(&self) -> Vec<u8> {
        match self {
            Item::Node(path) => path.clone(),
            Item::Whiteout(path) => {
                let (parent, name) = split_last(path);
                let mut out = parent.to_vec();
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(WHITEOUT_PREFIX);
                out.extend_from_slice(name);
                out
            }
            Item::Opaque(dir) => join(dir, OPAQUE_MARKER),
        }
    }
}

/// `parent/name`, or `name` under the root.
pub(crate) fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parent.len() + 1 + name.len());
    out.extend_from_slice(parent);
    if !parent.is_empty() {
        out.push(b'/');
    }
    out.extend_from_slice(name);
    out
}

/// Splits `a/b/c` into `a/b` and `c` (and `c` into `` and `c`).
pub(crate) fn split_last(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

/// A snapshot file whose own name starts with `.wh.` would read as a whiteout when the layer is applied,
/// so no layer can carry it.
pub(crate) fn is_reserved_name(name: &[u8]) -> bool {
    name.starts_with(WHITEOUT_PREFIX)
}

/// Adds the ancestors of every item, sorts parents before children (siblings by name bytes) and drops
/// duplicates. The root itself is never an entry: its metadata belongs to the snapshot, not the layer.
pub(crate) fn into_layer_order(items: Vec<Item>) -> Vec<Item> {
    let mut keyed: Vec<(Vec<u8>, Item)> = Vec::with_capacity(items.len());
    for item in items {
        let path = item.tar_path();
        let mut end = 0;
        while let Some(i) = path[end..].iter().position(|&b| b == b'/') {
            end += i;
            let ancestor = path[..end].to_vec();
            keyed.push((sort_key(&ancestor), Item::Node(ancestor)));
            end += 1;
        }
        if !path.is_empty() {
            keyed.push((sort_key(&path), item));
        }
    }
    keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    keyed.dedup_by(|a, b| a.0 == b.0);
    keyed.into_iter().map(|(_, item)| item).collect()
}

/// Mapping `/` to NUL (which no name holds) makes plain byte order the component-wise order: `a`,
/// `a/b`, `a-b` rather than `a`, `a-b`, `a/b`.
fn sort_key(path: &[u8]) -> Vec<u8> {
    path.iter().map(|&b| if b == b'/' { 0 } else { b }).collect()
}

#[cfg(test)]
mod tests {
    use super::{Item, into_layer_order};

    fn node(p: &str) -> Item {
        Item::Node(p.as_bytes().to_vec())
    }

    #[test]
    fn parents_come_first_and_ancestors_are_added() {
        let items = vec![
            node("a-b"),
            Item::Whiteout(b"a/b/gone".to_vec()),
            node("a/b/c"),
            Item::Opaque(b"z".to_vec()),
            node("a/b/c"),
        ];
        let paths: Vec<String> = into_layer_order(items)
            .iter()
            .map(|i| String::from_utf8(i.tar_path()).unwrap())
            .collect();
        assert_eq!(
            paths,
            ["a", "a/b", "a/b/.wh.gone", "a/b/c", "a-b", "z", "z/.wh..wh..opq"]
        );
    }
}
