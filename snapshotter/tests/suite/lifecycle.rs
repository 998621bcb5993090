//! prepare / commit / view / remove, and the errors that guard the lifecycle.

use std::collections::BTreeMap;
use std::fs;

use kiln_snapshotter::{Backend, ErrorKind, Kind, Mount, OverlaySnapshotter};

use crate::common::{Fixture, assert_kind, commit_layer, snapshot_dirs};

both_backends!(
    prepare_commit_view,
    keys_and_names_are_unique,
    parents_must_be_committed,
    views_are_read_only,
    remove_with_children_fails,
    labels_are_kept_through_commit,
    upper_dir_holds_the_snapshots_changes,
    backend_is_remembered_by_the_root,
);

fn prepare_commit_view(backend: Backend) {
    let fx = Fixture::new(backend);
    let s = fx.open();

    let mounts = s.prepare("step", None).unwrap();
    assert!(!mounts.iter().any(Mount::is_readonly));
    assert_eq!(
        s.mounts("step").unwrap(),
        mounts,
        "mounts() repeats prepare()'s answer"
    );
    let guard = fx.mount(&mounts, "step");
    fs::write(guard.target().join("hello"), "world").unwrap();
    guard.unmount().unwrap();

    let active = s.stat("step").unwrap();
    assert_eq!((active.kind, active.parent), (Kind::Active, None));
    s.commit("base", "step").unwrap();
    assert_kind(s.stat("step"), ErrorKind::NotFound);
    let base = s.stat("base").unwrap();
    assert_eq!(base.kind, Kind::Committed);
    assert!(base.updated >= base.created);
    assert_kind(s.mounts("base"), ErrorKind::FailedPrecondition);
    let usage = s.usage("base").unwrap();
    assert!(
        usage.inodes >= 2 && usage.size > 0,
        "usage counts the dir and the file: {usage:?}"
    );

    let view = s.view("look", Some("base")).unwrap();
    let guard = fx.mount(&view, "look");
    assert_eq!(fs::read_to_string(guard.target().join("hello")).unwrap(), "world");
    drop(guard);
    let info = s.stat("look").unwrap();
    assert_eq!((info.kind, info.parent.as_deref()), (Kind::View, Some("base")));
    assert_kind(s.commit("from-view", "look"), ErrorKind::FailedPrecondition);

    let names: Vec<String> = s.list().unwrap().into_iter().map(|i| i.name).collect();
    assert_eq!(names, ["base", "look"]);
}

fn keys_and_names_are_unique(backend: Backend) {
    let fx = Fixture::new(backend);
    let s = fx.open();
    s.prepare("k", None).unwrap();
    assert_kind(s.prepare("k", None), ErrorKind::AlreadyExists);
    assert_kind(s.view("k", None), ErrorKind::AlreadyExists);
    s.commit("done", "k").unwrap();
    // Keys and names share one namespace.
    assert_kind(s.prepare("done", None), ErrorKind::AlreadyExists);
    s.prepare("k2", Some("done")).unwrap();
    assert_kind(s.commit("done", "k2"), ErrorKind::AlreadyExists);
    assert_eq!(
        s.stat("k2").unwrap().kind,
        Kind::Active,
        "a refused commit leaves the snapshot active"
    );
    assert_kind(s.commit("k2", "k2"), ErrorKind::AlreadyExists);
    assert_kind(s.prepare("", None), ErrorKind::InvalidArgument);
    assert_kind(s.commit("", "k2"), ErrorKind::InvalidArgument);
    assert_kind(s.commit("x", "missing"), ErrorKind::NotFound);
    assert_kind(s.remove("missing"), ErrorKind::NotFound);
}

fn parents_must_be_committed(backend: Backend) {
    let fx = Fixture::new(backend);
    let s = fx.open();
    assert_kind(s.prepare("child", Some("nowhere")), ErrorKind::NotFound);
    s.prepare("active", None).unwrap();
    assert_kind(s.prepare("child", Some("active")), ErrorKind::FailedPrecondition);
    assert_kind(s.view("child", Some("active")), ErrorKind::FailedPrecondition);
    // Refused creations leave nothing behind.
    assert_kind(s.stat("child"), ErrorKind::NotFound);
    assert_eq!(
        snapshot_dirs(&fx.root).len(),
        1,
        "only the active snapshot's dir: {:?}",
        snapshot_dirs(&fx.root)
    );
}

fn views_are_read_only(backend: Backend) {
    let fx = Fixture::new(backend);
    let s = fx.open();
    commit_layer(&fx, &*s, "one", None, |root| {
        fs::write(root.join("a"), "1").unwrap();
    });
    commit_layer(&fx, &*s, "two", Some("one"), |root| {
        fs::write(root.join("b"), "2").unwrap();
    });
    // No parent, one parent (a bind for overlay), two parents (a lower-only overlay).
    for (key, parent) in [("v0", None), ("v1", Some("one")), ("v2", Some("two"))] {
        let mounts = s.view(key, parent).unwrap();
        assert!(mounts.iter().all(Mount::is_readonly), "{mounts:?}");
        let guard = fx.mount(&mounts, key);
        let err = fs::write(guard.target().join("new"), "x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc_erofs()), "{key}: {err}");
        if parent.is_some() {
            let err = fs::remove_file(guard.target().join("a")).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc_erofs()), "{key}: {err}");
        }
    }
}

fn libc_erofs() -> i32 {
    rustix::io::Errno::ROFS.raw_os_error()
}

fn remove_with_children_fails(backend: Backend) {
    let fx = Fixture::new(backend);
    let s = fx.open();
    commit_layer(&fx, &*s, "base", None, |root| {
        fs::write(root.join("f"), "x").unwrap();
    });
    s.prepare("child", Some("base")).unwrap();
    s.view("peek", Some("base")).unwrap();
    let err = s.remove("base").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
    assert!(err.to_string().contains("2 child"), "{err}");
    assert_eq!(s.stat("base").unwrap().kind, Kind::Committed);

    s.remove("child").unwrap();
    s.remove("peek").unwrap();
    let base_dir = s.upper_dir("base").unwrap();
    s.remove("base").unwrap();
    assert_kind(s.stat("base"), ErrorKind::NotFound);
    assert!(!base_dir.exists());
    assert!(s.list().unwrap().is_empty());
    assert!(
        snapshot_dirs(&fx.root).is_empty(),
        "{:?}",
        snapshot_dirs(&fx.root)
    );
}

fn labels_are_kept_through_commit(backend: Backend) {
    let fx = Fixture::new(backend);
    let s = fx.open();
    s.prepare("k", None).unwrap();
    let labels = BTreeMap::from([("kiln.step".to_owned(), "RUN make".to_owned())]);
    assert_eq!(s.set_labels("k", labels.clone()).unwrap().labels, labels);
    s.commit("n", "k").unwrap();
    assert_eq!(s.stat("n").unwrap().labels, labels);
    assert!(s.set_labels("n", BTreeMap::new()).unwrap().labels.is_empty());
}

fn upper_dir_holds_the_snapshots_changes(backend: Backend) {
    let fx = Fixture::new(backend);
    let s = fx.open();
    commit_layer(&fx, &*s, "base", None, |root| {
        fs::write(root.join("old"), "1").unwrap();
    });
    commit_layer(&fx, &*s, "top", Some("base"), |root| {
        fs::write(root.join("new"), "2").unwrap();
    });
    let upper = s.upper_dir("top").unwrap();
    assert_eq!(fs::read_to_string(upper.join("new")).unwrap(), "2");
    // Overlay stores only the changes; copy stores the whole tree.
    assert_eq!(upper.join("old").exists(), backend == Backend::Copy);
}

fn backend_is_remembered_by_the_root(backend: Backend) {
    let fx = Fixture::new(backend);
    drop(fx.open());
    let auto = kiln_snapshotter::open(&fx.root, Backend::Auto).unwrap();
    assert_eq!(auto.backend(), backend);
    let other = if backend == Backend::Copy {
        Backend::Overlay
    } else {
        Backend::Copy
    };
    let err = kiln_snapshotter::open(&fx.root, other)
        .err()
        .expect("other backend refused");
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
}

#[test]
fn auto_picks_overlay_where_it_works() {
    // This machine runs a kernel with overlayfs on a real filesystem: the probe must find it.
    let fx = Fixture::new(Backend::Auto);
    let s = kiln_snapshotter::open(&fx.root, Backend::Auto).unwrap();
    assert_eq!(s.backend(), Backend::Overlay);
}

#[test]
fn roots_overlay_cannot_express_fall_back_to_copy() {
    let fx = Fixture::new(Backend::Auto);
    let root = fx.root.join("a:b");
    let err = kiln_snapshotter::open(&root, Backend::Overlay)
        .err()
        .expect("':' cannot be in lowerdir");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert_eq!(
        kiln_snapshotter::open(&root, Backend::Auto).unwrap().backend(),
        Backend::Copy
    );
}

#[test]
fn the_overlay_probe_is_remembered_for_its_filesystem_and_kernel() {
    let fx = Fixture::new(Backend::Overlay);
    let probed = OverlaySnapshotter::open(&fx.root)
        .unwrap()
        .mount_options()
        .to_vec();
    let db = rusqlite::Connection::open(fx.root.join("metadata.db")).unwrap();
    let remember = |value: &str| {
        db.execute(
            "UPDATE settings SET value = ?1 WHERE key = 'overlay_probe'",
            [value],
        )
        .unwrap()
    };
    let stored: String = db
        .query_row(
            "SELECT value FROM settings WHERE key = 'overlay_probe'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let (identity, options) = stored.split_once('\n').unwrap();
    assert_eq!(options, probed.join(","));
    // Same filesystem and kernel: what was remembered is used, nothing is probed.
    assert_eq!(remember(&format!("{identity}\nmarker,other")), 1);
    let again = kiln_snapshotter::open(&fx.root, Backend::Auto).unwrap();
    assert_eq!(again.backend(), Backend::Overlay);
    drop(again);
    assert_eq!(
        OverlaySnapshotter::open(&fx.root).unwrap().mount_options(),
        ["marker", "other"]
    );
    // A root moved to another filesystem (or booted on another kernel) probes again.
    remember(&format!("{identity}-elsewhere\nmarker"));
    assert_eq!(
        OverlaySnapshotter::open(&fx.root).unwrap().mount_options(),
        probed
    );
}
