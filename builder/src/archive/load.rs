//! `load`: images from a `docker save` tarball (any version) or an OCI archive into the store.
//!
//! The archive is first staged ([`Staged`]): every blob verified into an uncommitted ingest.
//! Then a plan is made per image, from `index.json` when there is one (OCI archives, and Docker
//! 25+ which writes both) and else from `manifest.json` (older Docker, skopeo's docker-archive),
//! and checked to be complete. Only then is anything committed: each blob is added to a lease
//! before its ingest is committed, and the images are named. Any failure before that point
//! drops the ingests, and the store is as it was.

use std::collections::HashSet;
use std::io::Read;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::ArchiveError;
use super::compress::decompress;
use super::layout::{
    ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, ConfigRootfs, Descriptor, DockerManifestEntry, INDEX_JSON,
    Index, Kind, MANIFEST_JSON, MEDIA_TYPE_CONFIG, MEDIA_TYPE_LAYER_TAR, MEDIA_TYPE_MANIFEST, Manifest,
    blob_digest, blob_path, kind_of, sniff_layer_media_type,
};
use super::progress::Reporter;
use super::stage::{Found, Staged};
use crate::content::{ContentStore, Digest};
use crate::reference::ImageRef;
use crate::store::{Image, ImageStore, Lease};

/// How long a load may take before its lease lapses (it is released as soon as the load ends).
const LOAD_LEASE: Duration = Duration::from_secs(24 * 3600);
/// How deep indexes may nest.
const MAX_INDEX_DEPTH: usize = 4;

/// An image an archive held, now in the store.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The image as stored.
    pub image: Image,
    /// The names the archive gave it; empty when it gave none (the image is then dangling).
    pub names: Vec<ImageRef>,
}

/// Loads every image of a `docker save` tarball or OCI archive (plain, gzip or zstd compressed).
///
/// Every blob is digest-verified, and for Docker's uncompressed layers the diff_id is checked
/// against the config; layers that arrive uncompressed outside an OCI layout are stored
/// gzip-compressed. On any error nothing is stored. Each layer's bytes are reported to
/// `reporter` as they are read and verified.
pub fn load(
    store: &ImageStore,
    input: impl Read + Send,
    reporter: &dyn Reporter,
) -> Result<Vec<Loaded>, ArchiveError> {
    let mut staged = Staged::read(store.content(), decompress(input)?, reporter)?;
    let mut plans = if staged.has_file(INDEX_JSON) {
        let mut plans = plan_oci(&staged, store.content())?;
        if staged.has_file(MANIFEST_JSON) {
            add_docker_names(&staged, &mut plans)?;
        }
        plans
    } else if staged.has_file(MANIFEST_JSON) {
        plan_docker(&staged)?
    } else {
        return Err(ArchiveError::NotAnImageArchive);
    };
    if plans.is_empty() {
        return Err(ArchiveError::Empty);
    }
    let lease = store.lease(LOAD_LEASE)?;
    commit(store.content(), &lease, &mut staged, &plans)?;
    let mut loaded = Vec::with_capacity(plans.len());
    for plan in &mut plans {
        dedup(&mut plan.names);
        let image = store.put_image_or_dangling(&plan.names, &plan.target)?;
        loaded.push(Loaded {
            image,
            names: std::mem::take(&mut plan.names),
        });
    }
    lease.release()?;
    Ok(loaded)
}

/// One image to store: its manifest or index, its names, and the blobs it needs.
#[derive(Debug)]
struct Plan {
    /// The manifest or index bytes the names will point to.
    target: Vec<u8>,
    /// Its digest.
    digest: Digest,
    /// The config, when the target is a manifest (to match `manifest.json` entries).
    config: Option<Digest>,
    names: Vec<ImageRef>,
    needs: Vec<Need>,
}

/// A blob an image needs, by where it comes from.
#[derive(Debug)]
enum Need {
    /// A blob entry, or a blob already in the store.
    Blob(Digest),
    /// An uncompressed layer entry, compressed while staged.
    Layer(String),
    /// A config read from a non-blob entry (old `<id>.json`).
    Bytes(Vec<u8>),
}

fn parse<T: DeserializeOwned>(entry: &str, bytes: &[u8]) -> Result<T, ArchiveError> {
    serde_json::from_slice(bytes).map_err(|source| ArchiveError::InvalidJson {
        entry: entry.to_owned(),
        source,
    })
}

fn parse_name(name: &str) -> Result<ImageRef, ArchiveError> {
    ImageRef::parse(name).map_err(|source| ArchiveError::InvalidName {
        name: name.to_owned(),
        source,
    })
}

fn dedup(names: &mut Vec<ImageRef>) {
    let mut seen = HashSet::new();
    names.retain(|name| seen.insert(name.clone()));
}

/// The names an `index.json` entry gives its image.
fn names_of(descriptor: &Descriptor) -> Result<Vec<ImageRef>, ArchiveError> {
    if let Some(name) = descriptor.annotations.get(ANNOTATION_IMAGE_NAME) {
        return Ok(vec![parse_name(name)?]);
    }
    match descriptor.annotations.get(ANNOTATION_REF_NAME) {
        // Docker and containerd put a bare tag here, and the name in the annotation above;
        // skopeo and podman put the whole name. A bare tag names no repository: no name.
        Some(name) if name.contains(['/', ':', '@']) => Ok(vec![parse_name(name)?]),
        _ => Ok(Vec::new()),
    }
}

/// Reads a manifest-or-index blob from the archive, or else from the store.
fn blob_bytes(
    staged: &Staged,
    content: &ContentStore,
    digest: &Digest,
) -> Result<Option<Vec<u8>>, ArchiveError> {
    if staged.has_blob(digest) {
        return staged.blob_bytes(digest).map(Some);
    }
    if content.exists(digest)? {
        return Ok(Some(content.read(digest)?));
    }
    Ok(None)
}

fn plan_oci(staged: &Staged, content: &ContentStore) -> Result<Vec<Plan>, ArchiveError> {
    let bytes = staged.read_small(INDEX_JSON)?.unwrap_or_default();
    let index: Index = parse(INDEX_JSON, &bytes)?;
    let mut plans: Vec<Plan> = Vec::new();
    for descriptor in &index.manifests {
        let names = names_of(descriptor)?;
        if let Some(plan) = plans.iter_mut().find(|plan| plan.digest == descriptor.digest) {
            plan.names.extend(names);
            continue;
        }
        let digest = descriptor.digest.clone();
        let target = blob_bytes(staged, content, &digest)?.ok_or_else(|| ArchiveError::Missing {
            referrer: INDEX_JSON.to_owned(),
            entry: blob_path(&digest),
        })?;
        let mut needs = Vec::new();
        let config = walk(staged, content, &digest, &target, &mut needs, 0)?;
        plans.push(Plan {
            target,
            digest,
            config,
            names,
            needs,
        });
    }
    Ok(plans)
}

/// Collects what the manifest or index `digest` needs, checking it is all there. Returns the
/// config digest of a manifest.
fn walk(
    staged: &Staged,
    content: &ContentStore,
    digest: &Digest,
    bytes: &[u8],
    needs: &mut Vec<Need>,
    depth: usize,
) -> Result<Option<Digest>, ArchiveError> {
    let entry = blob_path(digest);
    needs.push(Need::Blob(digest.clone()));
    let kind = kind_of(bytes).map_err(|source| ArchiveError::InvalidJson {
        entry: entry.clone(),
        source,
    })?;
    if kind == Kind::Index {
        let index: Index = parse(&entry, bytes)?;
        let mut found = false;
        for child in &index.manifests {
            // An index may list platforms the archive does not carry; those are skipped.
            let Some(child_bytes) = blob_bytes(staged, content, &child.digest)? else {
                continue;
            };
            if depth < MAX_INDEX_DEPTH {
                walk(staged, content, &child.digest, &child_bytes, needs, depth + 1)?;
                found = true;
            }
        }
        if !found {
            return Err(ArchiveError::Missing {
                referrer: entry,
                entry: "any of its manifests".to_owned(),
            });
        }
        return Ok(None);
    }
    let manifest: Manifest = parse(&entry, bytes)?;
    for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
        if !staged.has_blob(&blob.digest) && !content.exists(&blob.digest)? {
            return Err(ArchiveError::Missing {
                referrer: entry,
                entry: blob_path(&blob.digest),
            });
        }
        needs.push(Need::Blob(blob.digest.clone()));
    }
    let config_entry = blob_path(&manifest.config.digest);
    let config = blob_bytes(staged, content, &manifest.config.digest)?.unwrap_or_default();
    let rootfs: ConfigRootfs = parse(&config_entry, &config)?;
    if rootfs.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(ArchiveError::LayerCount {
            config: config_entry,
            referrer: entry,
            layers: manifest.layers.len(),
            diff_ids: rootfs.rootfs.diff_ids.len(),
        });
    }
    Ok(Some(manifest.config.digest))
}

fn docker_entries(staged: &Staged) -> Result<Vec<DockerManifestEntry>, ArchiveError> {
    let bytes = staged.read_small(MANIFEST_JSON)?.unwrap_or_default();
    parse(MANIFEST_JSON, &bytes)
}

fn repo_tags(entry: &DockerManifestEntry) -> Result<Vec<ImageRef>, ArchiveError> {
    entry
        .repo_tags
        .iter()
        .flatten()
        .map(|name| parse_name(name))
        .collect()
}

/// Adds the `RepoTags` of `manifest.json` to the OCI images with the same config.
fn add_docker_names(staged: &Staged, plans: &mut [Plan]) -> Result<(), ArchiveError> {
    for entry in docker_entries(staged)? {
        let config = match blob_digest(&super::stage::normalize(&entry.config)) {
            Some(digest) => digest,
            None => match staged.read_small(&entry.config)? {
                Some(bytes) => Digest::of(&bytes),
                None => continue,
            },
        };
        let names = repo_tags(&entry)?;
        if let Some(plan) = plans
            .iter_mut()
            .find(|plan| plan.config.as_ref() == Some(&config))
        {
            plan.names.extend(names);
        }
    }
    Ok(())
}

fn plan_docker(staged: &Staged) -> Result<Vec<Plan>, ArchiveError> {
    let mut plans = Vec::new();
    for entry in docker_entries(staged)? {
        let missing = |path: &str| ArchiveError::Missing {
            referrer: MANIFEST_JSON.to_owned(),
            entry: path.to_owned(),
        };
        let config_path = super::stage::normalize(&entry.config);
        let config = staged
            .read_small(&config_path)?
            .ok_or_else(|| missing(&config_path))?;
        let config_digest = Digest::of(&config);
        let rootfs: ConfigRootfs = parse(&config_path, &config)?;
        let diff_ids = rootfs.rootfs.diff_ids;
        if diff_ids.len() != entry.layers.len() {
            return Err(ArchiveError::LayerCount {
                config: config_path,
                referrer: MANIFEST_JSON.to_owned(),
                layers: entry.layers.len(),
                diff_ids: diff_ids.len(),
            });
        }
        let mut needs = Vec::new();
        let mut layers = Vec::new();
        for (path, expected) in entry.layers.iter().zip(&diff_ids) {
            let path = super::stage::normalize(path);
            let mismatch = |actual: &Digest| ArchiveError::DiffIdMismatch {
                entry: path.clone(),
                expected: expected.clone(),
                actual: actual.clone(),
            };
            match staged.find(&path).ok_or_else(|| missing(&path))? {
                Found::Blob(digest) => {
                    let media_type = sniff_layer_media_type(&staged.blob_head(&digest)?);
                    if media_type == MEDIA_TYPE_LAYER_TAR && &digest != expected {
                        return Err(mismatch(&digest));
                    }
                    layers.push(Descriptor::new(
                        media_type,
                        digest.clone(),
                        staged.blob_size(&digest),
                    ));
                    needs.push(Need::Blob(digest));
                }
                Found::Layer {
                    digest,
                    size,
                    diff_id,
                } => {
                    if &diff_id != expected {
                        return Err(mismatch(&diff_id));
                    }
                    layers.push(Descriptor::new(
                        super::layout::MEDIA_TYPE_LAYER_GZIP,
                        digest,
                        size,
                    ));
                    needs.push(Need::Layer(path.clone()));
                }
                Found::File => return Err(missing(&path)),
            }
        }
        let config_descriptor =
            Descriptor::new(MEDIA_TYPE_CONFIG, config_digest.clone(), config.len() as u64);
        needs.push(match blob_digest(&config_path) {
            Some(digest) => Need::Blob(digest),
            None => Need::Bytes(config),
        });
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_MANIFEST.to_owned()),
            config: config_descriptor,
            layers,
        };
        let target = serde_json::to_vec(&manifest).expect("a manifest serialises");
        plans.push(Plan {
            digest: Digest::of(&target),
            target,
            config: Some(config_digest),
            names: repo_tags(&entry)?,
            needs,
        });
    }
    Ok(plans)
}

/// Commits what the plans need, each blob leased before its ingest is committed.
fn commit(
    content: &ContentStore,
    lease: &Lease,
    staged: &mut Staged,
    plans: &[Plan],
) -> Result<(), ArchiveError> {
    let mut done: HashSet<Digest> = HashSet::new();
    for need in plans.iter().flat_map(|plan| &plan.needs) {
        match need {
            Need::Blob(digest) => {
                if !done.insert(digest.clone()) {
                    continue;
                }
                lease.add(digest)?;
                match staged.take_blob(digest) {
                    Some(ingest) => {
                        ingest.commit()?;
                    }
                    // Planned as already stored; the lease now holds it, if it is still there.
                    None if content.exists(digest)? => {}
                    None => {
                        return Err(ArchiveError::Missing {
                            referrer: "the image".to_owned(),
                            entry: blob_path(digest),
                        });
                    }
                }
            }
            Need::Layer(path) => {
                let Some(layer) = staged.take_layer(path) else {
                    continue;
                };
                lease.add(&layer.digest)?;
                done.insert(layer.digest);
                layer.ingest.commit()?;
            }
            Need::Bytes(bytes) => {
                let digest = Digest::of(bytes);
                if done.insert(digest.clone()) {
                    lease.add(&digest)?;
                    content.write_blob(bytes)?;
                }
            }
        }
    }
    Ok(())
}
