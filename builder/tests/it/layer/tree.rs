//! Real directory trees for the layer tests: capturing one as comparable data, copying one exactly, and
//! random changes (proptest strategies) applied to one.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use rustix::fs::{AtFlags, FileType, Mode, Timespec, Timestamps, XattrFlags};

/// What a test sees of one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Node {
    pub(crate) kind: Kind,
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// Whole seconds; `None` for directories, whose mtime follows child churn and is not part of a
    /// change (see the layer module docs).
    pub(crate) mtime: Option<i64>,
    pub(crate) xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// For a multiply-linked non-directory: the smallest path of its inode (so equal values mean
    /// "hardlinked together").
    pub(crate) link_group: Option<Vec<u8>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(Vec<u8>),
    Char(u64),
    Block(u64),
    Fifo,
    Socket,
}

pub(crate) type Tree = BTreeMap<Vec<u8>, Node>;

/// Captures every path below `root` (the root itself left out). With `links`, hardlink groups are
/// recorded too (off for overlay merged views, whose inode numbers do not say which names share data).
pub(crate) fn capture(root: &Path, links: bool) -> Tree {
    let mut tree = Tree::new();
    let mut inodes: HashMap<(u64, u64), Vec<Vec<u8>>> = HashMap::new();
    walk(root, &[], &mut |rel, md, path| {
        let file_type = md.file_type();
        let kind = if file_type.is_file() {
            Kind::File(fs::read(path).unwrap())
        } else if file_type.is_dir() {
            Kind::Dir
        } else if file_type.is_symlink() {
            Kind::Symlink(fs::read_link(path).unwrap().into_os_string().into_vec())
        } else if file_type.is_char_device() {
            Kind::Char(md.rdev())
        } else if file_type.is_block_device() {
            Kind::Block(md.rdev())
        } else if file_type.is_fifo() {
            Kind::Fifo
        } else {
            Kind::Socket
        };
        if links && !file_type.is_dir() && md.nlink() > 1 {
            inodes.entry((md.dev(), md.ino())).or_default().push(rel.to_vec());
        }
        let node = Node {
            kind,
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            mtime: (!file_type.is_dir()).then(|| md.mtime()),
            xattrs: xattrs(path)
                .into_iter()
                .filter(|(k, _)| {
                    !k.starts_with(b"trusted.overlay.")
                        && !k.starts_with(b"user.overlay.")
                        && k != b"security.selinux"
                })
                .collect(),
            link_group: None,
        };
        tree.insert(rel.to_vec(), node);
    });
    for names in inodes.values() {
        let first = names.iter().min().unwrap().clone();
        for name in names {
            tree.get_mut(name).unwrap().link_group = Some(first.clone());
        }
    }
    tree
}

fn walk(root: &Path, rel: &[u8], f: &mut impl FnMut(&[u8], &fs::Metadata, &Path)) {
    let dir = root.join(OsStr::from_bytes(rel));
    let mut names: Vec<OsString> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for name in names {
        let child_rel = join(rel, name.as_bytes());
        let path = dir.join(&name);
        let md = fs::symlink_metadata(&path).unwrap();
        f(&child_rel, &md, &path);
        if md.is_dir() {
            walk(root, &child_rel, f);
        }
    }
}

pub(crate) fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = parent.to_vec();
    if !out.is_empty() {
        out.push(b'/');
    }
    out.extend_from_slice(name);
    out
}

pub(crate) fn xattrs(path: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut list = vec![0u8; 64 * 1024];
    let n = match rustix::fs::llistxattr(path, &mut list[..]) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => 0,
        Err(e) => panic!("listxattr {}: {e}", path.display()),
    };
    let mut out = BTreeMap::new();
    for name in list[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let mut value = vec![0u8; 64 * 1024];
        if let Ok(len) = rustix::fs::lgetxattr(path, name, &mut value[..]) {
            value.truncate(len);
            out.insert(name.to_vec(), value);
        }
    }
    out
}

/// Describes how two captured trees differ, path by path (empty when equal).
pub(crate) fn differences(want: &Tree, got: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    for (path, node) in want {
        match got.get(path) {
            None => out.push(format!("missing {:?}", String::from_utf8_lossy(path))),
            Some(other) if other != node => out.push(format!(
                "{:?} differs:\n  want {node:?}\n  got  {other:?}",
                String::from_utf8_lossy(path)
            )),
            Some(_) => {}
        }
    }
    for path in got.keys().filter(|p| !want.contains_key(*p)) {
        out.push(format!("unexpected {:?}", String::from_utf8_lossy(path)));
    }
    out
}

/// Copies `src` into the existing directory `dst` exactly: content, owners, modes, xattrs, mtimes,
/// device numbers and hardlinks (within the tree).
pub(crate) fn copy_tree(src: &Path, dst: &Path) {
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut dirs = Vec::new();
    walk(src, &[], &mut |rel, md, path| {
        let to = dst.join(OsStr::from_bytes(rel));
        let file_type = md.file_type();
        if !file_type.is_dir() && md.nlink() > 1 {
            if let Some(first) = links.get(&(md.dev(), md.ino())) {
                fs::hard_link(first, &to).unwrap();
                return;
            }
            links.insert((md.dev(), md.ino()), to.clone());
        }
        if file_type.is_dir() {
            fs::create_dir(&to).unwrap();
        } else if file_type.is_file() {
            fs::copy(path, &to).unwrap();
        } else if file_type.is_symlink() {
            symlink(fs::read_link(path).unwrap(), &to).unwrap();
        } else if file_type.is_socket() {
            return;
        } else {
            let kind = if file_type.is_char_device() {
                FileType::CharacterDevice
            } else if file_type.is_block_device() {
                FileType::BlockDevice
            } else {
                FileType::Fifo
            };
            rustix::fs::mknodat(rustix::fs::CWD, &to, kind, Mode::from_raw_mode(0o600), md.rdev()).unwrap();
        }
        set_metadata(&to, md, &xattrs(path));
        if file_type.is_dir() {
            dirs.push((to, md.clone()));
        }
    });
    for (dir, md) in dirs.iter().rev() {
        set_times(dir, md.mtime());
    }
}

fn set_metadata(path: &Path, md: &fs::Metadata, xattrs: &BTreeMap<Vec<u8>, Vec<u8>>) {
    std::os::unix::fs::lchown(path, Some(md.uid()), Some(md.gid())).unwrap();
    for (k, v) in xattrs {
        rustix::fs::lsetxattr(path, k.as_slice(), v, XattrFlags::empty()).unwrap();
    }
    if !md.file_type().is_symlink() {
        fs::set_permissions(path, fs::Permissions::from_mode(md.mode() & 0o7777)).unwrap();
    }
    set_times(path, md.mtime());
}

pub(crate) fn set_times(path: &Path, secs: i64) {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: t,
        last_modification: t,
    };
    rustix::fs::utimensat(rustix::fs::CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW).unwrap();
}

/// A valid `security.capability` value (revision 2, effective, `cap_net_bind_service` permitted).
pub(crate) const CAP_NET_BIND_SERVICE: [u8; 20] = [
    0x01, 0, 0, 0x02, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// One random change to a tree. `pick` and `at` choose among the paths present when the change is made
/// (any path, or any directory including the root), so a sequence stays meaningful while it shrinks.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    WriteFile {
        at: usize,
        name: Name,
        len: usize,
    },
    Modify {
        pick: usize,
    },
    Remove {
        pick: usize,
    },
    Mkdir {
        at: usize,
        name: Name,
    },
    Chmod {
        pick: usize,
        mode: u32,
    },
    Chown {
        pick: usize,
        uid: u32,
        gid: u32,
    },
    Symlink {
        at: usize,
        name: Name,
        target: Vec<u8>,
    },
    Hardlink {
        pick: usize,
        at: usize,
        name: Name,
    },
    Xattr {
        pick: usize,
        key: &'static str,
        value: Vec<u8>,
    },
    Special {
        at: usize,
        name: Name,
        kind: u8,
    },
    Rename {
        pick: usize,
        at: usize,
        name: Name,
    },
    /// Deletes the path and makes a new directory (or an empty file) in its place: the overlay case of
    /// an opaque directory, and type changes both ways.
    Recreate {
        pick: usize,
        as_dir: bool,
    },
}

#[derive(Clone, Debug)]
pub(crate) struct Name(pub(crate) Vec<u8>);

fn name() -> impl Strategy<Value = Name> {
    prop_oneof![
        8 => prop::sample::select(vec!["a", "b", "c", "dir", "f.txt", "x-y", "zz"]).prop_map(|s| Name(s.into())),
        1 => Just(Name(vec![b'L'; 120])),
        1 => Just(Name(b"caf\xc3\xa9-\xff".to_vec())),
    ]
}

fn len() -> impl Strategy<Value = usize> {
    prop_oneof![8 => 0..3000usize, 1 => 130_000..140_000usize]
}

pub(crate) fn op() -> impl Strategy<Value = Op> {
    let pick = any::<usize>();
    prop_oneof![
        4 => (pick, name(), len()).prop_map(|(at, name, len)| Op::WriteFile { at, name, len }),
        2 => pick.prop_map(|pick| Op::Modify { pick }),
        2 => pick.prop_map(|pick| Op::Remove { pick }),
        3 => (pick, name()).prop_map(|(at, name)| Op::Mkdir { at, name }),
        1 => (pick, prop::sample::select(vec![0o644, 0o600, 0o755, 0o4755, 0o2750, 0o1777, 0o500, 0o444]))
            .prop_map(|(pick, mode)| Op::Chmod { pick, mode }),
        1 => (pick, prop::sample::select(vec![0, 1000, 65534]), prop::sample::select(vec![0, 100, 65534]))
            .prop_map(|(pick, uid, gid)| Op::Chown { pick, uid, gid }),
        1 => (pick, name(), prop::sample::select(vec![&b"../up"[..], b"/etc/passwd", b"a", b"dir/f.txt", &[b'T'; 150]]))
            .prop_map(|(at, name, target)| Op::Symlink { at, name, target: target.to_vec() }),
        1 => (pick, pick, name()).prop_map(|(pick, at, name)| Op::Hardlink { pick, at, name }),
        1 => (pick, prop::sample::select(vec!["user.kiln", "trusted.kiln", "security.capability"]), prop::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(pick, key, value)| Op::Xattr { pick, key, value }),
        1 => (pick, name(), 0u8..3).prop_map(|(at, name, kind)| Op::Special { at, name, kind }),
        1 => (pick, pick, name()).prop_map(|(pick, at, name)| Op::Rename { pick, at, name }),
        2 => (pick, any::<bool>()).prop_map(|(pick, as_dir)| Op::Recreate { pick, as_dir }),
    ]
}

/// Applies `ops` to the tree at `root`, best effort: a change the filesystem refuses (a hardlink to a
/// directory, a user xattr on a symlink, a directory rename overlay answers with EXDEV) is skipped, as
/// the resulting tree is what the test captures. `id` makes every written content and symlink target
/// unique, so no change can leave a file's bytes as they were while moving its mtime.
pub(crate) fn apply_ops(root: &Path, ops: &[Op], mut id: u64) {
    for op in ops {
        id += 1;
        let all = paths(root, false);
        let dirs = paths(root, true);
        let any =
            |pick: usize| (!all.is_empty()).then(|| root.join(OsStr::from_bytes(&all[pick % all.len()])));
        let dir = |at: usize| root.join(OsStr::from_bytes(&dirs[at % dirs.len()]));
        let _ = apply_op(op, id, &any, &dir);
    }
}

fn apply_op(
    op: &Op,
    id: u64,
    any: &dyn Fn(usize) -> Option<PathBuf>,
    dir: &dyn Fn(usize) -> PathBuf,
) -> io::Result<()> {
    let fresh = |at: usize, name: &Name| -> io::Result<PathBuf> {
        let path = dir(at).join(OsStr::from_bytes(&name.0));
        remove(&path)?;
        Ok(path)
    };
    match op {
        Op::WriteFile { at, name, len } => fs::write(fresh(*at, name)?, content(id, *len)),
        Op::Modify { pick } => match any(*pick) {
            Some(p) if fs::symlink_metadata(&p)?.is_file() => fs::write(p, content(id, 100)),
            _ => Ok(()),
        },
        Op::Remove { pick } => any(*pick).map_or(Ok(()), |p| remove(&p)),
        Op::Mkdir { at, name } => fs::create_dir(fresh(*at, name)?),
        Op::Chmod { pick, mode } => match any(*pick) {
            Some(p) if !fs::symlink_metadata(&p)?.is_symlink() => {
                fs::set_permissions(p, fs::Permissions::from_mode(*mode))
            }
            _ => Ok(()),
        },
        Op::Chown { pick, uid, gid } => {
            any(*pick).map_or(Ok(()), |p| std::os::unix::fs::lchown(p, Some(*uid), Some(*gid)))
        }
        Op::Symlink { at, name, target } => {
            let mut target = target.clone();
            target.extend_from_slice(format!("-{id}").as_bytes());
            symlink(OsStr::from_bytes(&target), fresh(*at, name)?)
        }
        Op::Hardlink { pick, at, name } => match any(*pick) {
            Some(p) if !fs::symlink_metadata(&p)?.is_dir() => {
                let to = dir(*at).join(OsStr::from_bytes(&name.0));
                if to.starts_with(&p) || fs::symlink_metadata(&to).is_ok_and(|m| m.is_dir()) {
                    return Ok(());
                }
                remove(&to)?;
                fs::hard_link(p, to)
            }
            _ => Ok(()),
        },
        Op::Xattr { pick, key, value } => match any(*pick) {
            Some(p) => {
                let value = if *key == "security.capability" {
                    CAP_NET_BIND_SERVICE.to_vec()
                } else {
                    value.clone()
                };
                rustix::fs::lsetxattr(&p, *key, &value, XattrFlags::empty()).map_err(io::Error::from)
            }
            None => Ok(()),
        },
        Op::Special { at, name, kind } => {
            let (file_type, dev) = match kind {
                0 => (FileType::Fifo, 0),
                1 => (FileType::CharacterDevice, rustix::fs::makedev(1, 3)),
                _ => (FileType::BlockDevice, rustix::fs::makedev(7, 42)),
            };
            let path = fresh(*at, name)?;
            rustix::fs::mknodat(rustix::fs::CWD, &path, file_type, Mode::from_raw_mode(0o640), dev)
                .map_err(io::Error::from)
        }
        Op::Rename { pick, at, name } => match any(*pick) {
            Some(p) => {
                let to = dir(*at).join(OsStr::from_bytes(&name.0));
                if to.starts_with(&p) || p.starts_with(&to) {
                    return Ok(());
                }
                remove(&to)?;
                fs::rename(p, to)
            }
            None => Ok(()),
        },
        Op::Recreate { pick, as_dir } => match any(*pick) {
            Some(p) => {
                remove(&p)?;
                if *as_dir {
                    fs::create_dir(p)
                } else {
                    fs::write(p, content(id, 10))
                }
            }
            None => Ok(()),
        },
    }
}

fn remove(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(md) if md.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// `len`-ish bytes that start with the change's id and are not all alike.
pub(crate) fn content(id: u64, len: usize) -> Vec<u8> {
    let mut out = format!("change {id}\n").into_bytes();
    let mut x = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(b"abcdefgh \n01"[(x % 12) as usize]);
    }
    out
}

/// Relative paths below `root`, sorted: all of them, or the directories with the root (as "") first.
fn paths(root: &Path, dirs_only: bool) -> Vec<Vec<u8>> {
    let mut out = if dirs_only { vec![Vec::new()] } else { Vec::new() };
    walk(root, &[], &mut |rel, md, _| {
        if !dirs_only || md.is_dir() {
            out.push(rel.to_vec());
        }
    });
    out
}
