//! Archives built by hand, byte by byte, for the load paths real tools take less often: Docker's
//! pre-25 layout with linked layers, multi-platform indexes, and the ways an archive can lie.

use std::io::Write;

use flate2::write::GzEncoder;

use super::{ArchiveError, Event, NoProgress, load};
use crate::content::Digest;
use crate::store::ImageStore;

/// A tar archive under construction.
struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    fn new() -> Tar {
        Tar(tar::Builder::new(Vec::new()))
    }

    fn file(mut self, path: &str, bytes: &[u8]) -> Tar {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        self.0.append_data(&mut header, path, bytes).unwrap();
        self
    }

    fn symlink(mut self, path: &str, target: &str) -> Tar {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        self.0.append_link(&mut header, path, target).unwrap();
        self
    }

    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// A one-file layer tar.
fn layer(name: &str, content: &[u8]) -> Vec<u8> {
    Tar::new().file(name, content).bytes()
}

fn config(diff_ids: &[&Digest]) -> Vec<u8> {
    let ids: Vec<String> = diff_ids.iter().map(ToString::to_string).collect();
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": { "type": "layers", "diff_ids": ids },
    }))
    .unwrap()
}

fn new_store() -> (tempfile::TempDir, ImageStore) {
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    (root, store)
}

/// `docker save` before version 25: `<id>/layer.tar`, a repeated layer as a symlink, `<id>.json`.
fn legacy_archive(diff_ids_override: Option<&Digest>) -> (Vec<u8>, Digest) {
    let (base, top) = (layer("a", b"base"), layer("b", b"top"));
    let (base_id, top_id) = (Digest::of(&base), Digest::of(&top));
    let config = config(&[diff_ids_override.unwrap_or(&base_id), &top_id, &base_id]);
    let config_id = Digest::of(&config);
    let manifest = serde_json::json!([{
        "Config": format!("{}.json", config_id.hex()),
        "RepoTags": ["legacy:1"],
        "Layers": ["aaa/layer.tar", "bbb/layer.tar", "ccc/layer.tar"],
    }]);
    let archive = Tar::new()
        .file("aaa/VERSION", b"1.0")
        .file("aaa/json", b"{}")
        .file("aaa/layer.tar", &base)
        .file("bbb/layer.tar", &top)
        .symlink("ccc/layer.tar", "../aaa/layer.tar")
        .file(&format!("{}.json", config_id.hex()), &config)
        .file("repositories", br#"{"legacy":{"1":"bbb"}}"#)
        .file("manifest.json", &serde_json::to_vec(&manifest).unwrap())
        .bytes();
    (archive, config_id)
}

#[test]
fn legacy_docker_archives_load_with_layers_compressed() {
    let (_root, store) = new_store();
    let (archive, config_id) = legacy_archive(None);
    let mut gzipped = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzipped.write_all(&archive).unwrap();
    let loaded = load(&store, &gzipped.finish().unwrap()[..], &NoProgress).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].image.id, config_id);
    assert_eq!(loaded[0].names[0].familiar_string(), "legacy:1");
    let manifest: serde_json::Value =
        serde_json::from_slice(&store.content().read(&loaded[0].image.manifest).unwrap()).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    assert!(
        layers
            .iter()
            .all(|l| l["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip")
    );
    // The linked layer is the same blob as the one it links to.
    assert_eq!(layers[0]["digest"], layers[2]["digest"]);
}

#[test]
fn a_layer_that_is_not_the_configs_diff_id_is_refused() {
    let (_root, store) = new_store();
    let wrong = Digest::of(b"some other layer");
    let (archive, _) = legacy_archive(Some(&wrong));
    let error = load(&store, &archive[..], &NoProgress).unwrap_err();
    assert!(
        matches!(&error, ArchiveError::DiffIdMismatch { entry, expected, .. } if entry == "aaa/layer.tar" && *expected == wrong),
        "{error:?}"
    );
    assert!(store.content().list().unwrap().is_empty(), "nothing is stored");
}

#[test]
fn an_archive_cut_inside_an_entry_is_truncated() {
    let (_root, store) = new_store();
    let (archive, _) = legacy_archive(None);
    // Past the first headers and into aaa/layer.tar's data (VERSION and json take 2 KiB).
    let cut = &archive[..2048 + 512 + 100];
    let error = load(&store, cut, &NoProgress).unwrap_err();
    assert!(
        matches!(&error, ArchiveError::Truncated { entry, actual: 100, .. } if entry == "aaa/layer.tar"),
        "{error:?}"
    );
    assert!(store.content().list().unwrap().is_empty());
}

#[test]
fn oci_archives_with_a_multi_platform_index_keep_the_index() {
    let (_root, store) = new_store();
    let blob = |bytes: &[u8]| (Digest::of(bytes), bytes.len());
    let base = layer("x", b"x");
    let (base_digest, base_size) = blob(&base);
    let config_bytes = config(&[&base_digest]);
    let (config_digest, config_size) = blob(&config_bytes);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": base_digest, "size": base_size }],
    }))
    .unwrap();
    let (manifest_digest, manifest_size) = blob(&manifest);
    let absent = Digest::of(b"another platform's manifest, not in the archive");
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": absent, "size": 10,
              "platform": { "os": "linux", "architecture": "s390x" } },
            { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": manifest_size,
              "platform": { "os": "linux", "architecture": "amd64" } },
        ],
    }))
    .unwrap();
    let (index_digest, index_size) = blob(&index);
    let top = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{ "mediaType": "application/vnd.oci.image.index.v1+json", "digest": index_digest, "size": index_size,
                        "annotations": { "org.opencontainers.image.ref.name": "example.com/multi:2" } }],
    }))
    .unwrap();
    let path = |digest: &Digest| format!("blobs/sha256/{}", digest.hex());
    let archive = Tar::new()
        .file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
        .file(&path(&base_digest), &base)
        .file(&path(&config_digest), &config_bytes)
        .file(&path(&manifest_digest), &manifest)
        .file(&path(&index_digest), &index)
        .file("index.json", &top)
        .bytes();
    let loaded = load(&store, &archive[..], &NoProgress).unwrap();
    assert_eq!(loaded[0].names[0].to_string(), "example.com/multi:2");
    assert_eq!(loaded[0].image.id, config_digest);
    assert_eq!(loaded[0].image.target.digest().as_ref(), index_digest.as_str());
    assert_eq!(loaded[0].image.manifest, manifest_digest);

    // Without the layer, the archive is incomplete, and nothing is stored.
    let (_root, empty) = new_store();
    let incomplete = Tar::new()
        .file(&path(&config_digest), &config_bytes)
        .file(&path(&manifest_digest), &manifest)
        .file(&path(&index_digest), &index)
        .file("index.json", &top)
        .bytes();
    let error = load(&empty, &incomplete[..], &NoProgress).unwrap_err();
    assert!(
        matches!(&error, ArchiveError::Missing { entry, .. } if *entry == path(&base_digest)),
        "{error:?}"
    );
    assert!(empty.content().list().unwrap().is_empty());
}

#[test]
fn archives_without_image_metadata_are_not_image_archives() {
    let (_root, store) = new_store();
    let archive = Tar::new().file("hello.txt", b"hi").bytes();
    assert!(matches!(
        load(&store, &archive[..], &NoProgress),
        Err(ArchiveError::NotAnImageArchive)
    ));
}

#[test]
fn a_load_reports_each_layer_entry_and_no_metadata() {
    let (_root, store) = new_store();
    let (archive, _) = legacy_archive(None);
    let events = std::sync::Mutex::new(Vec::new());
    let record = |event: Event<'_>| {
        let line = match event {
            Event::LayerStart { id, size } => format!("start {id} {size}"),
            Event::LayerProgress { id, done, total } => format!("progress {id} {done}/{total}"),
            Event::LayerDone { id } => format!("done {id}"),
        };
        events.lock().unwrap().push(line);
    };
    load(&store, &archive[..], &record).unwrap();
    // The layers are small: one chunk each. The symlinked repeat and the config are not layers
    // read from the archive, and are not reported.
    let size = layer("a", b"base").len();
    assert_eq!(
        events.into_inner().unwrap(),
        [
            format!("start aaa {size}"),
            format!("progress aaa {size}/{size}"),
            "done aaa".to_owned(),
            format!("start bbb {size}"),
            format!("progress bbb {size}/{size}"),
            "done bbb".to_owned(),
        ]
    );
}
