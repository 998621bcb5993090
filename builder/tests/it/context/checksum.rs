//! What changes a selection's checksum, and what does not.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use kiln_builder::context::Source;
use kiln_builder::frontend::dockerignore::Patterns;

use super::Tree;

fn app() -> Tree {
    let tree = Tree::new();
    tree.file("app/main.rs", "fn main() {}\n")
        .file("app/lib/util.rs", "pub fn util() {}\n")
        .symlink("app/current", "lib")
        .file("unrelated.txt", "other\n");
    tree
}

fn set_mtime(tree: &Tree, rel: &str, time: SystemTime) {
    // Read-only opens can set times too (we own the files), and directories open no other way.
    std::fs::File::open(tree.join(rel))
        .unwrap()
        .set_modified(time)
        .unwrap();
}

#[test]
fn the_checksum_ignores_timestamps() {
    let tree = app();
    let before = tree.checksum("app");
    assert_eq!(tree.checksum("app"), before, "stable across walks");
    set_mtime(
        &tree,
        "app/main.rs",
        SystemTime::now() + Duration::from_secs(3600),
    );
    set_mtime(&tree, "app/lib", SystemTime::UNIX_EPOCH);
    assert_eq!(tree.checksum("app"), before);
}

#[test]
fn a_content_change_of_the_same_size_changes_it() {
    let tree = app();
    let before = tree.checksum("app");
    tree.file("app/main.rs", "fn main() {1}\n");
    assert_ne!(tree.checksum("app"), before);
}

#[test]
fn a_mode_change_changes_it() {
    let tree = app();
    let before = tree.checksum("app");
    std::fs::set_permissions(tree.join("app/main.rs"), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_ne!(tree.checksum("app"), before);
}

#[test]
fn an_owner_change_does_not_change_it() {
    // COPY gives context files 0:0 (or --chown), never their owner on disk: the layer is the same.
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: chown needs root");
        return;
    }
    let tree = app();
    let before = tree.checksum("app");
    std::os::unix::fs::lchown(tree.join("app/main.rs"), Some(1000), Some(1000)).unwrap();
    std::os::unix::fs::lchown(tree.join("app/lib"), Some(1000), Some(1000)).unwrap();
    assert_eq!(tree.checksum("app"), before);
}

#[test]
fn a_rename_changes_it() {
    let tree = app();
    let before = tree.checksum("app");
    std::fs::rename(tree.join("app/main.rs"), tree.join("app/main2.rs")).unwrap();
    assert_ne!(tree.checksum("app"), before);
}

#[test]
fn a_symlink_target_change_changes_it() {
    let tree = app();
    let before = tree.checksum("app");
    std::fs::remove_file(tree.join("app/current")).unwrap();
    tree.symlink("app/current", "lib/");
    assert_ne!(tree.checksum("app"), before);
}

#[test]
fn adding_a_file_or_an_empty_directory_inside_changes_it() {
    let tree = app();
    let before = tree.checksum("app");
    tree.file("app/lib/new.rs", "");
    let with_file = tree.checksum("app");
    assert_ne!(with_file, before);
    tree.dir("app/lib/empty");
    assert_ne!(tree.checksum("app"), with_file);
}

#[test]
fn an_extended_attribute_changes_it() {
    let tree = app();
    let before = tree.checksum("app");
    let path = tree.join("app/main.rs");
    match rustix::fs::setxattr(&path, "user.kiln", b"1", rustix::fs::XattrFlags::empty()) {
        Ok(()) => assert_ne!(tree.checksum("app"), before),
        Err(rustix::io::Errno::OPNOTSUPP) => eprintln!("skipped: no user xattrs on this filesystem"),
        Err(e) => panic!("setxattr: {e}"),
    }
}

#[test]
fn changes_outside_the_selection_do_not_change_it() {
    let tree = app();
    let before = tree.checksum("app");
    tree.file("unrelated.txt", "changed\n").file("new-top-level", "");
    std::fs::set_permissions(tree.join("unrelated.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(tree.checksum("app"), before);
}

#[test]
fn an_excluded_path_does_not_count() {
    let tree = app();
    tree.file("app/notes.md", "v1");
    let exclude = || Source::new("app").exclude(Patterns::new(["*.md"]).unwrap());
    let checksum = || {
        let context = tree.context();
        context.checksum(&context.select(&exclude()).unwrap()).unwrap()
    };
    let before = checksum();
    tree.file("app/notes.md", "v2");
    assert_eq!(checksum(), before);
    tree.file("app/main.rs", "changed");
    assert_ne!(checksum(), before);
}

#[test]
fn the_checksum_covers_the_names_a_selection_gives() {
    let tree = Tree::new();
    tree.file("a/x", "same").file("b/x", "same").file("c/y", "same");
    // What COPY produces is the same, whatever directory the source is in...
    assert_eq!(tree.checksum("a/x"), tree.checksum("b/x"));
    assert_eq!(tree.checksum("a"), tree.checksum("b/"));
    assert_eq!(tree.checksum("a/*"), tree.checksum("b/*"));
    // ...but a different name in the destination is a different copy.
    assert_ne!(tree.checksum("a"), tree.checksum("c"));
    assert_ne!(tree.checksum("a/x"), tree.checksum("c/y"));
    assert_ne!(tree.checksum("a/*"), tree.checksum("c/*"));
}

#[test]
fn a_followed_symlink_checksums_as_its_target() {
    let tree = Tree::new();
    tree.file("real/file", "contents").symlink("link", "real");
    assert_eq!(tree.checksum("link/file"), tree.checksum("real/file"));
}

#[test]
fn a_context_hashes_each_file_once() {
    let tree = app();
    let context = tree.context();
    let all = context.select(&Source::new(".")).unwrap();
    let first = context.checksum(&all).unwrap();
    assert_eq!(context.stats().files_read, 3);
    let app = context.select(&Source::new("app")).unwrap();
    context.checksum(&app).unwrap();
    assert_eq!(context.checksum(&all).unwrap(), first);
    assert_eq!(context.stats().files_read, 3, "no file is read twice");
    assert_eq!(context.stats().bytes_read, 13 + 17 + 6);
}
