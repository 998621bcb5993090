//! File operations: the filesystem side of `COPY`, `ADD`, heredoc sources and `WORKDIR`, as BuildKit's
//! FileOp (copy, mkfile, mkdir) does them, without ever leaving the roots they work in.
//!
//! The model: a *source root* (the build context, or another stage's or image's rootfs) and a
//! *destination root* (the rootfs of the snapshot being built). Every path is resolved inside its
//! root as a process chrooted there would see it: `..` stops at the root, and a symlink is followed
//! relative to the root (`/app -> /etc` means `<dst_root>/etc`), so a context symlink to
//! `/etc/passwd` names the context's own `etc/passwd`, never the host's. All work is done through
//! directory file descriptors with `*at` calls that never follow the entry they act on, so a symlink
//! swapped in during a copy cannot redirect it.
//!
//! - [`ContextCopy`] runs one `COPY`/local `ADD` from the build context: it copies exactly what the
//!   context's selections hold (what `.dockerignore` and `--exclude` leave, and what the cache key
//!   hashes), never the context directory as such.
//! - [`copy`] runs one `COPY --from`/`ADD` described by a [`CopySpec`] from a directory (a stage's
//!   or image's rootfs): wildcards, directory contents, `--chown` ([`Ownership`]), `--chmod`
//!   ([`Mode`]), `--exclude`, `--parents`, archive extraction.
//! - [`write_inline`] writes heredoc sources (`COPY <<EOF /dest`).
//! - [`fetch`] downloads an `ADD <url>` source; [`copy_url`] downloads and copies it in one go.
//! - [`mkdir_p`] creates `WORKDIR`.
//!
//! Owners are numeric: the caller resolves `--chown` names against the destination's `/etc/passwd`.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use kiln_builder::context::Context;
//! use kiln_builder::fsop::{self, ContextCopy, CopySpec, Mode, Owner, Ownership};
//!
//! let dir = tempfile::tempdir()?;
//! std::fs::create_dir(dir.path().join("src"))?;
//! std::fs::write(dir.path().join("src/main.py"), "print('hi')\n")?;
//! let context = Context::builder(dir.path()).open()?;
//! let rootfs = tempfile::tempdir()?;
//!
//! // COPY --chown=1000:1000 --chmod=u+x src /app/
//! let mut spec = CopySpec::new(["src"], "/app/");
//! spec.ownership = Ownership::context(Some(Owner::new(1000, 1000)));
//! spec.chmod = Some(Mode::parse("u+x")?);
//! let report = ContextCopy::select(&context, &spec)?.copy(rootfs.path())?;
//! assert_eq!(report.files, 1);
//! assert_eq!(std::fs::read_to_string(rootfs.path().join("app/main.py"))?, "print('hi')\n");
//!
//! // COPY --from=<that stage> /app/main.py /srv/
//! let next = tempfile::tempdir()?;
//! let mut spec = CopySpec::new(["/app/main.py"], "/srv/");
//! spec.ownership = Ownership::from_stage(None);
//! fsop::copy(rootfs.path(), next.path(), &spec)?;
//! assert!(next.path().join("srv/main.py").exists());
//! # Ok(())
//! # }
//! ```

mod archive;
mod context;
mod copy;
mod error;
mod fetch;
mod meta;
mod mode;
mod source;
mod spec;
mod tree;

use std::path::Path;

pub use context::ContextCopy;
pub use error::FsopError;
pub use fetch::{Fetched, fetch};
pub use mode::{Mode, ModeError};
pub use spec::{Archives, CopyReport, CopySpec, Owner, Ownership};

use crate::fsroot::Root;
pub(crate) use archive::{decompress as decompress_archive, extract as extract_archive};
use copy::Wildcards;

/// Copies `spec.sources` from the directory `src_root` (a stage's or image's rootfs) to `spec.dest`
/// in `dst_root` (see [`CopySpec`] for the rules). On error, what was already copied stays: the
/// caller works in an active snapshot it discards.
///
/// `src_root` is taken as it is on disk: for the build context, whose `.dockerignore` must hide
/// files, use [`ContextCopy`].
pub fn copy(src_root: &Path, dst_root: &Path, spec: &CopySpec) -> Result<CopyReport, FsopError> {
    copy::run(src_root, dst_root, spec, Wildcards::Allowed)
}

/// One heredoc source: its name (the heredoc word, `EOF` in `COPY <<EOF /x/`) and its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineFile {
    /// The file's name.
    pub name: String,
    /// The file's content.
    pub data: Vec<u8>,
}

/// Writes heredoc sources to `dest` in `dst_root`, as BuildKit does: each is a file of mode 0644
/// owned by `0:0` (or `chown`), modified now, copied with the same rules as a context file (so one
/// source to `/x` writes the file `/x`; several need `dest` to end in `/`). `chmod` applies on top.
pub fn write_inline(
    dst_root: &Path,
    dest: &str,
    files: &[InlineFile],
    chown: Option<Owner>,
    chmod: Option<&Mode>,
) -> Result<CopyReport, FsopError> {
    let staging =
        tempfile::tempdir().map_err(|e| FsopError::io("create a staging directory for", dest, e))?;
    let mut names = Vec::with_capacity(files.len());
    for file in files {
        // The name is a heredoc word: only its last component names the file.
        let name = file
            .name
            .rsplit('/')
            .find(|c| !c.is_empty())
            .unwrap_or("EOF")
            .to_owned();
        let path = staging.path().join(&name);
        std::fs::write(&path, &file.data).map_err(|e| FsopError::io("write", &name, e))?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .map_err(|e| FsopError::io("chmod", &name, e))?;
        names.push(name);
    }
    let mut spec = CopySpec::new(names, dest);
    spec.ownership = Ownership::context(chown);
    spec.chmod = chmod.cloned();
    spec.follow_symlinks = false;
    copy::run(staging.path(), dst_root, &spec, Wildcards::Literal)
}

/// One `ADD <url> <dest>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlCopy {
    /// The `http://` or `https://` URL.
    pub url: String,
    /// As [`CopySpec::dest`].
    pub dest: String,
    /// `--chown` (the file is `0:0` otherwise).
    pub chown: Option<Owner>,
    /// `--chmod` (the file is 0600 otherwise).
    pub chmod: Option<Mode>,
    /// `--checksum` (`sha256:<hex>`).
    pub checksum: Option<String>,
}

/// Downloads `add.url` (see [`fetch`]) and copies the file to `add.dest` in `dst_root`. Returns
/// what was fetched (its digest is the content's) and what the copy wrote.
pub fn copy_url(dst_root: &Path, add: &UrlCopy) -> Result<(Fetched, CopyReport), FsopError> {
    let staging =
        tempfile::tempdir().map_err(|e| FsopError::io("create a staging directory for", &add.url, e))?;
    let fetched = fetch(&add.url, staging.path(), add.checksum.as_deref())?;
    let mut spec = CopySpec::new([fetched.file_name.clone()], add.dest.clone());
    spec.ownership = Ownership::context(add.chown);
    spec.chmod.clone_from(&add.chmod);
    spec.follow_symlinks = false;
    let report = copy::run(staging.path(), dst_root, &spec, Wildcards::Literal)?;
    Ok((fetched, report))
}

/// Creates the directory `path` (absolute in `dst_root`) and its missing parents with `mode`, owned
/// by `owner` (`WORKDIR` after `USER`, as BuildKit) or by root. Existing directories are left as
/// they are; symlinks on the way are followed inside the root.
pub fn mkdir_p(dst_root: &Path, path: &str, owner: Option<Owner>, mode: u32) -> Result<(), FsopError> {
    let root = Root::open(dst_root)
        .map_err(|e| FsopError::io("open destination root", &dst_root.display().to_string(), e))?;
    let cleaned = source::absolute(&source::clean(path));
    let mut hook = |fd: &std::os::fd::OwnedFd| -> std::io::Result<()> {
        // Owner first: chown clears setuid and setgid bits.
        if let Some(owner) = owner {
            rustix::fs::fchown(
                fd,
                Some(rustix::fs::Uid::from_raw(owner.uid)),
                Some(rustix::fs::Gid::from_raw(owner.gid)),
            )?;
        }
        Ok(rustix::fs::fchmod(
            fd,
            rustix::fs::Mode::from_raw_mode(mode & 0o7777),
        )?)
    };
    root.open_dir(cleaned.as_bytes(), Some(&mut hook))
        .map_err(|e| copy::dest_error(&cleaned, e))?;
    Ok(())
}
