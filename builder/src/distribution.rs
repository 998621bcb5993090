//! Pulling images into the image store and pushing them out of it.
//!
//! The [`registry`](crate::registry) client knows blobs and manifests, the [`store`](crate::store) knows named images;
//! this module joins them with the store's GC protocol. A pull takes a [`Lease`], has the
//! client add every blob to it before committing it, and names the image with
//! [`ImageStore::put_image`] only once everything is stored: an interrupted pull leaves no
//! name and no partial blob (only verified blobs, which the lease or the GC grace period
//! keeps for the next try, and ingest temp files the GC sweeps). A push leases the image it
//! reads, so a concurrent `rmi` and GC cannot pull blobs from under the upload.
//!
//! These are the functions `kiln pull` and `kiln push` call.

use std::time::Duration;

use crate::content::Digest;
use crate::layer::Compression;
use crate::reference::ImageRef;
use crate::registry::manifest::{self, Document, ManifestKind};
use crate::registry::{Client, Descriptor, Platform, Pushed, RegistryError, Reporter, Retain};
use crate::store::{Image, ImageStore, Lease, StoreError};

/// How long a pull's lease lives if the process dies without releasing it (containerd's
/// default for leases).
const PULL_LEASE: Duration = Duration::from_secs(24 * 3600);
/// How long a push's read lease lives if the process dies.
const PUSH_LEASE: Duration = Duration::from_secs(3600);

/// What went wrong pulling or pushing an image.
#[derive(Debug, thiserror::Error)]
pub enum DistributionError {
    /// The registry side failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The image store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Retain for Lease {
    fn retain(&self, digest: &Digest) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.add(digest).map_err(Into::into)
    }
}

/// Pulls `reference` for `platform` into `store` and names it `reference`, like `docker pull`.
///
/// Blobs already stored are not downloaded again. Two processes may pull the same image into
/// one root at once: both succeed, and each blob is stored once.
pub async fn pull_image(
    store: &ImageStore,
    client: &Client,
    reference: &ImageRef,
    platform: &Platform,
    reporter: &dyn Reporter,
) -> Result<Image, DistributionError> {
    let lease = store.lease(PULL_LEASE)?;
    let pulled = client
        .pull(reference, platform, store.content(), &lease, reporter)
        .await?;
    let image = store.put_image(std::slice::from_ref(reference), &pulled.target_bytes)?;
    lease.release()?;
    Ok(image)
}

/// Pushes the local image `name` (a name or ID, as the store resolves them) to `destination`,
/// like `docker push`.
///
/// The image's index is pushed when every manifest it lists is stored locally, else only the
/// platform manifest the image stands for. Plain-tar layers (those a build writes) are pushed as
/// gzip copies, under a manifest that differs from the local one only in those layers' descriptors;
/// the image ID (its config) is the same. Blobs are mounted from another repository of the
/// destination registry when the image has a name there.
pub async fn push_image(
    store: &ImageStore,
    client: &Client,
    name: &str,
    destination: &ImageRef,
    reporter: &dyn Reporter,
) -> Result<Pushed, DistributionError> {
    let image = store.resolve(name)?;
    let lease = store.lease_image(&image, PUSH_LEASE)?;
    // Layers a build stored as plain tars go up gzip-compressed, as every registry expects.
    let image = store.compressed(&image, Compression::GZIP, false, &lease)?;
    let target = push_target(store, &image)?;
    let mount_from = image
        .names
        .iter()
        .find(|other| other.domain() == destination.domain() && other.path() != destination.path())
        .map(ImageRef::path);
    Ok(client
        .push(store.content(), &target, destination, mount_from, reporter)
        .await?)
}

/// The index if it is complete here, else the image's own manifest.
fn push_target(store: &ImageStore, image: &Image) -> Result<Descriptor, DistributionError> {
    let content = store.content();
    let target_digest =
        Digest::parse(image.target.digest().as_ref()).map_err(|_| RegistryError::UnsupportedDigest {
            reference: image.id.to_string(),
            digest: image.target.digest().to_string(),
        })?;
    let describe = |digest: &Digest| -> Result<Descriptor, DistributionError> {
        let bytes = content.read(digest).map_err(StoreError::from)?;
        let (media_type, _) = manifest::parse(digest.as_str(), "", &bytes)?;
        Ok(Descriptor {
            media_type,
            digest: digest.clone(),
            size: bytes.len() as u64,
            platform: None,
        })
    };
    let target = describe(&target_digest)?;
    if target.digest == image.manifest {
        return Ok(target);
    }
    let bytes = content.read(&target_digest).map_err(StoreError::from)?;
    let (_, document) = manifest::parse(target_digest.as_str(), &target.media_type, &bytes)?;
    let complete = match &document {
        Document::Index { manifests } => manifests
            .iter()
            .filter(|m| manifest::kind_of(&m.media_type) == Some(ManifestKind::Manifest))
            .try_fold(true, |all, m| {
                content
                    .exists(&m.digest)
                    .map(|here| all && here)
                    .map_err(StoreError::from)
            })?,
        Document::Manifest { .. } => true,
    };
    if complete {
        Ok(target)
    } else {
        describe(&image.manifest)
    }
}
