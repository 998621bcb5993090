//! The local content store: verified blobs on disk, named by digest.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::ingest::sync_dir;
use super::{BlobInfo, BlobSource, ContentError, Digest, Ingest, VerifiedReader};

/// Blobs live here, relative to the store root, one file per blob named by its hex digest.
const BLOBS_DIR: &str = "blobs/sha256";
/// Unfinished writes. Versioned like every kiln directory so a future layout can live beside it.
const INGEST_DIR: &str = "ingest-v1";

/// Blobs on local disk under `<root>/blobs/sha256/<hex>`, written through [`Ingest`]s.
///
/// The store keeps no index: the directory is the truth, and a blob is there exactly when its
/// verified file is. It is cheap to clone and safe to share between threads and processes:
/// every write is a rename of a complete, fsynced file.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
    blobs: PathBuf,
    ingests: PathBuf,
}

/// A blob as listed by [`ContentStore::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    /// Digest and size.
    pub info: BlobInfo,
    /// When the blob was last written or re-ingested (the GC grace period counts from this).
    pub modified: SystemTime,
}

impl ContentStore {
    /// Opens (creating if needed) the content store under `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<ContentStore, ContentError> {
        let root = root.into();
        let blobs = root.join(BLOBS_DIR);
        let ingests = root.join(INGEST_DIR);
        for dir in [&blobs, &ingests] {
            fs::create_dir_all(dir).map_err(|e| ContentError::io("create directory", dir, e))?;
        }
        Ok(ContentStore { root, blobs, ingests })
    }

    /// The root directory the store was opened on.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with this digest is (or would be) stored.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    /// Starts writing a blob; pass the digest and size when they are known (a pull always knows).
    pub fn ingest(&self, expected: Option<(Digest, u64)>) -> Result<Ingest, ContentError> {
        let file = tempfile::Builder::new()
            .prefix("ingest-")
            .tempfile_in(&self.ingests)
            .map_err(|e| ContentError::io("create ingest in", &self.ingests, e))?;
        Ok(Ingest::new(file, expected, self.blobs.clone()))
    }

    /// Stores `bytes` as a blob (one ingest, committed).
    pub fn write_blob(&self, bytes: &[u8]) -> Result<BlobInfo, ContentError> {
        use std::io::Write as _;
        let mut ingest = self.ingest(None)?;
        let path = ingest.temp_path().to_owned();
        ingest
            .write_all(bytes)
            .map_err(|e| ContentError::io("write ingest", path, e))?;
        ingest.commit()
    }

    /// Whether the blob is stored.
    pub fn exists(&self, digest: &Digest) -> Result<bool, ContentError> {
        let path = self.blob_path(digest);
        path.try_exists()
            .map_err(|e| ContentError::io("stat blob", path, e))
    }

    /// Reads a whole blob into memory, verified. Meant for manifests and configs, not layers.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>, ContentError> {
        let mut bytes = Vec::new();
        self.open(digest)?
            .read_to_end(&mut bytes)
            .map_err(|e| read_error(e, &self.blob_path(digest)))?;
        Ok(bytes)
    }

    /// Removes a blob. Readers that already opened it keep reading the intact content.
    ///
    /// Only the garbage collector should call this on a shared store: it knows what is referenced.
    pub fn delete(&self, digest: &Digest) -> Result<(), ContentError> {
        let path = self.blob_path(digest);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ContentError::NotFound {
                digest: digest.clone(),
            }),
            Err(e) => Err(ContentError::io("remove blob", path, e)),
        }
    }

    /// Every stored blob, in digest order. Files whose name is not a digest are not blobs and are
    /// left out (and left alone).
    pub fn list(&self) -> Result<Vec<StoredBlob>, ContentError> {
        let entries = fs::read_dir(&self.blobs).map_err(|e| ContentError::io("list", &self.blobs, e))?;
        let mut blobs = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| ContentError::io("list", &self.blobs, e))?;
            let Some(digest) = entry
                .file_name()
                .to_str()
                .and_then(|name| Digest::from_hex(name).ok())
            else {
                continue;
            };
            let metadata = match entry.metadata() {
                Ok(metadata) => metadata,
                // Deleted between readdir and stat by a concurrent GC: not there any more.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(ContentError::io("stat blob", entry.path(), e)),
            };
            let modified = metadata
                .modified()
                .map_err(|e| ContentError::io("stat blob", entry.path(), e))?;
            blobs.push(StoredBlob {
                info: BlobInfo {
                    digest,
                    size: metadata.len(),
                },
                modified,
            });
        }
        blobs.sort_by(|a, b| a.info.digest.cmp(&b.info.digest));
        Ok(blobs)
    }

    /// Removes ingest files not written to for `older_than`: leftovers of crashed writers (a
    /// live ingest's mtime moves with every write). Returns how many were removed.
    pub fn cleanup_ingests(&self, older_than: Duration) -> Result<usize, ContentError> {
        let now = SystemTime::now();
        let entries = fs::read_dir(&self.ingests).map_err(|e| ContentError::io("list", &self.ingests, e))?;
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(|e| ContentError::io("list", &self.ingests, e))?;
            let Ok(modified) = entry.metadata().and_then(|m| m.modified()) else {
                continue; // gone already: its writer committed or dropped it
            };
            if now.duration_since(modified).unwrap_or_default() < older_than {
                continue;
            }
            match fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(ContentError::io("remove stale ingest", entry.path(), e)),
            }
        }
        if removed > 0 {
            sync_dir(&self.ingests)?;
        }
        Ok(removed)
    }
}

/// Turns a read error back into the [`ContentError`] a [`VerifiedReader`] wrapped, if it is one.
fn read_error(error: io::Error, path: &Path) -> ContentError {
    if !error
        .get_ref()
        .is_some_and(<dyn std::error::Error + Send + Sync>::is::<ContentError>)
    {
        return ContentError::io("read blob", path, error);
    }
    match error
        .into_inner()
        .map(<dyn std::error::Error + Send + Sync>::downcast::<ContentError>)
    {
        Some(Ok(inner)) => *inner,
        _ => unreachable!("the inner error was checked to be a ContentError"),
    }
}

impl BlobSource for ContentStore {
    fn open(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, ContentError> {
        let path = self.blob_path(digest);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ContentError::NotFound {
                    digest: digest.clone(),
                });
            }
            Err(e) => return Err(ContentError::io("open blob", path, e)),
        };
        let size = file
            .metadata()
            .map_err(|e| ContentError::io("stat blob", &path, e))?
            .len();
        // The size check is against the file itself: it catches nothing a digest would miss, but
        // the digest is what tells a truncated or altered blob apart from the real one.
        Ok(Box::new(VerifiedReader::new(file, digest.clone(), Some(size))))
    }

    fn stat(&self, digest: &Digest) -> Result<BlobInfo, ContentError> {
        let path = self.blob_path(digest);
        match fs::metadata(&path) {
            Ok(metadata) => Ok(BlobInfo {
                digest: digest.clone(),
                size: metadata.len(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ContentError::NotFound {
                digest: digest.clone(),
            }),
            Err(e) => Err(ContentError::io("stat blob", path, e)),
        }
    }
}
