//! Several processes (and connections) on one root, with the GC running all the time.

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::Duration;

use kiln_builder::content::{BlobSource, Digest};
use kiln_builder::store::{GcOptions, ImageStore};

use super::{build, r};

const CHILD_ROOT_ENV: &str = "KILN_IT_STORE_CHILD_ROOT";
const ROUNDS: usize = 16;

/// Builds, names, retags and removes images while collecting garbage with no grace period,
/// then checks that every image it kept is whole. Writers lease their blobs, as the protocol
/// says (without the lease, the other side's GC deletes fresh blobs and `put_image` fails).
fn workload(root: &Path, who: &str) {
    let store = ImageStore::open(root).unwrap();
    let eager = GcOptions {
        grace: Duration::ZERO,
        ..GcOptions::default()
    };
    for i in 0..ROUNDS {
        let lease = store.lease(Duration::from_secs(600)).unwrap();
        let built = build(&store, &format!("{who}-{i}"), &[], Some(&lease));
        let name = format!("{who}/app:{i}");
        store.put_image(&[r(&name)], &built.manifest).unwrap();
        lease.release().unwrap();

        let temporary = format!("{who}/app:tmp{i}");
        store.tag(&name, &r(&temporary)).unwrap();
        assert_eq!(store.remove(&temporary, false).unwrap().deleted, None);
        if i % 2 == 1 {
            assert!(store.remove(&name, false).unwrap().deleted.is_some());
        }
        store.gc(&eager).unwrap();
    }
    for i in (0..ROUNDS).step_by(2) {
        let image = store.resolve(&format!("{who}/app:{i}")).unwrap();
        let _lease = store.lease_image(&image, Duration::from_secs(60)).unwrap();
        let manifest: serde_json::Value =
            serde_json::from_slice(&store.content().read(&image.manifest).unwrap()).unwrap();
        let layer: Digest = manifest["layers"][0]["digest"].as_str().unwrap().parse().unwrap();
        let mut bytes = Vec::new();
        store
            .content()
            .open(&layer)
            .unwrap()
            .read_to_end(&mut bytes)
            .unwrap();
        assert_eq!(bytes, format!("{who}-{i}").repeat(1000).into_bytes());
    }
}

fn names_left(root: &Path) -> usize {
    ImageStore::open(root)
        .unwrap()
        .list()
        .unwrap()
        .iter()
        .map(|image| image.names.len())
        .sum()
}

#[test]
fn two_processes_share_one_root() {
    let root = tempfile::tempdir().unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "store::concurrent::second_process",
            "--include-ignored",
            "--test-threads=1",
        ])
        .env(CHILD_ROOT_ENV, root.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    workload(root.path(), "parent");
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "second process failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("1 passed"),
        "second process ran no workload:\n{stdout}"
    );

    assert_eq!(
        names_left(root.path()),
        ROUNDS,
        "half of each process's images remain"
    );
    let store = ImageStore::open(root.path()).unwrap();
    let report = store
        .gc(&GcOptions {
            grace: Duration::ZERO,
            ..GcOptions::default()
        })
        .unwrap();
    assert_eq!(report.blobs_removed, 0, "everything left is named");
    assert_eq!(store.content().list().unwrap().len(), ROUNDS * 3);
}

/// The other half of `two_processes_share_one_root`, run in a process of its own.
#[test]
#[ignore = "run as a second process by two_processes_share_one_root"]
fn second_process() {
    let root = std::env::var_os(CHILD_ROOT_ENV).expect("started by two_processes_share_one_root");
    workload(Path::new(&root), "child");
}

#[test]
fn two_connections_in_one_process() {
    let root = tempfile::tempdir().unwrap();
    let workers: Vec<_> = ["left", "right"]
        .into_iter()
        .map(|who| {
            let root = root.path().to_owned();
            thread::spawn(move || workload(&root, who))
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    assert_eq!(names_left(root.path()), ROUNDS);
}
