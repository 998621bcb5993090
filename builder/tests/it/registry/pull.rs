//! Pulls: by tag and digest, platform choice, errors as Docker words them, verification,
//! interruption and concurrent pulls.

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use kiln_builder::content::{BlobSource, ContentError, ContentStore, Digest};
use kiln_builder::distribution::{DistributionError, pull_image};
use kiln_builder::reference::ImageRef;
use kiln_builder::registry::{Event, NoProgress, NoRetain, Platform, RegistryError, RemoteBlobs, Reporter};
use kiln_builder::store::{ImageStore, StoreError};

use super::support::{
    FaultyProxy, Recorded, Recorder, Registry, client, image, index, oci_layout, skopeo, sorted,
};

fn platform(text: &str) -> Platform {
    Platform::parse(text, &kiln_builder::platform::host()).unwrap()
}

/// Files under `dir`, recursively (to check that nothing half-written is left).
fn files_in(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            files.extend(files_in(&entry.path()));
        } else {
            files.push(entry.path().display().to_string());
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_by_tag_then_by_digest_of_an_image_skopeo_pushed() {
    let registry = Registry::start();
    let source = tempfile::tempdir().unwrap();
    let content = ContentStore::open(source.path()).unwrap();
    let built = image(&content, "tagged", "linux/amd64", 0);
    let layout = oci_layout(&content, &built.target, "v1");
    let destination = format!("docker://{}/app:1", registry.host());
    skopeo(&[
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        &layout,
        &destination,
    ]);

    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let recorder = Recorder::default();
    let reference = registry.reference("app:1");
    let pulled = pull_image(
        &store,
        &client(None),
        &reference,
        &platform("linux/amd64"),
        &recorder,
    )
    .await
    .unwrap();
    assert_eq!(
        pulled.id, built.config.digest,
        "the image ID is the config digest"
    );
    assert_eq!(
        pulled.manifest, built.target.digest,
        "skopeo kept the manifest byte for byte"
    );
    assert_eq!(pulled.names, vec![reference.clone()]);
    let layers: Vec<_> = built.layers.iter().map(|l| l.digest.clone()).collect();
    assert!(
        recorder
            .events()
            .contains(&Recorded::Manifest(built.config.digest.clone(), layers)),
        "the manifest's blobs are announced before they move"
    );
    assert_eq!(
        recorder.digests(|e| match e {
            Recorded::Done(d) => Some(d.clone()),
            _ => None,
        }),
        sorted(built.blobs())
    );
    for blob in built.blobs() {
        assert_eq!(store.content().read(&blob).unwrap(), content.read(&blob).unwrap());
    }
    assert!(files_in(&root.path().join("ingest-v1")).is_empty());

    // By digest: the same image under a digest name; every blob is already here.
    let by_digest: ImageRef = format!("{}/app@{}", registry.host(), built.target.digest)
        .parse()
        .unwrap();
    let recorder = Recorder::default();
    let again = pull_image(
        &store,
        &client(None),
        &by_digest,
        &kiln_builder::platform::host(),
        &recorder,
    )
    .await
    .unwrap();
    assert_eq!(again.id, pulled.id);
    assert!(again.names.contains(&by_digest) && again.names.contains(&reference));
    assert_eq!(
        recorder.digests(|e| match e {
            Recorded::Exists(d) => Some(d.clone()),
            _ => None,
        }),
        sorted(built.blobs())
    );
    assert!(
        !recorder.events().iter().any(|e| matches!(e, Recorded::Start(_))),
        "nothing downloaded twice"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_index_yields_the_manifest_of_the_wanted_platform() {
    let registry = Registry::start();
    let source = tempfile::tempdir().unwrap();
    let content = ContentStore::open(source.path()).unwrap();
    let amd = image(&content, "amd", "linux/amd64", 0);
    let arm = image(&content, "arm", "linux/arm64/v8", 0);
    let target = index(&content, &[(&amd, "linux/amd64"), (&arm, "linux/arm64/v8")]);
    let reference = registry.reference("multi:1");
    client(None)
        .push(&content, &target, &reference, None, &NoProgress)
        .await
        .unwrap();

    for (wanted, expected, other) in [("linux/arm64", &arm, &amd), ("linux/amd64", &amd, &arm)] {
        let root = tempfile::tempdir().unwrap();
        let store = ContentStore::open(root.path()).unwrap();
        let pulled = client(None)
            .pull(&reference, &platform(wanted), &store, &NoRetain, &NoProgress)
            .await
            .unwrap();
        assert_eq!(pulled.target.digest, target.digest, "the index is the target");
        assert_eq!(pulled.manifest.digest, expected.target.digest, "{wanted}");
        assert_eq!(pulled.config.digest, expected.config.digest);
        assert!(store.exists(&target.digest).unwrap() && store.exists(&expected.target.digest).unwrap());
        for blob in expected.blobs() {
            assert!(store.exists(&blob).unwrap());
        }
        for blob in other.blobs() {
            assert!(
                !store.exists(&blob).unwrap(),
                "the other platform's blobs are not fetched"
            );
        }
    }

    let error = client(None)
        .pull(
            &reference,
            &platform("linux/s390x"),
            &ContentStore::open(source.path()).unwrap(),
            &NoRetain,
            &NoProgress,
        )
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "no matching manifest for linux/s390x in the manifest list entries"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_tags_and_repositories_fail_as_docker_says() {
    let registry = Registry::start();
    let source = tempfile::tempdir().unwrap();
    let content = ContentStore::open(source.path()).unwrap();
    let built = image(&content, "known", "linux/amd64", 0);
    client(None)
        .push(
            &content,
            &built.target,
            &registry.reference("app:1"),
            None,
            &NoProgress,
        )
        .await
        .unwrap();
    let host = registry.host();

    let error = client(None)
        .resolve(
            &registry.reference("app:nope"),
            &kiln_builder::platform::host(),
            &NoProgress,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::ManifestUnknown { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!("manifest for {host}/app:nope not found: manifest unknown")
    );

    // This registry answers MANIFEST_UNKNOWN for a repository it never saw, and Docker says so.
    let error = client(None)
        .resolve(
            &registry.reference("nothing:1"),
            &kiln_builder::platform::host(),
            &NoProgress,
        )
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("manifest for {host}/nothing:1 not found: manifest unknown")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_refused_names_the_host() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let reference: ImageRef = format!("127.0.0.1:{port}/app:1").parse().unwrap();
    let error = client(None)
        .resolve(&reference, &kiln_builder::platform::host(), &NoProgress)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("cannot connect to registry 127.0.0.1:{port}: connection refused")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_blob_is_rejected_and_nothing_is_stored() {
    let registry = Registry::start();
    let source = tempfile::tempdir().unwrap();
    let content = ContentStore::open(source.path()).unwrap();
    let built = image(&content, "tampered", "linux/amd64", 64 * 1024);
    let reference = registry.reference("app:1");
    client(None)
        .push(&content, &built.target, &reference, None, &NoProgress)
        .await
        .unwrap();
    let victim = &built.layers[1];
    let data = registry.blob_data(&victim.digest);
    let mut garbage = fs::read(&data).unwrap();
    garbage[1000] ^= 0xff;
    fs::write(&data, &garbage).unwrap();

    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let error = pull_image(
        &store,
        &client(None),
        &reference,
        &kiln_builder::platform::host(),
        &NoProgress,
    )
    .await
    .unwrap_err();
    let DistributionError::Registry(RegistryError::Content(ContentError::DigestMismatch {
        expected, ..
    })) = &error
    else {
        panic!("expected a digest mismatch, got {error:?}");
    };
    assert_eq!(expected, &victim.digest);
    assert!(
        !store.content().exists(&victim.digest).unwrap(),
        "the bad blob is not stored"
    );
    assert!(
        !store.content().exists(&built.target.digest).unwrap(),
        "nor the manifest"
    );
    assert!(
        files_in(&root.path().join("ingest-v1")).is_empty(),
        "no ingest left behind"
    );
    assert!(matches!(
        store.resolve(&reference.to_string()),
        Err(StoreError::ImageNotFound { .. })
    ));

    // The registry's blob, read through the BlobSource, fails the same way.
    let remote = RemoteBlobs::new(client(None), reference.clone(), tokio::runtime::Handle::current());
    let (digest, intact) = (victim.digest.clone(), built.layers[0].clone());
    tokio::task::spawn_blocking(move || {
        let error = remote
            .open(&digest)
            .unwrap()
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(error.to_string().starts_with("digest mismatch"), "{error}");
        let mut bytes = Vec::new();
        remote
            .open(&intact.digest)
            .unwrap()
            .read_to_end(&mut bytes)
            .unwrap();
        assert_eq!(Digest::of(&bytes), intact.digest);
        assert_eq!(remote.stat(&intact.digest).unwrap().size, intact.size);
        let missing = Digest::of(b"not in the registry");
        assert!(remote.open(&missing).err().unwrap().is_not_found());
    })
    .await
    .unwrap();
}

/// Cancels the pull once the big layer has started arriving, as a killed process would stop.
struct CancelOnProgress {
    digest: Digest,
    notify: Arc<tokio::sync::Notify>,
}

impl Reporter for CancelOnProgress {
    fn report(&self, event: Event<'_>) {
        if let Event::BlobProgress { digest, done, .. } = event {
            if *digest == self.digest && done > 0 {
                self.notify.notify_one();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_pull_leaves_nothing_visible_and_the_next_completes() {
    let registry = Registry::start();
    let source = tempfile::tempdir().unwrap();
    let content = ContentStore::open(source.path()).unwrap();
    let built = image(&content, "interrupted", "linux/amd64", 8 << 20);
    let reference = registry.reference("app:1");
    client(None)
        .push(&content, &built.target, &reference, None, &NoProgress)
        .await
        .unwrap();

    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let big = built.layers[1].digest.clone();
    let notify = Arc::new(tokio::sync::Notify::new());
    let reporter = CancelOnProgress {
        digest: big.clone(),
        notify: Arc::clone(&notify),
    };
    let client = client(None);
    let host = kiln_builder::platform::host();
    tokio::select! {
        result = pull_image(&store, &client, &reference, &host, &reporter) => {
            panic!("the pull should have been interrupted, it ended with {result:?}");
        }
        () = notify.notified() => {}
    }
    assert!(matches!(
        store.resolve(&reference.to_string()),
        Err(StoreError::ImageNotFound { .. })
    ));
    // Whatever got stored is whole: blobs are only ever renamed in complete and verified (a
    // commit already under way when the pull was dropped finishes on its blocking thread).
    let mut settled = false;
    for _ in 0..100 {
        if files_in(&root.path().join("ingest-v1")).is_empty() {
            settled = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(settled, "the dropped ingests removed their files");
    for blob in store.content().list().unwrap() {
        store.content().read(&blob.info.digest).unwrap();
    }
    assert!(
        files_in(&root.path().join("ingest-v1")).is_empty(),
        "the dropped ingest removed its file"
    );

    let image = pull_image(
        &store,
        &client,
        &reference,
        &kiln_builder::platform::host(),
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(image.id, built.config.digest);
    assert_eq!(store.content().read(&big).unwrap(), content.read(&big).unwrap());
}

const CHILD_ENV: &str = "KILN_IT_REGISTRY_PULL_CHILD";

fn pull_in_this_process(root: &Path, reference: &ImageRef) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let store = ImageStore::open(root).unwrap();
    runtime
        .block_on(pull_image(
            &store,
            &client(None),
            reference,
            &kiln_builder::platform::host(),
            &NoProgress,
        ))
        .unwrap();
}

#[test]
fn two_processes_pulling_one_image_both_succeed_with_one_copy() {
    let registry = Registry::start();
    let source = tempfile::tempdir().unwrap();
    let content = ContentStore::open(source.path()).unwrap();
    let built = image(&content, "concurrent", "linux/amd64", 4 << 20);
    let reference = registry.reference("app:1");
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(client(None).push(&content, &built.target, &reference, None, &NoProgress))
        .unwrap();

    let root = tempfile::tempdir().unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "registry::pull::second_puller",
            "--include-ignored",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{}\n{reference}", root.path().display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let parent = std::thread::spawn({
        let (root, reference) = (root.path().to_owned(), reference.clone());
        move || pull_in_this_process(&root, &reference)
    });
    let output = child.wait_with_output().unwrap();
    parent.join().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "second process:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let store = ImageStore::open(root.path()).unwrap();
    assert_eq!(
        store.resolve(&reference.to_string()).unwrap().id,
        built.config.digest
    );
    let mut stored: Vec<Digest> = store
        .content()
        .list()
        .unwrap()
        .into_iter()
        .map(|b| b.info.digest)
        .collect();
    stored.sort();
    let mut expected = built.blobs();
    expected.push(built.target.digest.clone());
    assert_eq!(stored, sorted(expected), "each blob once, nothing else");
    assert!(files_in(&root.path().join("ingest-v1")).is_empty());
}

/// The other half of `two_processes_pulling_one_image_both_succeed_with_one_copy`.
#[test]
#[ignore = "run as a second process by two_processes_pulling_one_image_both_succeed_with_one_copy"]
fn second_puller() {
    let job = std::env::var(CHILD_ENV).expect("started by the two-process test");
    let (root, reference) = job.split_once('\n').unwrap();
    pull_in_this_process(Path::new(root), &reference.parse().unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn unavailable_registries_are_retried_and_cut_downloads_resume() {
    let registry = Registry::start();
    let source = tempfile::tempdir().unwrap();
    let content = ContentStore::open(source.path()).unwrap();
    let built = image(&content, "flaky", "linux/amd64", 4 << 20);
    client(None)
        .push(
            &content,
            &built.target,
            &registry.reference("app:1"),
            None,
            &NoProgress,
        )
        .await
        .unwrap();

    // Two 503s, then a connection cut 1 MiB into the responses: the 4 MiB layer is mid-way.
    let proxy = FaultyProxy::start(&registry, 2, 1 << 20).await;
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let recorder = Recorder::default();
    let one_at_a_time = kiln_builder::registry::Client::builder()
        .anonymous()
        .concurrency(1)
        .retries(3, std::time::Duration::from_millis(20))
        .build()
        .unwrap();
    let image = pull_image(
        &store,
        &one_at_a_time,
        &proxy.reference("app:1"),
        &kiln_builder::platform::host(),
        &recorder,
    )
    .await
    .unwrap();
    assert_eq!(image.id, built.config.digest);
    let big = &built.layers[1].digest;
    assert_eq!(store.content().read(big).unwrap(), content.read(big).unwrap());
    assert_eq!(
        proxy.faults(),
        (2, 1, true),
        "503s served, one cut, and a ranged request to resume"
    );
    assert!(
        recorder.events().contains(&Recorded::Retrying),
        "{:?}",
        recorder.events()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_schema2_images_pull_like_oci_ones() {
    let registry = Registry::start();
    let source = tempfile::tempdir().unwrap();
    let content = ContentStore::open(source.path()).unwrap();
    let built = image(&content, "schema2", "linux/amd64", 0);
    let layout = oci_layout(&content, &built.target, "v1");
    let destination = format!("docker://{}/docker:1", registry.host());
    skopeo(&[
        "copy",
        "--quiet",
        "--format",
        "v2s2",
        "--dest-tls-verify=false",
        &layout,
        &destination,
    ]);

    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let reference = registry.reference("docker:1");
    let resolved = client(None)
        .resolve(&reference, &kiln_builder::platform::host(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(
        resolved.manifest.media_type,
        kiln_builder::registry::manifest::DOCKER_MANIFEST
    );
    let layers: Vec<Digest> = resolved.layers.iter().map(|l| l.digest.clone()).collect();
    assert_eq!(
        layers,
        built.layers.iter().map(|l| l.digest.clone()).collect::<Vec<_>>()
    );
    let image = pull_image(
        &store,
        &client(None),
        &reference,
        &kiln_builder::platform::host(),
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(image.id, resolved.config.digest);
    assert_eq!(
        image.target.media_type().to_string(),
        kiln_builder::registry::manifest::DOCKER_MANIFEST
    );
}
