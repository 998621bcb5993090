//! Writing one blob: hash while writing to a temp file, verify, fsync, rename into place.

use std::fs::{self, File, Permissions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tempfile::NamedTempFile;

use super::{BlobInfo, ContentError, Digest, Digester};

/// Committed blobs are read-only: nothing may change a file whose name is its hash.
const BLOB_MODE: u32 = 0o444;

/// An unfinished blob write, made by [`ContentStore::ingest`](super::ContentStore::ingest).
///
/// Bytes written go to a fresh file under `ingest-v1/` and through a sha256 [`Digester`].
/// [`commit`](Ingest::commit) checks them against the expected size and digest, then moves the file
/// to `blobs/sha256/<hex>`. Dropping an `Ingest` without committing removes its temp file, so a failed
/// or abandoned download leaves nothing behind (a crash does: see
/// [`ContentStore::cleanup_ingests`](super::ContentStore::cleanup_ingests)).
///
/// Writing more bytes than the expected size fails at once, so a lying source cannot fill the disk.
#[derive(Debug)]
pub struct Ingest {
    file: BufWriter<NamedTempFile>,
    digester: Digester,
    expected: Option<(Digest, u64)>,
    blobs: PathBuf,
}

impl Ingest {
    pub(super) fn new(file: NamedTempFile, expected: Option<(Digest, u64)>, blobs: PathBuf) -> Ingest {
        Ingest {
            file: BufWriter::with_capacity(64 * 1024, file),
            digester: Digester::new(),
            expected,
            blobs,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.digester.len()
    }

    /// The digest of the bytes written so far.
    ///
    /// Writers that must keep the blob from the garbage collector add this digest to a lease
    /// *before* committing (see the store's GC protocol).
    pub fn digest(&self) -> Digest {
        self.digester.peek()
    }

    /// The temp file being written.
    pub fn temp_path(&self) -> &Path {
        self.file.get_ref().path()
    }

    /// Verifies the content and moves it into the store.
    ///
    /// A blob that is already stored is success: the content is identical by construction, and
    /// the existing file's mtime is refreshed so the GC grace period counts from now (an existing
    /// file of the wrong size is damaged and gets replaced). On a size or
    /// digest mismatch nothing is stored and the temp file is removed.
    pub fn commit(self) -> Result<BlobInfo, ContentError> {
        let Ingest {
            file,
            digester,
            expected,
            blobs,
        } = self;
        let temp = file.into_inner().map_err(|e| {
            let (error, file) = e.into_parts();
            ContentError::io("write ingest", file.get_ref().path(), error)
        })?;
        let size = digester.len();
        let digest = digester.finish();
        if let Some((expected_digest, expected_size)) = expected {
            if size != expected_size {
                return Err(ContentError::SizeMismatch {
                    digest: expected_digest,
                    expected: expected_size,
                    actual: size,
                });
            }
            if digest != expected_digest {
                return Err(ContentError::DigestMismatch {
                    expected: expected_digest,
                    actual: digest,
                });
            }
        }
        let target = blobs.join(digest.hex());
        if touch_if_sized(&target, size) {
            return Ok(BlobInfo { digest, size });
        }
        let temp_path = temp.path().to_owned();
        temp.as_file()
            .sync_all()
            .map_err(|e| ContentError::io("fsync ingest", &temp_path, e))?;
        fs::set_permissions(&temp_path, Permissions::from_mode(BLOB_MODE))
            .map_err(|e| ContentError::io("chmod ingest", &temp_path, e))?;
        // rename(2) replaces atomically; if another writer got there first, its file had the same bytes.
        temp.persist(&target)
            .map_err(|e| ContentError::io("rename ingest to", &target, e.error))?;
        sync_dir(&blobs)?;
        Ok(BlobInfo { digest, size })
    }
}

/// Refreshes the mtime of an existing blob of the right size; false if there is none. A blob
/// of the wrong size was truncated or damaged: it is replaced by the verified new copy.
fn touch_if_sized(path: &Path, size: u64) -> bool {
    let Ok(file) = File::open(path) else { return false };
    if !file.metadata().is_ok_and(|m| m.len() == size) {
        return false;
    }
    // Best effort: the mtime only widens the GC grace window; leases are the guarantee.
    let _ = file.set_modified(SystemTime::now());
    true
}

/// Makes a rename in `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), ContentError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ContentError::io("fsync directory", dir, e))
}

impl Write for Ingest {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some((digest, expected)) = &self.expected {
            let actual = self.digester.len() + buf.len() as u64;
            if actual > *expected {
                let error = ContentError::SizeMismatch {
                    digest: digest.clone(),
                    expected: *expected,
                    actual,
                };
                return Err(io::Error::new(io::ErrorKind::InvalidData, error));
            }
        }
        let n = self.file.write(buf)?;
        self.digester.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}
