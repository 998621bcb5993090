//! Crash leftovers: active snapshots whose handle or process died before commit, and stray directories.
//! `cleanup` must remove them, and only them.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use kiln_snapshotter::{Backend, CleanupReport, ErrorKind, Kind};
use rustix::fs::{FlockOperation, Mode, OFlags};

use crate::common::{Fixture, assert_kind, commit_layer, snapshot_dirs};

both_backends!(
    dropped_handle_leaves_a_swept_snapshot,
    crashed_process_leaves_a_swept_snapshot,
    stray_directories_are_swept
);

fn dropped_handle_leaves_a_swept_snapshot(backend: Backend) {
    let fx = Fixture::new(backend);
    let first = fx.open();
    commit_layer(&fx, &*first, "kept", None, |root| {
        fs::write(root.join("f"), "x").unwrap();
    });
    first.prepare("orphan", Some("kept")).unwrap();
    let orphan_dir = first.upper_dir("orphan").unwrap();
    drop(first); // "crash" between prepare and commit

    let second = fx.open();
    second.prepare("live", Some("kept")).unwrap();
    assert_eq!(
        second.stat("orphan").unwrap().kind,
        Kind::Active,
        "nothing is swept before cleanup"
    );
    let report = second.cleanup().unwrap();
    assert_eq!(report.snapshots, ["orphan"]);
    assert!(report.directories >= 1);
    assert_kind(second.stat("orphan"), ErrorKind::NotFound);
    assert!(!orphan_dir.exists());
    assert_eq!(
        second.stat("live").unwrap().kind,
        Kind::Active,
        "a live handle's snapshot stays"
    );
    assert_eq!(second.stat("kept").unwrap().kind, Kind::Committed);
    assert_eq!(
        second.cleanup().unwrap(),
        CleanupReport::default(),
        "a second sweep finds nothing"
    );
}

const CHILD_ROOT: &str = "KILN_SNAPSHOTTER_CRASH_ROOT";
const CHILD_BACKEND: &str = "KILN_SNAPSHOTTER_CRASH_BACKEND";

/// Run by `crashed_process_leaves_a_swept_snapshot` in a child process: prepares, then dies without
/// unwinding (no destructor runs, as in a kill -9).
#[test]
#[ignore = "helper: only meaningful when spawned by crashed_process_leaves_a_swept_snapshot"]
fn crash_child() {
    let root = PathBuf::from(std::env::var_os(CHILD_ROOT).expect("spawned by the crash test"));
    let backend: Backend = std::env::var(CHILD_BACKEND).unwrap().parse().unwrap();
    let s = kiln_snapshotter::open(&root, backend).unwrap();
    s.prepare("crashed", Some("base")).unwrap();
    fs::write(s.upper_dir("crashed").unwrap().join("half-done"), "x").unwrap();
    std::process::abort();
}

fn crashed_process_leaves_a_swept_snapshot(backend: Backend) {
    let fx = Fixture::new(backend);
    let s = fx.open();
    commit_layer(&fx, &*s, "base", None, |root| {
        fs::write(root.join("f"), "x").unwrap();
    });
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash::crash_child", "--ignored", "--test-threads=1"])
        .env(CHILD_ROOT, &fx.root)
        .env(CHILD_BACKEND, backend.as_str())
        .status()
        .unwrap();
    assert!(!status.success(), "the child aborts");
    let crashed_dir = s.upper_dir("crashed").expect("the child prepared before dying");
    assert!(crashed_dir.join("half-done").exists());

    let report = s.cleanup().unwrap();
    assert_eq!(report.snapshots, ["crashed"]);
    assert_kind(s.stat("crashed"), ErrorKind::NotFound);
    assert!(!crashed_dir.exists());
    s.prepare("crashed", Some("base")).expect("the key is free again");
}

fn stray_directories_are_swept(backend: Backend) {
    let fx = Fixture::new(backend);
    let s = fx.open();
    commit_layer(&fx, &*s, "base", None, |root| {
        fs::write(root.join("f"), "x").unwrap();
    });
    let before = snapshot_dirs(&fx.root);
    let snapshots = fx.root.join("snapshots");
    // A staging dir and an id dir from a crash mid-prepare, a half-deleted dir from a crash mid-remove.
    for stray in ["new-1-dead-0/fs/etc", "999/fs/usr", "rm-1-dead-0/fs"] {
        fs::create_dir_all(snapshots.join(stray)).unwrap();
    }
    fs::write(snapshots.join("999/fs/usr/file"), "x").unwrap();
    // A staging dir some live handle is still filling: locked, so it must survive.
    fs::create_dir(snapshots.join("new-in-flight")).unwrap();
    let in_flight = rustix::fs::open(snapshots.join("new-in-flight"), OFlags::RDONLY, Mode::empty()).unwrap();
    rustix::fs::flock(&in_flight, FlockOperation::LockExclusive).unwrap();
    // Something that is not the snapshotter's.
    fs::write(snapshots.join("README"), "not ours").unwrap();

    let report = s.cleanup().unwrap();
    assert_eq!(report.directories, 3);
    assert!(report.snapshots.is_empty());
    let mut expected = before.clone();
    expected.extend(["README".to_owned(), "new-in-flight".to_owned()]);
    expected.sort();
    assert_eq!(snapshot_dirs(&fx.root), expected);
    assert!(s.upper_dir("base").unwrap().join("f").exists());

    drop(in_flight);
    assert_eq!(
        s.cleanup().unwrap().directories,
        1,
        "once unlocked it is a leftover too"
    );
}
