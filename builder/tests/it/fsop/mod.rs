//! fsop on real directories: COPY/ADD semantics as BuildKit has them, and containment in both roots.
//! The tests run as root (ownership is checked for real).

mod archive;
mod context;
mod context_key;
mod copy;
mod heredoc;
mod security;
mod url;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use kiln_builder::fsop::{self, CopyReport, CopySpec, FsopError};
use tempfile::TempDir;

/// A build context and a destination rootfs.
pub(crate) struct Fx {
    pub(crate) ctx: TempDir,
    pub(crate) root: TempDir,
}

impl Fx {
    pub(crate) fn new() -> Fx {
        Fx {
            ctx: tempfile::tempdir().unwrap(),
            root: tempfile::tempdir().unwrap(),
        }
    }

    pub(crate) fn ctx(&self, rel: &str) -> PathBuf {
        self.ctx.path().join(rel)
    }

    pub(crate) fn at(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel.trim_start_matches('/'))
    }

    /// Writes a context file (parents created).
    pub(crate) fn file(&self, rel: &str, content: &str) -> PathBuf {
        write(&self.ctx(rel), content)
    }

    pub(crate) fn copy(&self, spec: &CopySpec) -> Result<CopyReport, FsopError> {
        fsop::copy(self.ctx.path(), self.root.path(), spec)
    }

    /// `COPY <sources> <dest>` from the context.
    pub(crate) fn cp(&self, sources: &[&str], dest: &str) -> Result<CopyReport, FsopError> {
        self.copy(&CopySpec::new(sources.iter().copied(), dest))
    }

    pub(crate) fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.at(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    pub(crate) fn exists(&self, rel: &str) -> bool {
        fs::symlink_metadata(self.at(rel)).is_ok()
    }

    /// `(mode & 0o7777, uid, gid)` of a destination entry, not followed.
    pub(crate) fn meta(&self, rel: &str) -> (u32, u32, u32) {
        let m = fs::symlink_metadata(self.at(rel)).unwrap_or_else(|e| panic!("stat {rel}: {e}"));
        (m.mode() & 0o7777, m.uid(), m.gid())
    }

    /// The sorted paths below the destination root, directories with a trailing `/`.
    pub(crate) fn tree(&self) -> Vec<String> {
        let mut out = Vec::new();
        list(self.root.path(), self.root.path(), &mut out);
        out.sort();
        out
    }
}

fn list(base: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(base).unwrap().display().to_string();
        if entry.file_type().unwrap().is_dir() {
            out.push(format!("{rel}/"));
            list(base, &entry.path(), out);
        } else {
            out.push(rel);
        }
    }
}

pub(crate) fn write(path: &Path, content: &str) -> PathBuf {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
    path.to_owned()
}

pub(crate) fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

pub(crate) fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
}
