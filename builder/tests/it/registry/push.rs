//! Pushes: round trips, interop with skopeo, exists-checks, cross-repository mounts, chunks.

use std::time::Duration;

use kiln_builder::content::ContentStore;
use kiln_builder::distribution::{pull_image, push_image};
use kiln_builder::registry::{Client, NoProgress, NoRetain};
use kiln_builder::store::ImageStore;

use super::support::{FaultyProxy, Recorded, Recorder, Registry, client, image, skopeo, sorted};

#[tokio::test(flavor = "multi_thread")]
async fn push_then_pull_round_trips_and_skopeo_reads_it() {
    let registry = Registry::start();
    let source = tempfile::tempdir().unwrap();
    let content = ContentStore::open(source.path()).unwrap();
    let built = image(&content, "round-trip", "linux/amd64", 300 * 1024);
    let reference = registry.reference("team/app:v1");
    let recorder = Recorder::default();
    let pushed = client(None)
        .push(&content, &built.target, &reference, None, &recorder)
        .await
        .unwrap();
    assert_eq!(pushed.digest, built.target.digest);
    assert_eq!(pushed.size, built.target.size);
    let uploaded = recorder.digests(|e| match e {
        Recorded::Done(d) => Some(d.clone()),
        _ => None,
    });
    assert_eq!(uploaded, sorted(built.blobs()));
    let layers: Vec<_> = built.layers.iter().map(|l| l.digest.clone()).collect();
    assert_eq!(
        recorder.events().first(),
        Some(&Recorded::Manifest(built.config.digest.clone(), layers)),
        "the manifest's blobs are announced before they move"
    );
    assert!(recorder.events().contains(&Recorded::ManifestPushed(
        "v1".into(),
        built.target.digest.clone()
    )));

    let inspect: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ]))
    .unwrap();
    assert_eq!(inspect["Digest"], built.target.digest.to_string());
    let layers: Vec<String> = built.layers.iter().map(|l| l.digest.to_string()).collect();
    assert_eq!(inspect["Layers"], serde_json::json!(layers));

    let root = tempfile::tempdir().unwrap();
    let store = ContentStore::open(root.path()).unwrap();
    let pulled = client(None)
        .pull(
            &reference,
            &kiln_builder::platform::host(),
            &store,
            &NoRetain,
            &NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(pulled.manifest.digest, built.target.digest);
    assert_eq!(pulled.config.digest, built.config.digest);
    let pulled_layers: Vec<_> = pulled.layers.iter().map(|l| l.digest.clone()).collect();
    assert_eq!(
        pulled_layers,
        built.layers.iter().map(|l| l.digest.clone()).collect::<Vec<_>>()
    );
    for blob in built.blobs() {
        assert_eq!(store.read(&blob).unwrap(), content.read(&blob).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_push_uploads_nothing() {
    let registry = Registry::start();
    let source = tempfile::tempdir().unwrap();
    let content = ContentStore::open(source.path()).unwrap();
    let built = image(&content, "twice", "linux/amd64", 0);
    let reference = registry.reference("app:1");
    client(None)
        .push(&content, &built.target, &reference, None, &NoProgress)
        .await
        .unwrap();

    let recorder = Recorder::default();
    client(None)
        .push(&content, &built.target, &reference, None, &recorder)
        .await
        .unwrap();
    let exists = recorder.digests(|e| match e {
        Recorded::Exists(d) => Some(d.clone()),
        _ => None,
    });
    assert_eq!(exists, sorted(built.blobs()));
    assert!(
        !recorder
            .events()
            .iter()
            .any(|e| matches!(e, Recorded::Start(_) | Recorded::Done(_))),
        "{:?}",
        recorder.events()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pushing_to_another_repository_mounts_the_blobs() {
    let registry = Registry::start();
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let built = image(store.content(), "mounted", "linux/amd64", 0);
    let first = registry.reference("first/app:1");
    let manifest = store.content().read(&built.target.digest).unwrap();
    store.put_image(std::slice::from_ref(&first), &manifest).unwrap();
    push_image(&store, &client(None), &first.to_string(), &first, &NoProgress)
        .await
        .unwrap();

    // The image's name in `first` tells push_image where the blobs can be mounted from.
    let second = registry.reference("second/app:1");
    let recorder = Recorder::default();
    let pushed = push_image(&store, &client(None), &first.to_string(), &second, &recorder)
        .await
        .unwrap();
    assert_eq!(pushed.digest, built.target.digest);
    let events = recorder.events();
    let mounted: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Recorded::Mounted(d, from) => Some((d.clone(), from.clone())),
            _ => None,
        })
        .collect();
    let expected: Vec<_> = sorted(built.blobs())
        .into_iter()
        .map(|d| (d, "first/app".to_owned()))
        .collect();
    let mut mounted_sorted = mounted.clone();
    mounted_sorted.sort();
    assert_eq!(mounted_sorted, expected, "{events:?}");
    assert!(
        !events.iter().any(|e| matches!(e, Recorded::Done(_))),
        "nothing uploaded: {events:?}"
    );

    let copy = tempfile::tempdir().unwrap();
    let copy = ImageStore::open(copy.path()).unwrap();
    let pulled = pull_image(
        &copy,
        &client(None),
        &second,
        &kiln_builder::platform::host(),
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(pulled.id, built.config.digest);
}

#[tokio::test(flavor = "multi_thread")]
async fn large_blobs_go_up_in_chunks_with_progress() {
    let registry = Registry::start();
    let source = tempfile::tempdir().unwrap();
    let content = ContentStore::open(source.path()).unwrap();
    let built = image(&content, "chunked", "linux/amd64", 1 << 20);
    let reference = registry.reference("app:chunked");
    let chunked = Client::builder()
        .anonymous()
        .chunk_size(100 * 1024)
        .retries(1, Duration::from_millis(20))
        .build()
        .unwrap();
    let recorder = Recorder::default();
    chunked
        .push(&content, &built.target, &reference, None, &recorder)
        .await
        .unwrap();

    let big = &built.layers[1];
    let progress: Vec<u64> = recorder
        .events()
        .iter()
        .filter_map(|e| match e {
            Recorded::Progress(d, done) if *d == big.digest => Some(*done),
            _ => None,
        })
        .collect();
    assert!(
        progress.windows(2).all(|w| w[0] <= w[1]),
        "progress only grows: {progress:?}"
    );
    assert_eq!(progress.last(), Some(&big.size));
    assert!(progress.len() > 1);

    let root = tempfile::tempdir().unwrap();
    let store = ContentStore::open(root.path()).unwrap();
    client(None)
        .pull(
            &reference,
            &kiln_builder::platform::host(),
            &store,
            &NoRetain,
            &NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(
        store.read(&big.digest).unwrap(),
        content.read(&big.digest).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_rides_out_an_unavailable_registry() {
    let registry = Registry::start();
    let proxy = FaultyProxy::start(&registry, 3, 0).await;
    let source = tempfile::tempdir().unwrap();
    let content = ContentStore::open(source.path()).unwrap();
    let built = image(&content, "retried", "linux/amd64", 0);
    let pushed = client(None)
        .push(
            &content,
            &built.target,
            &proxy.reference("app:1"),
            None,
            &NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(pushed.digest, built.target.digest);
    assert_eq!(proxy.faults().0, 3);
    let inspect = skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{}", registry.reference("app:1")),
    ]);
    assert!(inspect.contains(built.target.digest.as_str()), "{inspect}");
}
