//! A build context read from a stream, as `docker build -` reads standard input: see
//! [`StreamedContext`].

use std::fmt;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use kiln_frontend::dockerignore;
use rustix::event::{PollFd, PollFlags, poll};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::{ContextError, DOCKERIGNORE, IgnoreSource};
use crate::dockerfile::{self, DockerfileSource, DockerfileText, ReadError};
use crate::exec::CancelToken;
use crate::fsop::{self, CopyReport, FsopError, Owner};

/// How many leading bytes decide what a stream is (Docker's CLI looks at as many).
const SNIFF: usize = 1024;

/// The prefix of the directories [`StreamedContext::unpack`] makes; the pid of the kiln that made
/// one follows, so a later unpack can tell an abandoned directory from one in use.
const DIR_PREFIX: &str = "context-";

/// A stream holding a build context: a tar archive, or a Dockerfile (see [`StreamedContext`]). It
/// is read once: clones share it, and the first [`StreamedContext::unpack`] takes it.
#[derive(Clone)]
pub struct ContextStream {
    name: String,
    source: Arc<Mutex<Option<Source>>>,
}

enum Source {
    /// A file descriptor (standard input): waited on with `poll`, so a cancel stops even a read that
    /// would block forever.
    Fd(OwnedFd),
    /// Any reader: a cancel stops the unpack at its next read.
    Reader(Box<dyn Read + Send>),
}

impl ContextStream {
    /// The process's standard input (`docker build -`), named `stdin` in messages.
    pub fn stdin() -> io::Result<ContextStream> {
        let fd = io::stdin().as_fd().try_clone_to_owned()?;
        Ok(ContextStream::with_source("stdin", Source::Fd(fd)))
    }

    /// The bytes `reader` yields; `name` is how messages refer to the stream.
    pub fn from_reader(name: impl Into<String>, reader: impl Read + Send + 'static) -> ContextStream {
        ContextStream::with_source(name, Source::Reader(Box::new(reader)))
    }

    fn with_source(name: impl Into<String>, source: Source) -> ContextStream {
        ContextStream {
            name: name.into(),
            source: Arc::new(Mutex::new(Some(source))),
        }
    }

    /// How messages name the stream (`stdin`).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn take(&self) -> Option<Source> {
        self.source.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

impl fmt::Debug for ContextStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextStream")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Why a context stream could not be turned into a build context.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The stream was already read (by an earlier build of the same request).
    #[error("the build context from {name} was already read by an earlier build")]
    Consumed {
        /// The stream's name.
        name: String,
    },
    /// Reading the stream failed (or was cancelled).
    #[error("failed to read the build context from {name}")]
    Read {
        /// The stream's name.
        name: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The stream is neither a tar archive kiln reads nor a Dockerfile.
    #[error(
        "{name} holds {found}, not a build context: kiln reads a tar archive (plain, gzip, bzip2, xz \
         or zstd) or a Dockerfile"
    )]
    NotAContext {
        /// The stream's name.
        name: String,
        /// What it holds instead, such as `a zip archive`.
        found: &'static str,
    },
    /// The directory to unpack into could not be made.
    #[error("failed to create a directory for the build context in {}", path.display())]
    TempDir {
        /// The parent directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The archive could not be extracted: an entry escapes, is of a refused type, or the data is
    /// corrupt (the entry is named in the source).
    #[error("failed to unpack the build context")]
    Unpack(#[source] FsopError),
    /// The stream was the Dockerfile, and the request names a Dockerfile too (Docker's wording).
    #[error("ambiguous Dockerfile source: both {name} and flag correspond to Dockerfiles")]
    AmbiguousDockerfile {
        /// The stream's name.
        name: String,
    },
    /// The Dockerfile could not be read from the context.
    #[error(transparent)]
    Dockerfile(#[from] ReadError),
    /// The ignore file could not be read or parsed.
    #[error(transparent)]
    Ignore(#[from] ContextError),
}

/// What a [`ContextStream`] held, unpacked into a temporary directory that is removed on drop.
///
/// The model: a [`ContextStream`] names a byte stream (standard input, or any reader). Unpacking it
/// ([`StreamedContext::unpack`]) looks at its first bytes, as Docker does:
///
/// * a tar archive (plain, or gzip, bzip2, xz or zstd compressed, told apart by their magic bytes) is
///   the whole context. It is extracted into a fresh directory with ADD's extraction rules
///   (`fsop`): entry names stay inside the directory (a leading `/` is dropped, a `..` that climbs out
///   is refused with an error naming the entry), symlinks are followed as if the directory were `/`,
///   device nodes and FIFOs are refused. The Dockerfile is then a file of the context, at the `-f`
///   path taken relative to the context root (`Dockerfile` by default), and `.dockerignore` (or
///   `<Dockerfile>.dockerignore`) inside it applies as for a directory.
/// * anything else is the Dockerfile itself, and the context is empty.
///
/// Streams that are neither (a zip file, binary data) are refused with an error that says what was
/// found. The directory is a temporary one below the caller's directory (the solver uses
/// `<kiln root>/tmp-v1/`), private to kiln (mode 0700 above it), removed when the
/// [`StreamedContext`] is dropped; one left behind by a killed kiln is removed by the next unpack in
/// the same place. Reading is cancellable: cancelling the [`CancelToken`] given to `unpack` stops it
/// even while it waits for standard input.
///
/// ```
/// use kiln_builder::context::{Context, ContextStream, StreamedContext};
/// use kiln_builder::dockerfile::DockerfileSource;
/// use kiln_builder::exec::CancelToken;
///
/// // A context as a tar archive: a Dockerfile, a file, and an ignore file that hides a log.
/// let mut tar = tar::Builder::new(Vec::new());
/// for (name, text) in [("Dockerfile", "FROM scratch\nCOPY . /\n"), ("app.txt", "hi\n"), ("debug.log", "x"), (".dockerignore", "*.log\n")] {
///     let mut header = tar::Header::new_gnu();
///     header.set_size(text.len() as u64);
///     header.set_mode(0o644);
///     header.set_cksum();
///     tar.append_data(&mut header, name, text.as_bytes())?;
/// }
/// let archive = tar.into_inner()?;
/// let size = archive.len() as u64;
///
/// let temp = tempfile::tempdir()?;
/// let stream = ContextStream::from_reader("stdin", std::io::Cursor::new(archive));
/// let streamed = StreamedContext::unpack(&stream, temp.path(), &CancelToken::new())?;
/// assert!(streamed.is_archive());
/// assert_eq!(streamed.transferred(), size);
/// let dockerfile = streamed.dockerfile(&DockerfileSource::Default)?;
/// assert_eq!(dockerfile.bytes, b"FROM scratch\nCOPY . /\n");
/// let context = Context::builder(streamed.dir()).ignore(streamed.ignore(&dockerfile)?).open()?;
/// let paths: Vec<_> = context.entries().iter().map(|e| e.path().display().to_string()).collect();
/// assert_eq!(paths, [".dockerignore", "Dockerfile", "app.txt"]);
///
/// // Not an archive: the stream is the Dockerfile, the context an empty directory.
/// let stream = ContextStream::from_reader("stdin", &b"FROM scratch\n"[..]);
/// let streamed = StreamedContext::unpack(&stream, temp.path(), &CancelToken::new())?;
/// assert!(!streamed.is_archive());
/// assert_eq!(streamed.dockerfile(&DockerfileSource::Default)?.bytes, b"FROM scratch\n");
/// assert_eq!(std::fs::read_dir(streamed.dir())?.count(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct StreamedContext {
    dir: tempfile::TempDir,
    /// The stream's name.
    name: String,
    /// The Dockerfile, when the stream was one (the context is then empty).
    dockerfile: Option<Vec<u8>>,
    /// Bytes read from the stream.
    transferred: u64,
}

impl StreamedContext {
    /// Reads `stream` to its end (an archive: to its end-of-archive marker) and unpacks it into a new
    /// directory below `parent` (created, mode 0700, if missing). Cancelling `cancel` stops the read
    /// and removes what was unpacked.
    pub fn unpack(
        stream: &ContextStream,
        parent: &Path,
        cancel: &CancelToken,
    ) -> Result<StreamedContext, StreamError> {
        let name = stream.name.clone();
        let source = stream
            .take()
            .ok_or_else(|| StreamError::Consumed { name: name.clone() })?;
        let dir = make_dir(parent)?;
        let read_error = |source| StreamError::Read {
            name: name.clone(),
            source,
        };
        let count = Arc::new(AtomicU64::new(0));
        let mut reader = Cancellable {
            source,
            cancel: cancel.clone(),
            count: Arc::clone(&count),
        };
        let head = read_head(&mut reader).map_err(read_error)?;
        let dockerfile = match sniff(&head) {
            Sniffed::Archive => {
                let stream = io::Cursor::new(head).chain(reader);
                extract(stream, dir.path(), &name)?;
                None
            }
            Sniffed::Text => {
                let mut bytes = head;
                reader.read_to_end(&mut bytes).map_err(read_error)?;
                Some(bytes)
            }
            Sniffed::Other(found) => return Err(StreamError::NotAContext { name, found }),
        };
        Ok(StreamedContext {
            dir,
            name,
            dockerfile,
            transferred: count.load(Ordering::Relaxed),
        })
    }

    /// The context directory (empty when the stream was a Dockerfile).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the stream was an archive (else it was the Dockerfile).
    pub fn is_archive(&self) -> bool {
        self.dockerfile.is_none()
    }

    /// How many bytes were read from the stream.
    pub fn transferred(&self) -> u64 {
        self.transferred
    }

    /// The Dockerfile `source` names for this context: the stream itself when it was one (then only
    /// [`DockerfileSource::Default`] is allowed), else a file of the context, at `source`'s path taken
    /// relative to the context root and resolved inside it. Messages name it as given
    /// (`sub/Dockerfile`), or `Dockerfile`.
    pub fn dockerfile(&self, source: &DockerfileSource) -> Result<DockerfileText, StreamError> {
        let (name, bytes, path) = match (&self.dockerfile, source) {
            (Some(bytes), DockerfileSource::Default) => ("Dockerfile".to_owned(), bytes.clone(), None),
            (Some(_), _) => {
                return Err(StreamError::AmbiguousDockerfile {
                    name: self.name.clone(),
                });
            }
            (None, DockerfileSource::Stdin) => return Ok(dockerfile::read(source, self.dir())?),
            (None, DockerfileSource::Path(path)) => {
                let bytes = self.read(path).map_err(|source| ReadError::Io {
                    path: path.clone(),
                    source,
                })?;
                // The path is in the context (`read` took an absolute one from its root, too).
                let inside = self.dir().join(path.strip_prefix("/").unwrap_or(path));
                (path.display().to_string(), bytes, Some(inside))
            }
            (None, DockerfileSource::Default) => {
                // Docker's CLI falls back to `dockerfile` only when `Dockerfile` is missing.
                let (name, bytes) = match self.read(Path::new("Dockerfile")) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        ("dockerfile", self.read(Path::new("dockerfile")))
                    }
                    other => ("Dockerfile", other),
                };
                let bytes = bytes.map_err(|source| ReadError::Io {
                    path: PathBuf::from("Dockerfile"),
                    source,
                })?;
                (name.to_owned(), bytes, Some(self.dir().join(name)))
            }
        };
        if bytes.is_empty() {
            return Err(ReadError::Empty { name }.into());
        }
        Ok(DockerfileText { name, path, bytes })
    }

    /// The ignore patterns for a build of `dockerfile` in this context, as
    /// [`IgnoreSource::for_dockerfile`] chooses them (`<Dockerfile>.dockerignore` beside a Dockerfile
    /// of the context, else `.dockerignore` at its root), read inside the context.
    pub fn ignore(&self, dockerfile: &DockerfileText) -> Result<IgnoreSource, StreamError> {
        let mut candidates = Vec::new();
        if let Some(rel) = dockerfile
            .path
            .as_deref()
            .and_then(|p| p.strip_prefix(self.dir()).ok())
        {
            let mut beside = rel.as_os_str().to_owned();
            beside.push(DOCKERIGNORE);
            candidates.push(PathBuf::from(beside));
        }
        candidates.push(PathBuf::from(DOCKERIGNORE));
        for path in candidates {
            let bytes = match self.read(&path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(ContextError::ReadIgnoreFile { path, source }.into()),
            };
            return match dockerignore::parse(&bytes) {
                Ok(patterns) => Ok(IgnoreSource::Patterns(patterns)),
                Err(source) => Err(ContextError::IgnoreFile { path, source }.into()),
            };
        }
        Ok(IgnoreSource::None)
    }

    /// Reads the file at `rel` in the context, resolving it (symlinks included) inside the context.
    fn read(&self, rel: &Path) -> io::Result<Vec<u8>> {
        let root = rustix::fs::open(
            self.dir(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let fd = loop {
            match rustix::fs::openat2(
                &root,
                rel,
                OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            ) {
                // The kernel asks for a retry when a rename raced the lookup.
                Err(Errno::AGAIN) => {}
                other => break other?,
            }
        };
        let mut bytes = Vec::new();
        std::fs::File::from(fd).read_to_end(&mut bytes)?;
        Ok(bytes)
    }
}

/// Makes the directory to unpack into: `<parent>/context-<pid>-<random>`, mode 0755 inside a parent
/// only kiln's user may enter. Directories of kilns that are gone are removed first.
fn make_dir(parent: &Path) -> Result<tempfile::TempDir, StreamError> {
    let fail = |source| StreamError::TempDir {
        path: parent.to_owned(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(parent)
        .map_err(fail)?;
    sweep_abandoned(parent);
    let dir = tempfile::Builder::new()
        .prefix(&format!("{DIR_PREFIX}{}-", std::process::id()))
        .tempdir_in(parent)
        .map_err(fail)?;
    // The context root's mode is what `COPY . /dest` gives a directory it creates: a directory
    // context's would usually be 0755, as is the root of BuildKit's unpacked remote context.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).map_err(fail)?;
    Ok(dir)
}

/// Removes the unpacked contexts of kiln processes that no longer exist (killed before their
/// guard ran). Best effort: a directory that cannot be removed now is tried again next time.
fn sweep_abandoned(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix(DIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<i32>().ok())
            .and_then(rustix::process::Pid::from_raw);
        if pid.is_some_and(|pid| rustix::process::test_kill_process(pid) == Err(Errno::SRCH)) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Extracts the (possibly compressed) tar `stream` into `dir`.
fn extract(stream: impl Read + 'static, dir: &Path, name: &str) -> Result<(), StreamError> {
    let read_error = |source| StreamError::Read {
        name: name.to_owned(),
        source,
    };
    let reader = fsop::decompress_archive(stream).map_err(read_error)?;
    let into = rustix::fs::open(
        dir,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| StreamError::TempDir {
        path: dir.to_owned(),
        source: e.into(),
    })?;
    // Owners do not matter in a context (COPY gives its files 0:0 or --chown, and checksums ignore
    // them): the files are kiln's own, whatever the headers say.
    let owner = Owner::new(
        rustix::process::getuid().as_raw(),
        rustix::process::getgid().as_raw(),
    );
    let mut report = CopyReport::default();
    fsop::extract_archive(reader, into, name, Some(owner), &mut report).map_err(StreamError::Unpack)
}

/// What the first bytes of a stream say it is.
#[derive(Debug, PartialEq, Eq)]
enum Sniffed {
    /// A tar archive, compressed or not.
    Archive,
    /// Text: a Dockerfile.
    Text,
    /// Something else, described.
    Other(&'static str),
}

/// Docker's test (compression magic bytes, or a valid tar header), then a few formats users might
/// pipe by mistake, then binary data.
fn sniff(head: &[u8]) -> Sniffed {
    const COMPRESSED: [&[u8]; 4] = [
        &[0x1f, 0x8b, 0x08],
        b"BZh",
        &[0xfd, b'7', b'z', b'X', b'Z', 0x00],
        &[0x28, 0xb5, 0x2f, 0xfd],
    ];
    const OTHERS: [(&[u8], &str); 6] = [
        (b"PK\x03\x04", "a zip archive"),
        (&[b'7', b'z', 0xbc, 0xaf, 0x27, 0x1c], "a 7-Zip archive"),
        (&[0x04, 0x22, 0x4d, 0x18], "lz4-compressed data"),
        (b"Rar!\x1a\x07", "a RAR archive"),
        (b"LZIP", "lzip-compressed data"),
        (&[0x1f, 0x9d], "compress (.Z) data"),
    ];
    if COMPRESSED.iter().any(|magic| head.starts_with(magic)) || is_tar(head) {
        return Sniffed::Archive;
    }
    if let Some((_, found)) = OTHERS.iter().find(|(magic, _)| head.starts_with(magic)) {
        return Sniffed::Other(found);
    }
    if head.contains(&0) {
        return Sniffed::Other("binary data");
    }
    Sniffed::Text
}

/// Whether `head` starts with a tar header whose checksum is right (Go's `tar.Reader.Next` test,
/// without reading what a PAX or GNU long-name header announces, which may lie past `head`).
fn is_tar(head: &[u8]) -> bool {
    let mut archive = tar::Archive::new(head);
    matches!(archive.entries().map(|e| e.raw(true).next()), Ok(Some(Ok(_))))
}

/// Reads up to [`SNIFF`] bytes (fewer only at the end of the stream).
fn read_head(reader: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(SNIFF);
    reader.by_ref().take(SNIFF as u64).read_to_end(&mut head)?;
    Ok(head)
}

/// The stream as read: counted, and stopped by a cancel.
struct Cancellable {
    source: Source,
    cancel: CancelToken,
    count: Arc<AtomicU64>,
}

impl Cancellable {
    fn cancelled() -> io::Error {
        // Not `ErrorKind::Interrupted`, which readers retry.
        io::Error::other("the build was cancelled")
    }
}

impl Read for Cancellable {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.is_cancelled() {
            return Err(Cancellable::cancelled());
        }
        let n = match &mut self.source {
            Source::Reader(reader) => reader.read(buf)?,
            Source::Fd(fd) => loop {
                let mut fds = [
                    PollFd::new(fd, PollFlags::IN),
                    PollFd::from_borrowed_fd(self.cancel.fd(), PollFlags::IN),
                ];
                match poll(&mut fds, None) {
                    Ok(_) | Err(Errno::INTR) => {}
                    Err(e) => return Err(e.into()),
                }
                if !fds[1].revents().is_empty() {
                    return Err(Cancellable::cancelled());
                }
                if !fds[0].revents().is_empty() {
                    match rustix::io::read(&*fd, &mut *buf) {
                        Err(Errno::INTR | Errno::AGAIN) => {}
                        other => break other?,
                    }
                }
            },
        };
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::{Sniffed, sniff};

    #[test]
    fn context_stream_sniffs_like_docker() {
        assert_eq!(sniff(b"FROM scratch\n"), Sniffed::Text);
        assert_eq!(sniff(b""), Sniffed::Text);
        assert_eq!(sniff(&[0x1f, 0x8b, 0x08, 0]), Sniffed::Archive);
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd, 1]), Sniffed::Archive);
        assert_eq!(sniff(b"BZh91AY"), Sniffed::Archive);
        assert_eq!(sniff(b"PK\x03\x04rest"), Sniffed::Other("a zip archive"));
        assert_eq!(sniff(b"FROM\0"), Sniffed::Other("binary data"));
        // An all-zero block ends a tar before any entry: Docker does not take it for an archive.
        assert_eq!(sniff(&[0; 1024]), Sniffed::Other("binary data"));

        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_size(2);
        header.set_cksum();
        tar.append_data(&mut header, "a", &b"hi"[..]).unwrap();
        let bytes = tar.into_inner().unwrap();
        assert_eq!(sniff(&bytes), Sniffed::Archive);
        let mut corrupt = bytes.clone();
        corrupt[0] ^= 1; // the checksum no longer matches
        assert_eq!(sniff(&corrupt), Sniffed::Other("binary data"));
    }
}
