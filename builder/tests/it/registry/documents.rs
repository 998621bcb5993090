//! Manifest parsing and platform choice, and the limits a registry cannot talk kiln past.

use kiln_builder::content::ContentStore;
use kiln_builder::registry::manifest::{
    DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, Document, OCI_INDEX, OCI_MANIFEST, parse,
};
use kiln_builder::registry::{MAX_MANIFEST_SIZE, NoProgress, Platform, RegistryError};
use serde_json::json;

use super::support::{Registry, client, image};

const DIGEST: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

#[test]
fn platforms_parse_normalise_and_match() {
    let cases = [
        ("linux/amd64", "linux/amd64"),
        ("linux/x86_64", "linux/amd64"),
        ("linux/arm64/v8", "linux/arm64"),
        ("linux/aarch64", "linux/arm64"),
        ("linux/arm", "linux/arm/v7"),
        ("linux/armel", "linux/arm/v6"),
        ("windows/amd64", "windows/amd64"),
        ("Linux/AMD64", "linux/amd64"),
    ];
    for (input, normal) in cases {
        assert_eq!(
            Platform::parse(input, &kiln_builder::platform::host())
                .unwrap()
                .to_string(),
            normal,
            "{input}"
        );
    }
    let host = kiln_builder::platform::host();
    assert_eq!(
        Platform::parse("linux", &kiln_builder::platform::host())
            .unwrap()
            .architecture(),
        host.architecture()
    );
    assert_eq!(
        Platform::parse("arm64", &kiln_builder::platform::host()).unwrap(),
        Platform::new(host.os(), "arm64", None)
    );
    for bad in ["", "linux/", "/amd64", "linux/amd64/v8/x", "linux/am d64"] {
        let error = Platform::parse(bad, &kiln_builder::platform::host()).unwrap_err();
        assert!(
            error.to_string().contains("cannot parse platform specifier"),
            "{bad:?}: {error}"
        );
    }
    let v7: Platform = Platform::parse("linux/arm/v7", &kiln_builder::platform::host()).unwrap();
    assert!(
        v7.matches(&Platform::parse("linux/arm/v6", &kiln_builder::platform::host()).unwrap()),
        "older ARM runs on newer"
    );
    assert!(
        !Platform::parse("linux/arm/v6", &kiln_builder::platform::host())
            .unwrap()
            .matches(&v7)
    );
    assert!(!v7.matches(&Platform::parse("linux/arm64", &kiln_builder::platform::host()).unwrap()));
}

#[test]
fn docker_and_oci_documents_parse_alike() {
    let manifest = |media_type: &str| {
        json!({
            "schemaVersion": 2, "mediaType": media_type,
            "config": { "mediaType": "application/vnd.docker.container.image.v1+json", "digest": DIGEST, "size": 7 },
            "layers": [{ "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": DIGEST, "size": 9 }],
        })
        .to_string()
    };
    for media_type in [OCI_MANIFEST, DOCKER_MANIFEST] {
        let (parsed_type, document) = parse("app", "", manifest(media_type).as_bytes()).unwrap();
        assert_eq!(parsed_type, media_type);
        let Document::Manifest { config, layers } = document else {
            panic!("a manifest")
        };
        assert_eq!((config.size, layers.len(), layers[0].size), (7, 1, 9));
    }
    let list = json!({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST_LIST,
        "manifests": [{ "mediaType": DOCKER_MANIFEST, "digest": DIGEST, "size": 3,
                        "platform": { "os": "linux", "architecture": "arm", "variant": "v7" } }],
    });
    let (_, document) = parse("app", "", list.to_string().as_bytes()).unwrap();
    let Document::Index { manifests } = document else {
        panic!("an index")
    };
    assert_eq!(
        manifests[0].platform,
        Some(Platform::parse("linux/arm/v7", &kiln_builder::platform::host()).unwrap())
    );

    // OCI lets `mediaType` be left out: the served type, else the shape, decides.
    let bare = json!({ "schemaVersion": 2, "manifests": [] }).to_string();
    assert_eq!(parse("app", "", bare.as_bytes()).unwrap().0, OCI_INDEX);
    assert_eq!(
        parse("app", &format!("{OCI_INDEX}; charset=utf-8"), bare.as_bytes())
            .unwrap()
            .0,
        OCI_INDEX
    );
}

#[test]
fn malformed_and_unknown_manifests_are_clear_errors() {
    let error = parse("app:1", "", b"{\"schemaVersion\": 2, \"config\": ").unwrap_err();
    assert!(matches!(error, RegistryError::InvalidManifest { .. }));
    assert_eq!(error.to_string(), "invalid manifest app:1");

    let schema1 = json!({ "schemaVersion": 1, "name": "app", "tag": "1", "fsLayers": [] }).to_string();
    let error = parse(
        "app:1",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        schema1.as_bytes(),
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "unsupported manifest media type \"application/vnd.docker.distribution.manifest.v1+prettyjws\" for app:1"
    );

    let sha512 = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": { "mediaType": "x", "digest": format!("sha512:{}", "a".repeat(128)), "size": 1 },
        "layers": [],
    });
    let error = parse("app:1", "", sha512.to_string().as_bytes()).unwrap_err();
    assert!(
        matches!(error, RegistryError::UnsupportedDigest { .. }),
        "{error:?}"
    );

    let negative = manifest_with_size(-1);
    assert!(matches!(
        parse("app:1", "", negative.as_bytes()),
        Err(RegistryError::InvalidManifest { .. })
    ));
}

fn manifest_with_size(size: i64) -> String {
    json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": { "mediaType": "x", "digest": DIGEST, "size": size }, "layers": [],
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_index_entry_declaring_a_huge_manifest_is_refused() {
    let registry = Registry::start();
    let source = tempfile::tempdir().unwrap();
    let content = ContentStore::open(source.path()).unwrap();
    let built = image(&content, "huge", "linux/amd64", 0);
    client(None)
        .push(
            &content,
            &built.target,
            &registry.reference("app:small"),
            None,
            &NoProgress,
        )
        .await
        .unwrap();
    // A real manifest, listed with a size no manifest has.
    let index = json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{ "mediaType": OCI_MANIFEST, "digest": built.target.digest, "size": 1u64 << 40,
                        "platform": { "os": "linux", "architecture": "amd64" } }],
    })
    .to_string();
    let url = format!("http://{}/v2/app/manifests/huge", registry.host());
    let response = reqwest::Client::new()
        .put(url)
        .header("content-type", OCI_INDEX)
        .body(index)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", registry.log());

    let error = client(None)
        .resolve(
            &registry.reference("app:huge"),
            &Platform::parse("linux/amd64", &kiln_builder::platform::host()).unwrap(),
            &NoProgress,
        )
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "manifest {} is {} bytes, more than the {MAX_MANIFEST_SIZE} bytes allowed",
            built.target.digest,
            1u64 << 40
        )
    );
}
