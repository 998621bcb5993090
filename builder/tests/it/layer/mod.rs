//! Layer diff and apply on real trees: round trips (tree compare and a real overlay mount), escapes,
//! broken streams and the exact tar format.

mod escape;
mod format;
mod roundtrip;
mod stream;
mod tree;

use std::path::{Path, PathBuf};
use std::process::Command;

use kiln_builder::layer::{self, Changes, Compression, DiffOptions, LayerDescriptor};

/// Diffs `tree` against `parent` into memory.
pub(crate) fn diff_trees(
    parent: Option<&Path>,
    tree: &Path,
    compression: Compression,
) -> (LayerDescriptor, Vec<u8>) {
    let options = DiffOptions::new().compression(compression).threads(2);
    layer::diff(Changes::TreeCompare { parent, tree }, Vec::new(), &options).expect("diff")
}

/// Decompresses a layer blob with the crates apply does not use for it, for looking inside.
pub(crate) fn uncompressed(blob: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if blob.starts_with(&[0x1f, 0x8b]) {
        std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(blob), &mut out).unwrap();
    } else if blob.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        out = zstd::decode_all(blob).unwrap();
    } else {
        out = blob.to_vec();
    }
    out
}

/// One entry of a layer as a test looks at it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Listed {
    pub(crate) path: String,
    pub(crate) kind: char,
    pub(crate) mode: u32,
    pub(crate) mtime: u64,
    pub(crate) link: Option<String>,
    pub(crate) pax: Vec<(String, Vec<u8>)>,
    pub(crate) data: Vec<u8>,
}

/// Lists every entry of a (possibly compressed) layer, PAX records included. The `tar` crate reads the
/// headers in raw mode; PAX records are split here by their length prefix, as the format says (the
/// crate's own PAX iterator splits on newlines and breaks on binary xattr values).
pub(crate) fn list(blob: &[u8]) -> Vec<Listed> {
    let tar = uncompressed(blob);
    let mut archive = tar::Archive::new(&tar[..]);
    let mut out = Vec::new();
    let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
    for entry in archive.entries().unwrap().raw(true) {
        let mut entry = entry.unwrap();
        let header = entry.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        if header.entry_type() == tar::EntryType::XHeader {
            pax = parse_pax(&data);
            continue;
        }
        assert_eq!(header.username_bytes(), Some(&b""[..]), "user names stay empty");
        assert_eq!(header.groupname_bytes(), Some(&b""[..]), "group names stay empty");
        let record = |key: &str| {
            pax.iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        let path =
            record("path").unwrap_or_else(|| String::from_utf8_lossy(&header.path_bytes()).into_owned());
        let link = record("linkpath").or_else(|| {
            header
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned())
        });
        out.push(Listed {
            path,
            kind: char::from(header.entry_type().as_byte()),
            mode: header.mode().unwrap(),
            mtime: header.mtime().unwrap(),
            link,
            pax: std::mem::take(&mut pax),
            data,
        });
    }
    out
}

fn parse_pax(mut data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let space = data.iter().position(|&b| b == b' ').unwrap();
        let len: usize = std::str::from_utf8(&data[..space]).unwrap().parse().unwrap();
        let record = &data[space + 1..len - 1];
        let eq = record.iter().position(|&b| b == b'=').unwrap();
        out.push((
            String::from_utf8(record[..eq].to_vec()).unwrap(),
            record[eq + 1..].to_vec(),
        ));
        data = &data[len..];
    }
    out
}

/// An overlay mount for a test, unmounted on drop. Mounted the way the layer module needs it: with
/// `redirect_dir`, `metacopy` and `index` off, so the upper dir alone describes the change.
pub(crate) struct Overlay {
    merged: PathBuf,
}

impl Overlay {
    pub(crate) fn mount(lower: &Path, upper: &Path, work: &Path, merged: &Path) -> Overlay {
        let options = format!(
            "lowerdir={},upperdir={},workdir={},redirect_dir=off,metacopy=off,index=off,xino=off",
            lower.display(),
            upper.display(),
            work.display()
        );
        let status = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &options])
            .arg(merged)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount overlay on {}", merged.display());
        Overlay {
            merged: merged.to_owned(),
        }
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.merged)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.merged).status();
        }
    }
}

/// Builds tars byte by byte, with names no well-behaved writer would produce.
pub(crate) struct RawTar(pub(crate) Vec<u8>);

impl RawTar {
    pub(crate) fn new() -> RawTar {
        RawTar(Vec::new())
    }

    /// Appends one entry with the given raw name, type flag, link name and data.
    pub(crate) fn entry(mut self, name: &[u8], type_flag: u8, link: &[u8], data: &[u8]) -> RawTar {
        let mut header = tar::Header::new_ustar();
        header.as_ustar_mut().unwrap().name[..name.len()].copy_from_slice(name);
        header.as_ustar_mut().unwrap().linkname[..link.len()].copy_from_slice(link);
        header.set_entry_type(tar::EntryType::new(type_flag));
        header.set_mode(if type_flag == b'5' { 0o755 } else { 0o644 });
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_600_000_000);
        header.set_size(data.len() as u64);
        header.set_cksum();
        self.0.extend_from_slice(header.as_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().next_multiple_of(512), 0);
        self
    }

    pub(crate) fn file(self, name: &str, data: &[u8]) -> RawTar {
        self.entry(name.as_bytes(), b'0', b"", data)
    }

    pub(crate) fn dir(self, name: &str) -> RawTar {
        self.entry(name.as_bytes(), b'5', b"", b"")
    }

    pub(crate) fn symlink(self, name: &str, target: &str) -> RawTar {
        self.entry(name.as_bytes(), b'2', target.as_bytes(), b"")
    }

    pub(crate) fn hardlink(self, name: &str, target: &str) -> RawTar {
        self.entry(name.as_bytes(), b'1', target.as_bytes(), b"")
    }

    /// Ends the archive with its two zero blocks.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0; 1024]);
        self.0
    }
}
