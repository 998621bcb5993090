//! The files of an image archive and their JSON: Docker's `manifest.json` and `repositories`, the
//! OCI layout's `oci-layout`, `index.json` and `blobs/sha256/<hex>`, and the few fields of
//! manifests and configs that moving images in and out needs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::content::Digest;

/// Docker's list of images in the archive.
pub(crate) const MANIFEST_JSON: &str = "manifest.json";
/// The OCI layout's entry point.
pub(crate) const INDEX_JSON: &str = "index.json";
/// The OCI layout's marker file.
pub(crate) const OCI_LAYOUT: &str = "oci-layout";
/// Docker's legacy repository → tag → layer ID map.
pub(crate) const REPOSITORIES: &str = "repositories";
/// What `oci-layout` says.
pub(crate) const OCI_LAYOUT_VERSION: &str = "1.0.0";

/// The full name an image had (containerd, and Docker since 25, write it).
pub(crate) const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// The OCI name annotation: a tag for Docker and containerd, a full name for skopeo and podman.
pub(crate) const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// OCI image manifest.
pub(crate) const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub(crate) const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub(crate) const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// An uncompressed OCI layer.
pub(crate) const MEDIA_TYPE_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// A gzip-compressed OCI layer.
pub(crate) const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// A zstd-compressed OCI layer.
pub(crate) const MEDIA_TYPE_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker's manifest list, an index by another name.
const MEDIA_TYPE_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The path of a blob in an OCI layout.
pub(crate) fn blob_path(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

/// The digest a `blobs/sha256/<hex>` path names, if it is one.
pub(crate) fn blob_digest(path: &str) -> Option<Digest> {
    Digest::from_hex(path.strip_prefix("blobs/sha256/")?).ok()
}

/// One image of Docker's `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DockerManifestEntry {
    /// The config's path in the archive.
    pub(crate) config: String,
    /// Familiar `repo:tag` names; `null` when the image was saved by ID.
    #[serde(default)]
    pub(crate) repo_tags: Option<Vec<String>>,
    /// The layers' paths, base first.
    pub(crate) layers: Vec<String>,
}

/// An OCI descriptor: what a manifest or index says about a blob it points to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    /// The blob's media type.
    #[serde(default)]
    pub(crate) media_type: String,
    /// The blob's digest.
    pub(crate) digest: Digest,
    /// The blob's size.
    pub(crate) size: u64,
    /// Annotations (names, for index entries).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) annotations: BTreeMap<String, String>,
    /// The platform, for index entries; kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) platform: Option<serde_json::Value>,
}

impl Descriptor {
    /// A descriptor with no annotations or platform.
    pub(crate) fn new(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_owned(),
            digest,
            size,
            annotations: BTreeMap::new(),
            platform: None,
        }
    }
}

/// An OCI index (`index.json`, or an index blob), or a Docker manifest list.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Index {
    /// Always 2.
    #[serde(default)]
    pub(crate) schema_version: u32,
    /// The index media type (optional in OCI, always written by kiln).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) media_type: Option<String>,
    /// The manifests (or nested indexes).
    pub(crate) manifests: Vec<Descriptor>,
}

/// An image manifest: a config and layers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Manifest {
    /// Always 2.
    #[serde(default)]
    pub(crate) schema_version: u32,
    /// The manifest media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) media_type: Option<String>,
    /// The config blob.
    pub(crate) config: Descriptor,
    /// The layer blobs, base first.
    pub(crate) layers: Vec<Descriptor>,
}

/// What a manifest-or-index blob is, from its declared media type or else its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An image manifest.
    Manifest,
    /// An index or manifest list.
    Index,
}

/// Tells a manifest from an index: `mediaType` if declared, else `manifests` makes an index.
pub(crate) fn kind_of(bytes: &[u8]) -> Result<Kind, serde_json::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde::de::IgnoredAny>,
    }
    let probe: Probe = serde_json::from_slice(bytes)?;
    Ok(match probe.media_type.as_deref() {
        Some(MEDIA_TYPE_INDEX | MEDIA_TYPE_DOCKER_LIST) => Kind::Index,
        None if probe.manifests.is_some() => Kind::Index,
        _ => Kind::Manifest,
    })
}

/// The declared media type of a manifest, or OCI's when it declares none.
pub(crate) fn manifest_media_type(manifest: &Manifest) -> &str {
    manifest.media_type.as_deref().unwrap_or(MEDIA_TYPE_MANIFEST)
}

/// The part of an image config that ties it to its layers.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ConfigRootfs {
    /// `rootfs`.
    pub(crate) rootfs: Rootfs,
}

/// `rootfs` of an image config.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Rootfs {
    /// The uncompressed digests of the layers, base first.
    #[serde(default)]
    pub(crate) diff_ids: Vec<Digest>,
}

/// The `oci-layout` file's content.
pub(crate) fn oci_layout_json() -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "imageLayoutVersion": OCI_LAYOUT_VERSION }))
        .expect("a literal serialises")
}

/// Tells a layer blob's compression from its first bytes: its media type.
pub(crate) fn sniff_layer_media_type(head: &[u8]) -> &'static str {
    match head {
        [0x1f, 0x8b, ..] => MEDIA_TYPE_LAYER_GZIP,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => MEDIA_TYPE_LAYER_ZSTD,
        _ => MEDIA_TYPE_LAYER_TAR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_paths_round_trip_and_reject_other_paths() {
        let digest = Digest::of(b"x");
        assert_eq!(blob_digest(&blob_path(&digest)), Some(digest));
        assert_eq!(blob_digest("blobs/sha256/abc"), None);
        assert_eq!(blob_digest("abc/layer.tar"), None);
    }

    #[test]
    fn kind_comes_from_media_type_or_shape() {
        assert_eq!(kind_of(br#"{"manifests":[]}"#).unwrap(), Kind::Index);
        assert_eq!(kind_of(br#"{"config":{}}"#).unwrap(), Kind::Manifest);
        let list = br#"{"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json"}"#;
        assert_eq!(kind_of(list).unwrap(), Kind::Index);
    }
}
