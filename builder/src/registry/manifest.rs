//! Manifests and indexes as a registry serves them: media types, descriptors, parsing.

use serde::Deserialize;

use super::{Platform, RegistryError};
use crate::content::Digest;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema 2: an OCI manifest in all but name.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list: an OCI index in all but name.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The `Accept` header of a manifest request: every kind kiln can read, preferred first.
pub(crate) const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// The largest manifest or index kiln reads, declared or served: 4 MiB, containerd's limit.
/// Real manifests are a few KiB; the limit keeps a hostile registry from exhausting memory.
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;

/// What a blob points to, as a manifest or index writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// The blob's media type.
    pub media_type: String,
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's size in bytes.
    pub size: u64,
    /// For an index entry: the platform the manifest is for.
    pub platform: Option<Platform>,
}

/// Which of the two document kinds a media type is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    /// An image manifest: a config and layers.
    Manifest,
    /// An index (manifest list): one manifest per platform.
    Index,
}

/// The kind of manifest a media type names, if it is one kiln reads.
pub fn kind_of(media_type: &str) -> Option<ManifestKind> {
    match media_type {
        OCI_MANIFEST | DOCKER_MANIFEST => Some(ManifestKind::Manifest),
        OCI_INDEX | DOCKER_MANIFEST_LIST => Some(ManifestKind::Index),
        _ => None,
    }
}

/// A parsed manifest or index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Document {
    /// An image manifest.
    Manifest {
        /// The config blob.
        config: Descriptor,
        /// The layer blobs, base first.
        layers: Vec<Descriptor>,
    },
    /// An index.
    Index {
        /// One manifest per platform (and possibly attestations and other artifacts).
        manifests: Vec<Descriptor>,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDocument {
    schema_version: Option<u32>,
    media_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    size: u64,
    platform: Option<RawPlatform>,
}

#[derive(Deserialize)]
struct RawPlatform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

/// Parses manifest bytes served as `served_type` (the `Content-Type`, possibly empty).
///
/// The media type is the document's own `mediaType` when it declares one (it is covered by the
/// digest), else the served type, else guessed from the shape (`manifests` is an index, `config`
/// a manifest) as OCI allows the field to be left out. Returns the media type and the document.
pub fn parse(reference: &str, served_type: &str, bytes: &[u8]) -> Result<(String, Document), RegistryError> {
    let invalid = |source| RegistryError::InvalidManifest {
        reference: reference.to_owned(),
        source,
    };
    let raw: RawDocument = serde_json::from_slice(bytes).map_err(invalid)?;
    let served = served_type.split(';').next().unwrap_or_default().trim();
    let media_type = match (&raw.media_type, kind_of(served), &raw.manifests, &raw.config) {
        (Some(declared), _, _, _) => declared.clone(),
        (None, None, Some(_), None) => OCI_INDEX.to_owned(),
        (None, None, None, Some(_)) => OCI_MANIFEST.to_owned(),
        (None, _, _, _) => served.to_owned(),
    };
    let unsupported = || RegistryError::UnsupportedMediaType {
        reference: reference.to_owned(),
        media_type: media_type.clone(),
    };
    let kind = kind_of(&media_type).ok_or_else(unsupported)?;
    if raw.schema_version != Some(2) {
        return Err(unsupported());
    }
    let convert = |d: RawDescriptor| descriptor(reference, d);
    let document = match kind {
        ManifestKind::Manifest => {
            let config = raw.config.ok_or_else(|| invalid(missing_field("config")))?;
            Document::Manifest {
                config: convert(config)?,
                layers: raw
                    .layers
                    .unwrap_or_default()
                    .into_iter()
                    .map(convert)
                    .collect::<Result<_, _>>()?,
            }
        }
        ManifestKind::Index => Document::Index {
            manifests: raw
                .manifests
                .ok_or_else(|| invalid(missing_field("manifests")))?
                .into_iter()
                .map(convert)
                .collect::<Result<_, _>>()?,
        },
    };
    Ok((media_type, document))
}

fn missing_field(name: &'static str) -> serde_json::Error {
    <serde_json::Error as serde::de::Error>::missing_field(name)
}

fn descriptor(reference: &str, raw: RawDescriptor) -> Result<Descriptor, RegistryError> {
    let digest = Digest::parse(&raw.digest).map_err(|_| RegistryError::UnsupportedDigest {
        reference: reference.to_owned(),
        digest: raw.digest.clone(),
    })?;
    Ok(Descriptor {
        media_type: raw.media_type,
        digest,
        size: raw.size,
        platform: raw
            .platform
            .map(|p| Platform::new(&p.os, &p.architecture, p.variant.as_deref())),
    })
}

/// The entry of an index that best fits `platform`, among image manifests.
pub(crate) fn pick<'a>(manifests: &'a [Descriptor], platform: &Platform) -> Option<&'a Descriptor> {
    manifests
        .iter()
        .filter(|d| kind_of(&d.media_type) == Some(ManifestKind::Manifest))
        .filter_map(|d| Some((platform.rank(d.platform.as_ref()?)?, d)))
        .min_by_key(|(rank, _)| *rank)
        .map(|(_, d)| d)
}
