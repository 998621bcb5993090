//! Reading an archive in one pass into *staged* content: every blob verified into an ingest that
//! is not committed yet, so that a bad archive leaves nothing behind.
//!
//! Entries come in whatever order the writer chose (Docker writes blobs first and `manifest.json`
//! last; other tools differ), and the input may be a pipe, so nothing can wait for the metadata:
//!
//! - `blobs/sha256/<hex>` goes into an ingest that expects that digest and the header's size, and
//!   is checked the moment the entry ends;
//! - a small metadata file (`*.json`, `repositories`, `oci-layout`, a legacy `VERSION`) is kept in
//!   memory;
//! - anything else is taken for an uncompressed layer (`<id>/layer.tar`, skopeo's `<hex>.tar`) and
//!   gzip-compressed into an ingest while its diff_id is computed;
//! - symbolic and hard links are remembered (old `docker save` links repeated layers).
//!
//! Dropping a [`Staged`] drops its ingests, which removes their temp files.

use std::collections::HashMap;
use std::io::{self, Read, Write};

use super::ArchiveError;
use super::compress::gzip_layer;
use super::layout::blob_digest;
use super::progress::{Meter, Reporter};
use crate::content::{ContentError, ContentStore, Digest, Ingest};

/// The largest metadata file (manifest, config, index) read into memory.
pub(crate) const METADATA_LIMIT: u64 = 16 << 20;
/// How many links may be followed to reach a file.
const MAX_LINK_DEPTH: usize = 16;

/// An archive's content, read and verified, not yet in the store.
#[derive(Debug, Default)]
pub(crate) struct Staged {
    /// `blobs/sha256/<hex>` entries.
    blobs: HashMap<Digest, Ingest>,
    /// Other large entries, gzip-compressed.
    layers: HashMap<String, StagedLayer>,
    /// Small metadata entries.
    files: HashMap<String, Vec<u8>>,
    /// Links: path → the path it points to.
    links: HashMap<String, String>,
}

/// An uncompressed layer entry, compressed into an ingest.
#[derive(Debug)]
pub(crate) struct StagedLayer {
    /// The compressed blob being written.
    pub(crate) ingest: Ingest,
    /// The digest of the entry as it was in the archive.
    pub(crate) diff_id: Digest,
    /// The compressed blob's digest.
    pub(crate) digest: Digest,
    /// The compressed blob's size.
    pub(crate) size: u64,
}

/// What an archive path holds, once staged.
#[derive(Debug, Clone)]
pub(crate) enum Found {
    /// A blob-addressed entry.
    Blob(Digest),
    /// A compressed layer: its blob digest, size and diff_id.
    Layer {
        /// The compressed blob.
        digest: Digest,
        /// Its size.
        size: u64,
        /// The uncompressed digest.
        diff_id: Digest,
    },
    /// A metadata file in memory.
    File,
}

impl Staged {
    /// Reads a whole (decompressed) tar stream, staging its content under `content`, and
    /// reports each layer's bytes to `reporter` as they are staged.
    pub(crate) fn read(
        content: &ContentStore,
        input: impl Read,
        reporter: &dyn Reporter,
    ) -> Result<Staged, ArchiveError> {
        let mut staged = Staged::default();
        let mut archive = tar::Archive::new(input);
        for entry in archive.entries().map_err(ArchiveError::read)? {
            let mut entry = entry.map_err(ArchiveError::read)?;
            let path = normalize(&entry.path().map_err(ArchiveError::read)?.to_string_lossy());
            let kind = entry.header().entry_type();
            if kind.is_symlink() || kind.is_hard_link() {
                let target = entry
                    .link_name()
                    .map_err(ArchiveError::read)?
                    .map(|name| name.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let target = if kind.is_symlink() && !target.starts_with('/') {
                    normalize(&format!("{}/{target}", parent(&path)))
                } else {
                    normalize(&target)
                };
                staged.links.insert(path, target);
            } else if kind.is_file() || kind.is_contiguous() {
                staged.stage_file(content, &path, &mut entry, reporter)?;
            }
        }
        Ok(staged)
    }

    fn stage_file<R: Read>(
        &mut self,
        content: &ContentStore,
        path: &str,
        entry: &mut tar::Entry<'_, R>,
        reporter: &dyn Reporter,
    ) -> Result<(), ArchiveError> {
        // The header's declared size: a stream that ends early must not pass for a short file.
        let size = entry.size();
        if let Some(digest) = blob_digest(path) {
            if self.blobs.contains_key(&digest) {
                copy(entry, &mut io::sink(), path, size, "", None)?;
                return Ok(());
            }
            let mut ingest = content.ingest(Some((digest.clone(), size)))?;
            let temp = ingest.temp_path().display().to_string();
            let watch = Watch {
                reporter,
                id: digest.short().to_owned(),
                sniff: true,
            };
            let meter = copy(entry, &mut ingest, path, size, &temp, Some(watch))?;
            let actual = ingest.digest();
            if actual != digest {
                let source = ContentError::DigestMismatch {
                    expected: digest,
                    actual,
                };
                return Err(ArchiveError::Corrupt {
                    entry: path.to_owned(),
                    source,
                });
            }
            ingest
                .flush()
                .map_err(|e| ContentError::io("write ingest", &temp, e))?;
            if let Some(meter) = meter {
                meter.done();
            }
            self.blobs.insert(digest, ingest);
        } else if is_metadata(path) {
            if size > METADATA_LIMIT {
                return Err(ArchiveError::TooLarge {
                    entry: path.to_owned(),
                    size,
                    limit: METADATA_LIMIT,
                });
            }
            let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            copy(entry, &mut bytes, path, size, "", None)?;
            self.files.insert(path.to_owned(), bytes);
        } else {
            let ingest = content.ingest(None)?;
            let temp = ingest.temp_path().display().to_string();
            let mut layer = gzip_layer(ingest).map_err(|e| ContentError::io("write ingest", &temp, e))?;
            let watch = Watch {
                reporter,
                id: layer_id(path),
                sniff: false,
            };
            let meter = copy(entry, &mut layer, path, size, &temp, Some(watch))?;
            let (descriptor, mut ingest) = layer
                .finish()
                .map_err(|e| ContentError::io("write ingest", &temp, e))?;
            let diff_id = descriptor.diff_id;
            ingest
                .flush()
                .map_err(|e| ContentError::io("write ingest", &temp, e))?;
            let (digest, size) = (ingest.digest(), ingest.written());
            if let Some(meter) = meter {
                meter.done();
            }
            self.layers.insert(
                path.to_owned(),
                StagedLayer {
                    ingest,
                    diff_id,
                    digest,
                    size,
                },
            );
        }
        Ok(())
    }

    /// Follows links from `path` to the entry that holds the bytes.
    pub(crate) fn resolve<'a>(&'a self, mut path: &'a str) -> &'a str {
        for _ in 0..MAX_LINK_DEPTH {
            match self.links.get(path) {
                Some(target) => path = target,
                None => break,
            }
        }
        path
    }

    /// What `path` (normalised, links followed) holds, if the archive has it.
    pub(crate) fn find(&self, path: &str) -> Option<Found> {
        let path = self.resolve(path);
        if let Some(digest) = blob_digest(path) {
            return self.blobs.contains_key(&digest).then_some(Found::Blob(digest));
        }
        if let Some(layer) = self.layers.get(path) {
            return Some(Found::Layer {
                digest: layer.digest.clone(),
                size: layer.size,
                diff_id: layer.diff_id.clone(),
            });
        }
        self.files.contains_key(path).then_some(Found::File)
    }

    /// Whether the archive has a metadata file at `path`.
    pub(crate) fn has_file(&self, path: &str) -> bool {
        self.files.contains_key(self.resolve(path))
    }

    /// The bytes of a metadata file or a (small) blob entry at `path`.
    pub(crate) fn read_small(&self, path: &str) -> Result<Option<Vec<u8>>, ArchiveError> {
        let path = normalize(path);
        let resolved = self.resolve(&path);
        if let Some(bytes) = self.files.get(resolved) {
            return Ok(Some(bytes.clone()));
        }
        match blob_digest(resolved) {
            Some(digest) if self.blobs.contains_key(&digest) => self.blob_bytes(&digest).map(Some),
            _ => Ok(None),
        }
    }

    /// Whether a blob entry with this digest was staged.
    pub(crate) fn has_blob(&self, digest: &Digest) -> bool {
        self.blobs.contains_key(digest)
    }

    /// A staged blob's size.
    pub(crate) fn blob_size(&self, digest: &Digest) -> u64 {
        self.blobs[digest].written()
    }

    /// A staged blob's bytes, for manifests, indexes and configs (bounded by [`METADATA_LIMIT`]).
    pub(crate) fn blob_bytes(&self, digest: &Digest) -> Result<Vec<u8>, ArchiveError> {
        let ingest = &self.blobs[digest];
        if ingest.written() > METADATA_LIMIT {
            return Err(ArchiveError::TooLarge {
                entry: super::layout::blob_path(digest),
                size: ingest.written(),
                limit: METADATA_LIMIT,
            });
        }
        let path = ingest.temp_path();
        Ok(std::fs::read(path).map_err(|e| ContentError::io("read ingest", path, e))?)
    }

    /// The first bytes of a staged blob (enough to tell its compression).
    pub(crate) fn blob_head(&self, digest: &Digest) -> Result<Vec<u8>, ArchiveError> {
        let path = self.blobs[digest].temp_path();
        let mut head = Vec::with_capacity(4);
        std::fs::File::open(path)
            .and_then(|file| file.take(4).read_to_end(&mut head))
            .map_err(|e| ContentError::io("read ingest", path, e))?;
        Ok(head)
    }

    /// Removes and returns the ingest of a blob entry.
    pub(crate) fn take_blob(&mut self, digest: &Digest) -> Option<Ingest> {
        self.blobs.remove(digest)
    }

    /// Removes and returns the compressed layer staged from `path`.
    pub(crate) fn take_layer(&mut self, path: &str) -> Option<StagedLayer> {
        let path = self.resolve(path).to_owned();
        self.layers.remove(&path)
    }
}

/// An entry whose bytes are reported as a layer's.
struct Watch<'r> {
    reporter: &'r dyn Reporter,
    /// The layer's short ID.
    id: String,
    /// Whether the entry may not be a layer: a `blobs/` entry might be a config, manifest or
    /// index, which start with `{` (JSON) where no layer does (tar, gzip or zstd), and which
    /// Docker does not show.
    sniff: bool,
}

/// Copies an entry's bytes to `sink`, failing if the input ends before the header's `size`.
/// `temp` names the sink's file for write errors. A watched layer's bytes are reported on a
/// [`Meter`], returned for the caller to report done once the entry is verified.
fn copy<'r>(
    entry: &mut impl Read,
    sink: &mut impl Write,
    path: &str,
    size: u64,
    temp: &str,
    mut watch: Option<Watch<'r>>,
) -> Result<Option<Meter<'r>>, ArchiveError> {
    let mut buf = vec![0; 64 * 1024];
    let mut copied = 0;
    let mut meter = None;
    loop {
        let n = match entry.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ArchiveError::read(e)),
        };
        sink.write_all(&buf[..n])
            .map_err(|e| write_error(e, path, temp))?;
        copied += n as u64;
        if let Some(watch) = watch.take().filter(|watch| !(watch.sniff && buf[0] == b'{')) {
            meter = Some(Meter::start(watch.reporter, &watch.id, size));
        }
        if let Some(meter) = &mut meter {
            meter.advance(n);
        }
    }
    if copied != size {
        return Err(ArchiveError::Truncated {
            entry: path.to_owned(),
            expected: size,
            actual: copied,
        });
    }
    Ok(meter)
}

/// The short ID of a layer entry outside `blobs/`: the directory of an old `docker save`'s
/// `<id>/layer.tar`, or the name of skopeo's `<hex>.tar`, cut to 12 characters as Docker shows.
fn layer_id(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    let id = if name == "layer.tar" {
        parent(path).rsplit('/').next().unwrap_or(name)
    } else {
        name.strip_suffix(".tar").unwrap_or(name)
    };
    id.chars().take(12).collect()
}

/// An ingest refusing more bytes than expected is the archive's fault; anything else the disk's.
fn write_error(error: io::Error, path: &str, temp: &str) -> ArchiveError {
    match super::content_error(error) {
        Ok(source) => ArchiveError::Corrupt {
            entry: path.to_owned(),
            source,
        },
        Err(error) => ArchiveError::Content(ContentError::io("write ingest", temp, error)),
    }
}

/// Whether a non-blob entry is metadata kept in memory rather than a layer.
fn is_metadata(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let json = std::path::Path::new(name)
        .extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("json"));
    json || matches!(name, "repositories" | "oci-layout" | "json" | "VERSION")
}

/// The directory part of a normalised path ("" at the top).
fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// An archive path in canonical form: no leading `/` or `./`, no `.` or empty components, `..`
/// applied (and never above the top).
pub(crate) fn normalize(path: &str) -> String {
    crate::fsroot::clean(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalise_as_archive_writers_spell_them() {
        assert_eq!(normalize("./blobs/sha256/ab"), "blobs/sha256/ab");
        assert_eq!(normalize("/a//b/./c"), "a/b/c");
        assert_eq!(normalize("a/../../b/layer.tar"), "b/layer.tar");
        assert_eq!(parent("a/b/layer.tar"), "a/b");
        assert_eq!(parent("manifest.json"), "");
        assert_eq!(layer_id("0123456789abcdef/layer.tar"), "0123456789ab");
        assert_eq!(layer_id("fedcba9876543210fedc.tar"), "fedcba987654");
    }
}
