//! `save`: images to one tarball that both `docker load` and OCI tools read.
//!
//! The layout is the one Docker writes since version 25: an OCI image layout (`oci-layout`,
//! `index.json`, `blobs/sha256/<hex>`) plus Docker's `manifest.json` and `repositories`, whose
//! paths point into `blobs/`. Blobs are streamed from the content store as stored (pulled layers
//! compressed, built ones plain tars as `docker save` writes them; `docker load` and skopeo read
//! both), verified as they are read, and written
//! once however many images share them.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::time::Duration;

use super::ArchiveError;
use super::layout::{
    ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, Descriptor, DockerManifestEntry, INDEX_JSON, Index,
    MANIFEST_JSON, MEDIA_TYPE_INDEX, Manifest, OCI_LAYOUT, REPOSITORIES, blob_path, manifest_media_type,
    oci_layout_json,
};
use super::progress::{Meter, Metered, Reporter};
use crate::content::{BlobSource, Digest};
use crate::reference::ImageRef;
use crate::store::{Image, ImageStore, Lease};

/// How long a save may take before its leases lapse (they are released when it ends).
const SAVE_LEASE: Duration = Duration::from_secs(24 * 3600);

/// An image to save, and the names to record for it in the archive.
#[derive(Debug, Clone)]
pub struct SaveRequest {
    /// The image.
    pub image: Image,
    /// Names written to `index.json` and `manifest.json`'s `RepoTags`; empty to write none (as
    /// `docker save <ID>` does). Names with a digest and no tag are not written.
    pub names: Vec<ImageRef>,
}

/// What one image contributes to the archive.
struct Saved<'a> {
    request: &'a SaveRequest,
    manifest: Manifest,
    descriptor: Descriptor,
}

/// Writes `requests` to `out` as one tar stream, and returns `out`; each layer's bytes are
/// reported to `reporter` as they are written.
///
/// For an image whose name points to a multi-platform index, the platform manifest the store
/// uses is what gets saved. Fails if a blob is missing or corrupt, possibly after part of the
/// archive was written: the caller discards the output.
pub fn save<W: Write>(
    store: &ImageStore,
    requests: &[SaveRequest],
    out: W,
    reporter: &dyn Reporter,
) -> Result<W, ArchiveError> {
    let mut leases: Vec<Lease> = Vec::with_capacity(requests.len());
    let mut saved = Vec::with_capacity(requests.len());
    for request in requests {
        leases.push(store.lease_image(&request.image, SAVE_LEASE)?);
        let digest = &request.image.manifest;
        let bytes = store.content().read(digest)?;
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|source| ArchiveError::InvalidJson {
                entry: blob_path(digest),
                source,
            })?;
        let descriptor = Descriptor::new(manifest_media_type(&manifest), digest.clone(), bytes.len() as u64);
        saved.push(Saved {
            request,
            manifest,
            descriptor,
        });
    }
    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Deterministic);
    append_dir(&mut tar, "blobs/")?;
    append_dir(&mut tar, "blobs/sha256/")?;
    let mut written = HashSet::new();
    for item in &saved {
        let blobs = std::iter::once((&item.descriptor.digest, None))
            .chain(std::iter::once((&item.manifest.config.digest, None)))
            .chain(
                item.manifest
                    .layers
                    .iter()
                    .map(|layer| (&layer.digest, Some(reporter))),
            );
        for (digest, layer_reporter) in blobs {
            if written.insert(digest.clone()) {
                append_blob(&mut tar, store, digest, layer_reporter)?;
            }
        }
    }
    append_file(&mut tar, INDEX_JSON, &index_json(&saved))?;
    append_file(&mut tar, MANIFEST_JSON, &manifest_json(&saved))?;
    append_file(&mut tar, OCI_LAYOUT, &oci_layout_json())?;
    if let Some(repositories) = repositories_json(&saved) {
        append_file(&mut tar, REPOSITORIES, &repositories)?;
    }
    let out = tar.into_inner().map_err(ArchiveError::write)?;
    for lease in leases {
        lease.release()?;
    }
    Ok(out)
}

/// The names written for an image: those with a tag.
fn tagged(request: &SaveRequest) -> impl Iterator<Item = &ImageRef> {
    request.names.iter().filter(|name| name.tag().is_some())
}

fn index_json(saved: &[Saved<'_>]) -> Vec<u8> {
    let mut manifests = Vec::new();
    for item in saved {
        let mut named = false;
        for name in tagged(item.request) {
            let mut descriptor = item.descriptor.clone();
            descriptor.annotations = BTreeMap::from([
                (ANNOTATION_IMAGE_NAME.to_owned(), name.to_string()),
                (
                    ANNOTATION_REF_NAME.to_owned(),
                    name.tag().unwrap_or_default().to_owned(),
                ),
            ]);
            manifests.push(descriptor);
            named = true;
        }
        if !named {
            manifests.push(item.descriptor.clone());
        }
    }
    let index = Index {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_INDEX.to_owned()),
        manifests,
    };
    serde_json::to_vec(&index).expect("an index serialises")
}

fn manifest_json(saved: &[Saved<'_>]) -> Vec<u8> {
    let entries: Vec<DockerManifestEntry> = saved
        .iter()
        .map(|item| {
            let tags: Vec<String> = tagged(item.request).map(ImageRef::familiar_string).collect();
            DockerManifestEntry {
                config: blob_path(&item.manifest.config.digest),
                repo_tags: (!tags.is_empty()).then_some(tags),
                layers: item
                    .manifest
                    .layers
                    .iter()
                    .map(|layer| blob_path(&layer.digest))
                    .collect(),
            }
        })
        .collect();
    serde_json::to_vec(&entries).expect("manifest.json serialises")
}

/// Docker's legacy `repositories`: familiar repository → tag → the top layer's hex digest.
fn repositories_json(saved: &[Saved<'_>]) -> Option<Vec<u8>> {
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for item in saved {
        let Some(top) = item.manifest.layers.last() else {
            continue;
        };
        for name in tagged(item.request) {
            repositories.entry(name.familiar()).or_default().insert(
                name.tag().unwrap_or_default().to_owned(),
                top.digest.hex().to_owned(),
            );
        }
    }
    (!repositories.is_empty()).then(|| serde_json::to_vec(&repositories).expect("a map serialises"))
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header
}

fn append_dir<W: Write>(tar: &mut tar::Builder<W>, path: &str) -> Result<(), ArchiveError> {
    let mut header = header(tar::EntryType::Directory, 0o755, 0);
    tar.append_data(&mut header, path, std::io::empty())
        .map_err(ArchiveError::write)
}

fn append_file<W: Write>(tar: &mut tar::Builder<W>, path: &str, bytes: &[u8]) -> Result<(), ArchiveError> {
    let mut header = header(tar::EntryType::Regular, 0o644, bytes.len() as u64);
    tar.append_data(&mut header, path, bytes)
        .map_err(ArchiveError::write)
}

fn append_blob<W: Write>(
    tar: &mut tar::Builder<W>,
    store: &ImageStore,
    digest: &Digest,
    reporter: Option<&dyn Reporter>,
) -> Result<(), ArchiveError> {
    let size = store.content().size(digest)?;
    let mut header = header(tar::EntryType::Regular, 0o644, size);
    let reader = store.content().open(digest)?;
    let appended = match reporter {
        Some(reporter) => {
            let mut metered = Metered {
                inner: reader,
                meter: Meter::start(reporter, digest.short(), size),
            };
            let appended = tar.append_data(&mut header, blob_path(digest), &mut metered);
            if appended.is_ok() {
                metered.meter.done();
            }
            appended
        }
        None => tar.append_data(&mut header, blob_path(digest), reader),
    };
    appended.map_err(|error| match super::content_error(error) {
        // The reader verifies: a corrupt blob is the store's fault, not the output's.
        Ok(source) => ArchiveError::Corrupt {
            entry: blob_path(digest),
            source,
        },
        Err(error) => ArchiveError::write(error),
    })
}
