//! The image store on real files and a real SQLite database.

mod concurrent;
mod db;
mod gc;
mod images;
mod variants;

use std::io::Write;

use kiln_builder::content::BlobInfo;
use kiln_builder::reference::ImageRef;
use kiln_builder::store::{Image, ImageStore, Lease};
use serde_json::json;

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The blobs of one test image, all in the store, and its manifest bytes (not yet stored).
pub(crate) struct Built {
    pub(crate) manifest: Vec<u8>,
    pub(crate) config: BlobInfo,
    pub(crate) layers: Vec<BlobInfo>,
}

impl Built {
    /// Config and layer bytes, as `Image::size` counts them.
    pub(crate) fn size(&self) -> u64 {
        self.config.size + self.layers.iter().map(|l| l.size).sum::<u64>()
    }
}

pub(crate) fn r(name: &str) -> ImageRef {
    ImageRef::parse(name).unwrap()
}

/// Stores a blob; with a lease, protects it first, as the GC protocol asks of writers.
pub(crate) fn write(store: &ImageStore, lease: Option<&Lease>, bytes: &[u8]) -> BlobInfo {
    let mut ingest = store.content().ingest(None).unwrap();
    ingest.write_all(bytes).unwrap();
    if let Some(lease) = lease {
        lease.add(&ingest.digest()).unwrap();
    }
    ingest.commit().unwrap()
}

/// Writes an image's layers (`shared` plus one of its own) and config; returns its manifest.
pub(crate) fn build(store: &ImageStore, seed: &str, shared: &[BlobInfo], lease: Option<&Lease>) -> Built {
    let own = write(store, lease, seed.repeat(1000).as_bytes());
    let layers: Vec<BlobInfo> = shared.iter().cloned().chain([own]).collect();
    let config = json!({
        "created": "2024-05-01T12:00:00Z",
        "architecture": host_arch(),
        "os": "linux",
        "config": { "Labels": { "seed": seed } },
        "rootfs": { "type": "layers", "diff_ids": layers.iter().map(|l| l.digest.to_string()).collect::<Vec<_>>() },
    });
    let config = write(store, lease, &serde_json::to_vec(&config).unwrap());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
        "layers": layers.iter().map(|l| descriptor("application/vnd.oci.image.layer.v1.tar", l)).collect::<Vec<_>>(),
    });
    Built {
        manifest: serde_json::to_vec(&manifest).unwrap(),
        config,
        layers,
    }
}

pub(crate) fn descriptor(media_type: &str, blob: &BlobInfo) -> serde_json::Value {
    json!({ "mediaType": media_type, "digest": blob.digest.to_string(), "size": blob.size })
}

pub(crate) fn put(store: &ImageStore, names: &[&str], built: &Built) -> Image {
    let names: Vec<ImageRef> = names.iter().map(|n| r(n)).collect();
    store.put_image(&names, &built.manifest).unwrap()
}

/// This machine's architecture in OCI words.
pub(crate) fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub(crate) fn open(root: &tempfile::TempDir) -> ImageStore {
    ImageStore::open(root.path()).unwrap()
}
