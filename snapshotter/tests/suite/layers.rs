//! What survives from layer to layer: deletions, owners and modes, and every kind of file.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::time::{Duration, SystemTime};

use kiln_snapshotter::Backend;
use rustix::fs::{FileType, Mode, XattrFlags};

use crate::common::{Fixture, commit_layer, owner_mode};

both_backends!(
    removed_files_disappear_in_the_merged_view,
    owners_and_modes_are_kept,
    special_files_are_kept
);

fn removed_files_disappear_in_the_merged_view(backend: Backend) {
    let fx = Fixture::new(backend);
    let s = fx.open();
    commit_layer(&fx, &*s, "base", None, |root| {
        fs::write(root.join("gone"), "x").unwrap();
        fs::write(root.join("kept"), "x").unwrap();
        fs::create_dir_all(root.join("dir/sub")).unwrap();
        fs::write(root.join("dir/old"), "x").unwrap();
    });
    commit_layer(&fx, &*s, "top", Some("base"), |root| {
        fs::remove_file(root.join("gone")).unwrap();
        // Replacing a directory must hide everything the lower one had (an opaque dir for overlay).
        fs::remove_dir_all(root.join("dir")).unwrap();
        fs::create_dir(root.join("dir")).unwrap();
        fs::write(root.join("dir/new"), "y").unwrap();
    });
    let guard = fx.mount(&s.view("v", Some("top")).unwrap(), "v");
    let root = guard.target();
    assert!(!root.join("gone").exists());
    assert!(root.join("kept").exists());
    let mut entries: Vec<_> = fs::read_dir(root.join("dir"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    entries.sort();
    assert_eq!(entries, ["new"]);
    // The base itself is unchanged.
    let base = fx.mount(&s.view("b", Some("base")).unwrap(), "b");
    assert!(base.target().join("gone").exists() && base.target().join("dir/old").exists());
    if backend == Backend::Overlay {
        // The layer differ reads deletions from the upper dir as overlay whiteouts (0/0 char devices).
        let whiteout = fs::symlink_metadata(s.upper_dir("top").unwrap().join("gone")).unwrap();
        assert!(whiteout.file_type().is_char_device() && whiteout.rdev() == 0);
    }
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn owners_and_modes_are_kept(backend: Backend) {
    let fx = Fixture::new(backend);
    let s = fx.open();
    commit_layer(&fx, &*s, "base", None, |root| {
        fs::write(root.join("suid"), "x").unwrap();
        chown(&root.join("suid"), 1234, 5678);
        chmod(&root.join("suid"), 0o4751); // after chown, which clears setuid
        fs::create_dir(root.join("sticky")).unwrap();
        chown(&root.join("sticky"), 42, 43);
        chmod(&root.join("sticky"), 0o1777);
        chmod(root, 0o750);
        chown(root, 7, 7);
    });
    let child = s.prepare("child", Some("base")).unwrap();
    let guard = fx.mount(&child, "child");
    let root = guard.target();
    assert_eq!(owner_mode(&root.join("suid")), (1234, 5678, 0o4751));
    assert_eq!(owner_mode(&root.join("sticky")), (42, 43, 0o1777));
    assert_eq!(
        owner_mode(root),
        (7, 7, 0o750),
        "the root directory's own metadata"
    );
    // Changed in the upper layer (a copy-up for overlay).
    chown(&root.join("suid"), 7, 8);
    chmod(&root.join("suid"), 0o640);
    guard.unmount().unwrap();
    s.commit("changed", "child").unwrap();

    let guard = fx.mount(&s.view("v", Some("changed")).unwrap(), "v");
    assert_eq!(owner_mode(&guard.target().join("suid")), (7, 8, 0o640));
    assert_eq!(owner_mode(&guard.target().join("sticky")), (42, 43, 0o1777));
}

fn special_files_are_kept(backend: Backend) {
    let fx = Fixture::new(backend);
    let s = fx.open();
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    commit_layer(&fx, &*s, "base", None, |root| {
        fs::write(root.join("file"), "data").unwrap();
        fs::hard_link(root.join("file"), root.join("link")).unwrap();
        symlink("../dangling/target", root.join("sym")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("fifo"),
            FileType::Fifo,
            Mode::empty(),
            0,
        )
        .unwrap();
        chmod(&root.join("fifo"), 0o620); // mknod's mode is masked by the umask
        let null = rustix::fs::makedev(1, 3);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("null"),
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o666),
            null,
        )
        .unwrap();
        let loop0 = rustix::fs::makedev(7, 0);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("loop"),
            FileType::BlockDevice,
            Mode::from_raw_mode(0o660),
            loop0,
        )
        .unwrap();
        rustix::fs::setxattr(root.join("file"), "user.kiln", b"yes", XattrFlags::empty()).unwrap();
        rustix::fs::setxattr(
            root.join("file"),
            "trusted.kiln",
            b"root-only",
            XattrFlags::empty(),
        )
        .unwrap();
        fs::File::options()
            .write(true)
            .open(root.join("file"))
            .unwrap()
            .set_modified(mtime)
            .unwrap();
    });
    let guard = fx.mount(&s.prepare("child", Some("base")).unwrap(), "child");
    let root = guard.target();
    let file = fs::symlink_metadata(root.join("file")).unwrap();
    let link = fs::symlink_metadata(root.join("link")).unwrap();
    assert_eq!(
        (file.nlink(), file.ino()),
        (2, link.ino()),
        "hard links share one inode"
    );
    assert_eq!(file.modified().unwrap(), mtime);
    assert_eq!(
        fs::read_link(root.join("sym")).unwrap(),
        Path::new("../dangling/target")
    );
    let fifo = fs::symlink_metadata(root.join("fifo")).unwrap();
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.mode() & 0o7777, 0o620);
    let null = fs::symlink_metadata(root.join("null")).unwrap();
    assert!(null.file_type().is_char_device() && null.rdev() == rustix::fs::makedev(1, 3));
    let loop0 = fs::symlink_metadata(root.join("loop")).unwrap();
    assert!(loop0.file_type().is_block_device() && loop0.rdev() == rustix::fs::makedev(7, 0));
    for (name, value) in [("user.kiln", &b"yes"[..]), ("trusted.kiln", &b"root-only"[..])] {
        let mut buf = [0u8; 64];
        let n = rustix::fs::getxattr(root.join("file"), name, &mut buf).unwrap();
        assert_eq!(&buf[..n], value, "{name}");
    }
}
