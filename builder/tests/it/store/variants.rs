//! Compressed copies of plain layers for images leaving the store (`ImageStore::compressed`).

use std::io::Read;
use std::time::Duration;

use kiln_builder::content::{BlobSource as _, Digest};
use kiln_builder::layer::Compression;
use kiln_builder::store::{GcOptions, ImageStore};

use super::{build, put};

fn no_grace() -> GcOptions {
    GcOptions {
        grace: Duration::ZERO,
        ..GcOptions::default()
    }
}

fn manifest_of(store: &ImageStore, digest: &Digest) -> serde_json::Value {
    serde_json::from_slice(&store.content().read(digest).unwrap()).unwrap()
}

#[test]
fn plain_layers_get_gzip_copies_that_live_as_long_as_their_image() {
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let built = build(&store, "plain", &[], None);
    let image = put(&store, &["app:1"], &built);
    let source = built.layers[0].digest.clone();

    let lease = store.lease(Duration::from_secs(60)).unwrap();
    let compressed = store
        .compressed(&image, Compression::GZIP, false, &lease)
        .unwrap();
    assert_eq!(compressed.id, image.id, "the same config, the same image");
    assert_ne!(compressed.manifest, image.manifest);
    assert_eq!(compressed.target.digest().as_ref(), compressed.manifest.as_str());
    let manifest = manifest_of(&store, &compressed.manifest);
    let layer = &manifest["layers"][0];
    assert_eq!(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
    let copy = Digest::parse(layer["digest"].as_str().unwrap()).unwrap();
    assert_ne!(copy, source);
    let mut gzip = Vec::new();
    store
        .content()
        .open(&copy)
        .unwrap()
        .read_to_end(&mut gzip)
        .unwrap();
    assert_eq!(layer["size"], gzip.len());
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&gzip[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(Digest::of(&plain), source, "the copy unpacks to the layer");
    assert_eq!(manifest["config"], manifest_of(&store, &image.manifest)["config"]);

    // Asked again (another push), the recorded copy is reused: same manifest, no new blob.
    let blobs = store.content().list().unwrap().len();
    assert_eq!(
        store
            .compressed(&image, Compression::GZIP, false, &lease)
            .unwrap()
            .manifest,
        compressed.manifest
    );
    assert_eq!(store.content().list().unwrap().len(), blobs);

    // The copy outlives the lease while its layer is named; the exported manifest does not.
    lease.release().unwrap();
    store.gc(&no_grace()).unwrap();
    assert!(store.content().exists(&copy).unwrap(), "kept with its source");
    assert!(!store.content().exists(&compressed.manifest).unwrap());
    let lease = store.lease(Duration::from_secs(60)).unwrap();
    assert_eq!(
        store
            .compressed(&image, Compression::GZIP, false, &lease)
            .unwrap()
            .manifest,
        compressed.manifest
    );
    drop(lease);

    store.remove("app:1", false).unwrap();
    store.gc(&no_grace()).unwrap();
    assert!(!store.content().exists(&copy).unwrap(), "gone with its source");
    assert!(!store.content().exists(&source).unwrap());
}

#[test]
fn an_image_without_plain_layers_is_left_as_it_is() {
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let mut built = build(&store, "gz", &[], None);
    let text = String::from_utf8(built.manifest.clone()).unwrap();
    built.manifest = text.replace("layer.v1.tar\"", "layer.v1.tar+gzip\"").into_bytes();
    let image = put(&store, &["gz:1"], &built);
    let lease = store.lease(Duration::from_secs(60)).unwrap();
    let same = store
        .compressed(&image, Compression::GZIP, false, &lease)
        .unwrap();
    assert_eq!(same.manifest, image.manifest);
}

#[test]
fn zstd_copies_and_forced_recompression_unpack_to_the_same_layers() {
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let built = build(&store, "z", &[], None);
    let image = put(&store, &["z:1"], &built);
    let source = built.layers[0].digest.clone();
    let lease = store.lease(Duration::from_secs(60)).unwrap();

    let zstd = store
        .compressed(&image, Compression::ZSTD, false, &lease)
        .unwrap();
    let layer = manifest_of(&store, &zstd.manifest)["layers"][0].clone();
    assert_eq!(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd");
    let copy = Digest::parse(layer["digest"].as_str().unwrap()).unwrap();
    let mut compressed = Vec::new();
    store
        .content()
        .open(&copy)
        .unwrap()
        .read_to_end(&mut compressed)
        .unwrap();
    assert_eq!(Digest::of(&zstd::decode_all(&compressed[..]).unwrap()), source);

    // A gzip image asked for zstd keeps its gzip layer unless forced; forced, the layer is
    // decompressed and compressed again, and still unpacks to its diff ID.
    let gzip = store
        .compressed(&image, Compression::GZIP, false, &lease)
        .unwrap();
    let kept = store.compressed(&gzip, Compression::ZSTD, false, &lease).unwrap();
    assert_eq!(kept.manifest, gzip.manifest);
    let forced = store.compressed(&gzip, Compression::ZSTD, true, &lease).unwrap();
    assert_eq!(
        forced.manifest, zstd.manifest,
        "the same copy, whichever way it was made"
    );
    let plain = store
        .compressed(&gzip, Compression::Uncompressed, true, &lease)
        .unwrap();
    assert_eq!(
        plain.manifest, image.manifest,
        "decompressed back to the stored manifest"
    );
}
