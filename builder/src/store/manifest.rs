//! What the image store needs to know of manifests and indexes: their kind, what they point
//! to, and which manifest of an index this machine runs.

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde::de::DeserializeOwned;

use super::StoreError;
use crate::content::{ContentStore, Digest};

/// OCI image manifest.
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker's schema 2 manifest: an OCI manifest in all but name.
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker's manifest list: an OCI index in all but name.
const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// What a blob is to the store, by its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An image manifest: a config and layers.
    Manifest,
    /// An index (manifest list): manifests for several platforms.
    Index,
    /// A config, a layer, or anything else that points nowhere.
    Leaf,
}

pub(crate) fn kind_of(media_type: &str) -> Kind {
    match media_type {
        OCI_MANIFEST | DOCKER_MANIFEST => Kind::Manifest,
        OCI_INDEX | DOCKER_MANIFEST_LIST => Kind::Index,
        _ => Kind::Leaf,
    }
}

/// The media type of top-level manifest bytes: the declared `mediaType`, or for OCI documents
/// that leave it out (it is optional), the shape: `manifests` makes an index, `config` a manifest.
pub(crate) fn media_type_of(digest: &Digest, bytes: &[u8]) -> Result<String, StoreError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde::de::IgnoredAny>,
        config: Option<serde::de::IgnoredAny>,
    }
    let probe: Probe = parse_json("manifest", digest, bytes)?;
    let media_type = match (probe.media_type, probe.manifests, probe.config) {
        (Some(declared), _, _) => declared,
        (None, Some(_), None) => OCI_INDEX.to_owned(),
        (None, None, Some(_)) => OCI_MANIFEST.to_owned(),
        (None, _, _) => String::new(),
    };
    if kind_of(&media_type) == Kind::Leaf {
        return Err(StoreError::UnsupportedMediaType {
            digest: digest.clone(),
            media_type,
        });
    }
    Ok(media_type)
}

pub(crate) fn parse_json<T: DeserializeOwned>(
    kind: &'static str,
    digest: &Digest,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::InvalidJson {
        kind,
        digest: digest.clone(),
        source,
    })
}

/// Our [`Digest`] of an oci-spec descriptor (oci-spec also accepts algorithms kiln does not store).
pub(crate) fn descriptor_digest(owner: &Digest, descriptor: &Descriptor) -> Result<Digest, StoreError> {
    let text = descriptor.digest().as_ref();
    Digest::parse(text).map_err(|_| StoreError::UnsupportedDigest {
        owner: owner.clone(),
        digest: text.to_owned(),
    })
}

/// The blobs a manifest or index points to, with their media types.
pub(crate) fn children(
    kind: Kind,
    digest: &Digest,
    bytes: &[u8],
) -> Result<Vec<(Digest, String)>, StoreError> {
    let descriptors: Vec<Descriptor> = match kind {
        Kind::Leaf => return Ok(Vec::new()),
        Kind::Index => parse_json::<ImageIndex>("index", digest, bytes)?
            .manifests()
            .clone(),
        Kind::Manifest => {
            let manifest: ImageManifest = parse_json("manifest", digest, bytes)?;
            let mut all = vec![manifest.config().clone()];
            all.extend(manifest.layers().iter().cloned());
            all
        }
    };
    descriptors
        .iter()
        .map(|d| Ok((descriptor_digest(digest, d)?, d.media_type().to_string())))
        .collect()
}

/// The manifest of `index` this machine would run: the host's OS and architecture if stored,
/// else the first image manifest that is stored (a pull may have fetched just one platform).
pub(crate) fn pick_manifest(
    content: &ContentStore,
    index_digest: &Digest,
    index: &ImageIndex,
) -> Result<(Digest, u64), StoreError> {
    let (os, arch) = host_platform();
    let mut first_stored = None;
    for descriptor in index.manifests() {
        if kind_of(descriptor.media_type().as_ref()) != Kind::Manifest {
            continue;
        }
        let digest = descriptor_digest(index_digest, descriptor)?;
        if !content.exists(&digest)? {
            continue;
        }
        let is_host = descriptor
            .platform()
            .as_ref()
            .is_some_and(|p| p.os().to_string() == os && p.architecture().to_string() == arch);
        if is_host {
            return Ok((digest, descriptor.size()));
        }
        first_stored.get_or_insert((digest, descriptor.size()));
    }
    first_stored.ok_or_else(|| StoreError::NoManifest {
        index: index_digest.clone(),
    })
}

/// This machine's platform in OCI words (GOOS/GOARCH).
pub(crate) fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    };
    (std::env::consts::OS, arch)
}
