//! put, resolve, tag, untag, list and rmi, with Docker's semantics.

use kiln_builder::content::{BlobSource, Digest};
use kiln_builder::reference::ImageRef;
use kiln_builder::store::{Removal, StoreError};
use serde_json::json;

use super::{OCI_INDEX, OCI_MANIFEST, build, descriptor, host_arch, open, put, r};

#[test]
fn put_then_resolve_by_name_and_by_id() {
    let root = tempfile::tempdir().unwrap();
    let store = open(&root);
    let built = build(&store, "one", &[], None);
    let image = put(&store, &["app:1", "app"], &built);

    assert_eq!(image.id, built.config.digest);
    assert_eq!(image.manifest, Digest::of(&built.manifest));
    assert_eq!(image.names, vec![r("app:1"), r("app:latest")]);
    assert_eq!(image.size, built.size());
    assert_eq!(image.created.as_deref(), Some("2024-05-01T12:00:00Z"));
    assert_eq!(image.target.media_type().to_string(), OCI_MANIFEST);
    assert_eq!(image.target.size(), built.manifest.len() as u64);
    assert_eq!(store.content().read(&image.manifest).unwrap(), built.manifest);
    let labels = image.config.config().as_ref().unwrap().labels().clone().unwrap();
    assert_eq!(labels["seed"], "one");

    let hex = image.id.hex();
    for query in [
        "app:1",
        "app",
        "docker.io/library/app:latest",
        image.id.as_str(),
        hex,
        &hex[..12],
        &format!("sha256:{}", &hex[..5]),
    ] {
        let found = store.resolve(query).unwrap_or_else(|e| panic!("{query}: {e}"));
        assert_eq!(found.id, image.id, "{query}");
        assert_eq!(found.names, image.names, "{query}");
    }
}

#[test]
fn resolve_reports_unknown_invalid_and_ambiguous() {
    let root = tempfile::tempdir().unwrap();
    let store = open(&root);
    assert_eq!(
        store.resolve("nope").unwrap_err().to_string(),
        "No such image: nope:latest"
    );
    assert_eq!(
        store.resolve("user/app:2").unwrap_err().to_string(),
        "No such image: user/app:2"
    );
    assert_eq!(
        store.resolve("abc123").unwrap_err().to_string(),
        "No such image: abc123"
    );
    assert_eq!(
        store.resolve("Bad").unwrap_err().to_string(),
        "invalid reference format: repository name (library/Bad) must be lowercase"
    );
    // 17 IDs over 16 hex digits: two share their first digit.
    let ids: Vec<Digest> = (0..17)
        .map(|i| {
            put(
                &store,
                &[&format!("img{i}")],
                &build(&store, &format!("s{i}"), &[], None),
            )
            .id
        })
        .collect();
    let first = (0..16)
        .map(|d| format!("{d:x}"))
        .find(|d| ids.iter().filter(|id| id.hex().starts_with(d.as_str())).count() > 1)
        .unwrap();
    let error = store.resolve(&first).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("multiple IDs found with provided prefix: {first}")
    );
}

#[test]
fn a_name_wins_over_an_id_prefix() {
    let root = tempfile::tempdir().unwrap();
    let store = open(&root);
    let a = put(&store, &["a"], &build(&store, "a", &[], None));
    let prefix = &a.id.hex()[..6];
    let b = put(&store, &[prefix], &build(&store, "b", &[], None));
    assert_eq!(store.resolve(prefix).unwrap().id, b.id);
    assert_eq!(store.resolve(&format!("sha256:{prefix}")).unwrap().id, a.id);
}

#[test]
fn put_refuses_incomplete_images_and_names_nothing() {
    let root = tempfile::tempdir().unwrap();
    let store = open(&root);
    let built = build(&store, "x", &[], None);
    let layer = &built.layers[0].digest;
    store.content().delete(layer).unwrap();
    let error = store.put_image(&[r("x")], &built.manifest).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "image {} references blob {layer}, which is not in the content store",
            Digest::of(&built.manifest)
        )
    );
    assert!(matches!(
        store.resolve("x").unwrap_err(),
        StoreError::ImageNotFound { .. }
    ));

    let error = store.put_image(&[r("x")], br#"{"schemaVersion":2}"#).unwrap_err();
    assert!(
        matches!(error, StoreError::UnsupportedMediaType { .. }),
        "{error:?}"
    );
    let error = store.put_image(&[r("x")], b"not json").unwrap_err();
    assert!(
        matches!(error, StoreError::InvalidJson { kind: "manifest", .. }),
        "{error:?}"
    );
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn index_resolves_to_the_host_platform_manifest() {
    let root = tempfile::tempdir().unwrap();
    let store = open(&root);
    let other_arch = if host_arch() == "amd64" { "arm64" } else { "amd64" };
    let foreign = build(&store, "foreign", &[], None);
    let native = build(&store, "native", &[], None);
    let foreign_blob = store.content().write_blob(&foreign.manifest).unwrap();
    let native_blob = store.content().write_blob(&native.manifest).unwrap();
    let missing = Digest::of(b"a platform that was not pulled");
    let platform = |arch: &str| json!({ "architecture": arch, "os": "linux" });
    let mut entries = vec![
        json!({ "mediaType": OCI_MANIFEST, "digest": missing.to_string(), "size": 10, "platform": platform("s390x") }),
        descriptor(OCI_MANIFEST, &foreign_blob),
        descriptor(OCI_MANIFEST, &native_blob),
    ];
    entries[1]["platform"] = platform(other_arch);
    entries[2]["platform"] = platform(host_arch());
    let index =
        serde_json::to_vec(&json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries }))
            .unwrap();

    let image = store.put_image(&[r("multi:1")], &index).unwrap();
    assert_eq!(image.target.media_type().to_string(), OCI_INDEX);
    assert_eq!(image.manifest, native_blob.digest);
    assert_eq!(image.id, native.config.digest);
    assert_eq!(store.resolve("multi:1").unwrap().manifest, native_blob.digest);

    // Without the host's manifest stored, the first stored one stands in (a one-platform pull).
    store.content().delete(&native_blob.digest).unwrap();
    let image = store.put_image(&[r("multi:2")], &index).unwrap();
    assert_eq!(image.manifest, foreign_blob.digest);
}

#[test]
fn index_without_any_stored_manifest_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let store = open(&root);
    let missing = Digest::of(b"nothing");
    let index = json!({ "schemaVersion": 2, "manifests": [{ "mediaType": OCI_MANIFEST, "digest": missing.to_string(), "size": 7 }] });
    let bytes = serde_json::to_vec(&index).unwrap();
    let error = store.put_image(&[r("empty")], &bytes).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "index {} has no image manifest in the content store",
            Digest::of(&bytes)
        )
    );
}

#[test]
fn tag_untag_and_moving_names() {
    let root = tempfile::tempdir().unwrap();
    let store = open(&root);
    let first = put(&store, &["app:1"], &build(&store, "first", &[], None));
    let tagged = store
        .tag(&first.id.hex()[..8], &r("localhost:5000/other:v2"))
        .unwrap();
    assert_eq!(
        tagged.names,
        vec![r("docker.io/library/app:1"), r("localhost:5000/other:v2")]
    );
    assert_eq!(store.resolve("localhost:5000/other:v2").unwrap().id, first.id);

    // Putting another image under an existing name moves the name, as `docker build -t` does.
    let second = put(&store, &["app:1"], &build(&store, "second", &[], None));
    assert_eq!(store.resolve("app:1").unwrap().id, second.id);
    assert_eq!(
        store.resolve(first.id.as_str()).unwrap().names,
        vec![r("localhost:5000/other:v2")]
    );

    store.untag(&r("localhost:5000/other:v2")).unwrap();
    assert_eq!(
        store.resolve(first.id.as_str()).unwrap_err().to_string(),
        format!("No such image: {}", first.id)
    );
    let error = store.untag(&r("localhost:5000/other:v2")).unwrap_err();
    assert_eq!(error.to_string(), "No such image: localhost:5000/other:v2");
    assert_eq!(
        store.tag("nothing", &r("x")).unwrap_err().to_string(),
        "No such image: nothing:latest"
    );
}

#[test]
fn list_groups_names_by_image_newest_first() {
    let root = tempfile::tempdir().unwrap();
    let store = open(&root);
    let a = put(&store, &["a:1", "a:2"], &build(&store, "a", &[], None));
    let b = put(&store, &["b"], &build(&store, "b", &[], None));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    store.tag("a:1", &r("a:3")).unwrap();
    let listed = store.list().unwrap();
    let summary: Vec<(Digest, Vec<String>)> = listed
        .iter()
        .map(|i| {
            (
                i.id.clone(),
                i.names.iter().map(ImageRef::familiar_string).collect(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (a.id, vec!["a:1".into(), "a:2".into(), "a:3".into()]),
            (b.id, vec!["b:latest".into()])
        ]
    );
}

#[test]
fn rmi_by_name_untags_until_the_last_name() {
    let root = tempfile::tempdir().unwrap();
    let store = open(&root);
    let image = put(&store, &["a:1", "a:2"], &build(&store, "a", &[], None));
    assert_eq!(
        store.remove("a:1", false).unwrap(),
        Removal {
            untagged: vec![r("a:1")],
            deleted: None
        }
    );
    assert_eq!(store.resolve("a:2").unwrap().names, vec![r("a:2")]);
    assert_eq!(
        store.remove("a:2", false).unwrap(),
        Removal {
            untagged: vec![r("a:2")],
            deleted: Some(image.id.clone())
        }
    );
    assert!(store.resolve(image.id.as_str()).is_err());
    assert_eq!(
        store.remove("a:2", false).unwrap_err().to_string(),
        "No such image: a:2"
    );
}

#[test]
fn rmi_by_id_with_several_repositories_needs_force() {
    let root = tempfile::tempdir().unwrap();
    let store = open(&root);
    let image = put(&store, &["a:1", "b:1"], &build(&store, "ab", &[], None));
    let short = &image.id.hex()[..12];
    let error = store.remove(short, false).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "conflict: unable to delete {short} (must be forced) - image is referenced in multiple repositories"
        )
    );
    assert_eq!(
        store.resolve(short).unwrap().names.len(),
        2,
        "a refused rmi changes nothing"
    );
    let removal = store.remove(short, true).unwrap();
    assert_eq!(
        removal,
        Removal {
            untagged: vec![r("a:1"), r("b:1")],
            deleted: Some(image.id)
        }
    );
    assert!(store.list().unwrap().is_empty());

    // Two tags of one repository are two references too (Docker's isSingleReference).
    let image = put(&store, &["c:1", "c:2"], &build(&store, "c", &[], None));
    assert!(matches!(
        store.remove(image.id.hex(), false),
        Err(StoreError::ReferencedInMultipleRepositories { .. })
    ));
}

#[test]
fn rmi_by_id_of_a_single_reference_deletes() {
    let root = tempfile::tempdir().unwrap();
    let store = open(&root);
    let built = build(&store, "d", &[], None);
    let digest_name = format!("d@{}", Digest::of(&built.manifest));
    let image = put(&store, &["d:1", &digest_name], &built);
    // One tag plus a digest name of the same repository is a single reference.
    let removal = store.remove(&image.id.hex()[..4], false).unwrap();
    assert_eq!(removal.untagged.len(), 2);
    assert_eq!(removal.deleted, Some(image.id));
}

#[test]
fn rmi_of_a_repositorys_last_tag_drops_its_digest_names() {
    let root = tempfile::tempdir().unwrap();
    let store = open(&root);
    let built = build(&store, "e", &[], None);
    let digest_name = format!("e@{}", Digest::of(&built.manifest));
    let image = put(&store, &["e:1", &digest_name, "f:1"], &built);
    let removal = store.remove("e:1", false).unwrap();
    assert_eq!(
        removal,
        Removal {
            untagged: vec![r("e:1"), r(&digest_name)],
            deleted: None
        }
    );
    assert_eq!(store.resolve(image.id.as_str()).unwrap().names, vec![r("f:1")]);
}

#[test]
fn blobs_of_a_resolved_image_read_back_verified() {
    let root = tempfile::tempdir().unwrap();
    let store = open(&root);
    let built = build(&store, "read", &[], None);
    let image = put(&store, &["read"], &built);
    for layer in &built.layers {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut store.content().open(&layer.digest).unwrap(), &mut bytes).unwrap();
        assert_eq!(Digest::of(&bytes), layer.digest);
    }
    assert_eq!(store.content().stat(&image.id).unwrap().size, built.config.size);
}
