//! Garbage collection and leases.

use std::io::Read;
use std::time::Duration;

use kiln_builder::content::{BlobSource, Digest};
use kiln_builder::store::{GcOptions, GcReport};

use super::{build, open, put, write};

fn now() -> GcOptions {
    GcOptions {
        grace: Duration::ZERO,
        ..GcOptions::default()
    }
}

fn stored(store: &kiln_builder::store::ImageStore) -> Vec<Digest> {
    store
        .content()
        .list()
        .unwrap()
        .into_iter()
        .map(|b| b.info.digest)
        .collect()
}

#[test]
fn gc_reclaims_exactly_what_no_name_reaches() {
    let root = tempfile::tempdir().unwrap();
    let store = open(&root);
    let base = write(&store, None, &b"shared base layer".repeat(500));
    let keep = build(&store, "keep", std::slice::from_ref(&base), None);
    let drop = build(&store, "drop", std::slice::from_ref(&base), None);
    let kept = put(&store, &["keep"], &keep);
    put(&store, &["drop"], &drop);
    let orphan = write(&store, None, b"never referenced");

    assert_eq!(
        store.gc(&now()).unwrap(),
        GcReport {
            blobs_removed: 1,
            bytes_reclaimed: orphan.size,
            ..GcReport::default()
        }
    );
    store.remove("drop", false).unwrap();
    let report = store.gc(&now()).unwrap();
    let own_layer = &drop.layers[1];
    let expected = drop.config.size + own_layer.size + drop.manifest.len() as u64;
    assert_eq!((report.blobs_removed, report.bytes_reclaimed), (3, expected));

    let mut left = stored(&store);
    let mut wanted = vec![
        base.digest.clone(),
        keep.layers[1].digest.clone(),
        keep.config.digest.clone(),
        kept.manifest.clone(),
    ];
    left.sort();
    wanted.sort();
    assert_eq!(left, wanted);
    assert_eq!(store.resolve("keep").unwrap().id, kept.id);
    assert_eq!(
        store.gc(&now()).unwrap(),
        GcReport::default(),
        "a second pass finds nothing"
    );
}

#[test]
fn gc_spares_fresh_blobs_within_the_grace_period() {
    let root = tempfile::tempdir().unwrap();
    let store = open(&root);
    let fresh = write(&store, None, b"just written");
    let report = store.gc(&GcOptions::default()).unwrap();
    assert_eq!((report.blobs_removed, report.blobs_in_grace), (0, 1));
    assert!(store.content().exists(&fresh.digest).unwrap());
}

#[test]
fn gc_keeps_every_stored_blob_an_index_reaches() {
    let root = tempfile::tempdir().unwrap();
    let store = open(&root);
    let one = build(&store, "p1", &[], None);
    let two = build(&store, "p2", &[], None);
    let entries: Vec<_> = [&one, &two]
        .iter()
        .map(|b| {
            super::descriptor(
                super::OCI_MANIFEST,
                &store.content().write_blob(&b.manifest).unwrap(),
            )
        })
        .collect();
    let index =
        serde_json::json!({ "schemaVersion": 2, "mediaType": super::OCI_INDEX, "manifests": entries });
    store
        .put_image(&[super::r("multi")], &serde_json::to_vec(&index).unwrap())
        .unwrap();
    let before = stored(&store);
    assert_eq!(store.gc(&now()).unwrap().blobs_removed, 0);
    assert_eq!(stored(&store), before);
    store.remove("multi", false).unwrap();
    assert_eq!(store.gc(&now()).unwrap().blobs_removed, before.len());
}

#[test]
fn leased_blobs_survive_until_the_lease_goes() {
    let root = tempfile::tempdir().unwrap();
    let store = open(&root);
    let lease = store.lease(Duration::from_secs(600)).unwrap();
    let blob = write(&store, Some(&lease), b"work in progress");
    // A lease may name a blob before it exists: a pull adds digests before downloading.
    lease.add(&Digest::of(b"coming soon")).unwrap();
    assert_eq!(store.gc(&now()).unwrap().blobs_removed, 0);
    assert!(store.content().exists(&blob.digest).unwrap());

    drop(lease);
    assert_eq!(store.gc(&now()).unwrap().blobs_removed, 1);

    let released = store.lease(Duration::from_secs(600)).unwrap();
    let blob = write(&store, Some(&released), b"released explicitly");
    released.release().unwrap();
    assert_eq!(store.gc(&now()).unwrap().bytes_reclaimed, blob.size);
}

#[test]
fn expired_leases_protect_nothing() {
    let root = tempfile::tempdir().unwrap();
    let store = open(&root);
    let lease = store.lease(Duration::ZERO).unwrap();
    write(&store, Some(&lease), b"held by a crashed process");
    let report = store.gc(&now()).unwrap();
    assert_eq!((report.leases_expired, report.blobs_removed), (1, 1));

    let renewed = store.lease(Duration::ZERO).unwrap();
    write(&store, Some(&renewed), b"renewed in time");
    renewed.renew(Duration::from_secs(600)).unwrap();
    assert_eq!(store.gc(&now()).unwrap().blobs_removed, 0);
}

#[test]
fn gc_removes_stale_ingests() {
    let root = tempfile::tempdir().unwrap();
    let store = open(&root);
    let mut crashed = store.content().ingest(None).unwrap();
    std::io::Write::write_all(&mut crashed, b"partial").unwrap();
    std::mem::forget(crashed);
    let report = store
        .gc(&GcOptions {
            grace: Duration::ZERO,
            stale_ingest: Duration::ZERO,
        })
        .unwrap();
    assert_eq!(report.ingests_removed, 1);
    assert_eq!(
        std::fs::read_dir(root.path().join("ingest-v1")).unwrap().count(),
        0
    );
}

#[test]
fn leased_image_stays_readable_while_another_store_removes_it() {
    let root = tempfile::tempdir().unwrap();
    let reader = open(&root);
    let remover = open(&root);
    let built = build(&reader, "leased", &[], None);
    put(&reader, &["leased"], &built);

    let image = reader.resolve("leased").unwrap();
    let lease = reader.lease_image(&image, Duration::from_secs(600)).unwrap();
    remover.remove("leased", false).unwrap();
    assert_eq!(remover.gc(&now()).unwrap().blobs_removed, 0);
    for layer in &built.layers {
        let mut bytes = Vec::new();
        reader
            .content()
            .open(&layer.digest)
            .unwrap()
            .read_to_end(&mut bytes)
            .unwrap();
        assert_eq!(Digest::of(&bytes), layer.digest);
    }
    drop(lease);
    assert_eq!(remover.gc(&now()).unwrap().blobs_removed, 3);
}

#[test]
fn lease_image_fails_once_blobs_are_gone() {
    let root = tempfile::tempdir().unwrap();
    let store = open(&root);
    let built = build(&store, "gone", &[], None);
    let image = put(&store, &["gone"], &built);
    store.remove("gone", false).unwrap();
    store.content().delete(&built.layers[0].digest).unwrap();
    let error = store.lease_image(&image, Duration::from_secs(60)).unwrap_err();
    assert!(
        error.to_string().contains(&built.layers[0].digest.to_string()),
        "{error}"
    );
}

#[test]
fn open_reader_survives_rmi_and_gc_without_a_lease() {
    let root = tempfile::tempdir().unwrap();
    let reader = open(&root);
    let remover = open(&root);
    let built = build(&reader, "unleased", &[], None);
    put(&reader, &["unleased"], &built);
    let layer = &built.layers[0];
    let mut stream = reader.content().open(&layer.digest).unwrap();
    let mut head = [0u8; 100];
    stream.read_exact(&mut head).unwrap();

    remover.remove("unleased", false).unwrap();
    assert_eq!(remover.gc(&now()).unwrap().blobs_removed, 3);
    assert!(!reader.content().exists(&layer.digest).unwrap());
    // The open file outlives its name, and its bytes still verify.
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    assert_eq!(100 + rest.len() as u64, layer.size);
}
