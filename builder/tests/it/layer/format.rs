//! The exact layer format: order, whiteouts, opaque dirs, PAX, hardlinks, clamps, determinism, and
//! compressed blobs other tools read.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::Path;

use kiln_builder::layer::{self, ApplyOptions, Changes, Compression, DiffOptions};

use super::{Overlay, diff_trees, list};

/// lower, upper, work, merged and target directories under one temp dir.
fn overlay_dirs() -> (tempfile::TempDir, [std::path::PathBuf; 5]) {
    let base = tempfile::tempdir().unwrap();
    let dirs = ["lower", "upper", "work", "merged", "target"].map(|n| {
        let p = base.path().join(n);
        fs::create_dir(&p).unwrap();
        p
    });
    (base, dirs)
}

fn upper_layer(upper: &Path) -> Vec<u8> {
    let options = DiffOptions::new().compression(Compression::Uncompressed);
    layer::diff(Changes::OverlayUpper(upper), Vec::new(), &options)
        .unwrap()
        .1
}

#[test]
fn overlay_recreated_dir_is_opaque_and_hides_lower_children() {
    let (_base, [lower, upper, work, merged, target]) = overlay_dirs();
    fs::create_dir_all(lower.join("d/sub")).unwrap();
    fs::write(lower.join("d/old"), "old").unwrap();
    fs::write(lower.join("gone"), "x").unwrap();
    {
        let _mount = Overlay::mount(&lower, &upper, &work, &merged);
        fs::remove_dir_all(merged.join("d")).unwrap();
        fs::create_dir(merged.join("d")).unwrap();
        fs::write(merged.join("d/new"), "new").unwrap();
        fs::remove_file(merged.join("gone")).unwrap();
    }
    let blob = upper_layer(&upper);
    let entries = list(&blob);
    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, [".wh.gone", "d/", "d/.wh..wh..opq", "d/new"]);
    for whiteout in [&entries[0], &entries[2]] {
        assert_eq!(
            (whiteout.kind, whiteout.mode, whiteout.mtime, whiteout.data.len()),
            ('0', 0, 0, 0)
        );
    }
    assert!(
        entries
            .iter()
            .all(|e| e.pax.iter().all(|(k, _)| !k.contains("overlay"))),
        "overlay's own xattrs stay out of the layer: {entries:?}"
    );

    super::tree::copy_tree(&lower, &target);
    layer::apply(&blob[..], &target, &ApplyOptions::new()).unwrap();
    let mut names: Vec<_> = fs::read_dir(target.join("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["new"]);
    assert!(!target.join("gone").exists());
}

fn tempdirs<const N: usize>() -> (tempfile::TempDir, [std::path::PathBuf; N]) {
    let base = tempfile::tempdir().unwrap();
    let dirs = std::array::from_fn(|i| {
        let p = base.path().join(format!("d{i}"));
        fs::create_dir(&p).unwrap();
        p
    });
    (base, dirs)
}

/// A tree with one of everything a layer carries.
fn rich_tree(root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    fs::write(root.join("usr/bin/tool"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(root.join("usr/bin/tool"), fs::Permissions::from_mode(0o4755)).unwrap();
    rustix::fs::lsetxattr(
        root.join("usr/bin/tool"),
        "security.capability",
        &super::tree::CAP_NET_BIND_SERVICE,
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    rustix::fs::lsetxattr(
        root.join("usr/bin/tool"),
        "user.binary",
        b"line1\nline2\0\xff",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    fs::hard_link(root.join("usr/bin/tool"), root.join("usr/bin/tool-link")).unwrap();
    symlink("tool", root.join("usr/bin/alias")).unwrap();
    let long_dir = root.join("d".repeat(90));
    fs::create_dir(&long_dir).unwrap();
    fs::write(long_dir.join("f".repeat(60)), "deep").unwrap();
    symlink("t".repeat(150), root.join("long-link")).unwrap();
    let node = |name: &str, file_type, dev| {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join(name),
            file_type,
            rustix::fs::Mode::from_raw_mode(0o620),
            dev,
        )
        .unwrap();
    };
    node("fifo", rustix::fs::FileType::Fifo, 0);
    node(
        "null",
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::makedev(1, 3),
    );
    node(
        "loop",
        rustix::fs::FileType::BlockDevice,
        rustix::fs::makedev(7, 300),
    );
    std::os::unix::fs::lchown(root.join("usr/bin/alias"), Some(1000), Some(1000)).unwrap();
}

#[test]
fn entries_are_sorted_parents_first_with_every_kind() {
    let (_base, [tree]) = tempdirs::<1>();
    rich_tree(&tree);
    let (_, blob) = diff_trees(None, &tree, Compression::Uncompressed);
    let entries = list(&blob);
    let summary: Vec<(String, char)> = entries.iter().map(|e| (e.path.clone(), e.kind)).collect();
    let long_dir = format!("{}/", "d".repeat(90));
    let long_file = format!("{}/{}", "d".repeat(90), "f".repeat(60));
    let want: Vec<(String, char)> = vec![
        (long_dir, '5'),
        (long_file, '0'),
        ("fifo".into(), '6'),
        ("long-link".into(), '2'),
        ("loop".into(), '4'),
        ("null".into(), '3'),
        ("usr/".into(), '5'),
        ("usr/bin/".into(), '5'),
        ("usr/bin/alias".into(), '2'),
        ("usr/bin/tool".into(), '0'),
        ("usr/bin/tool-link".into(), '1'),
    ];
    assert_eq!(summary, want);

    let by_path = |p: &str| entries.iter().find(|e| e.path == p).unwrap();
    let tool = by_path("usr/bin/tool");
    assert_eq!(tool.mode, 0o4755);
    assert!(tool.pax.contains(&(
        "SCHILY.xattr.security.capability".into(),
        super::tree::CAP_NET_BIND_SERVICE.to_vec()
    )));
    assert!(
        tool.pax
            .contains(&("SCHILY.xattr.user.binary".into(), b"line1\nline2\0\xff".to_vec()))
    );
    assert_eq!(by_path("usr/bin/tool-link").link.as_deref(), Some("usr/bin/tool"));
    assert_eq!(by_path("long-link").link, Some("t".repeat(150)));
    assert!(
        by_path(&format!("{}/{}", "d".repeat(90), "f".repeat(60)))
            .pax
            .iter()
            .any(|(k, _)| k == "path")
    );

    // GNU tar reads the same names, long ones included, and the device numbers.
    let listing = tar_tv(&blob);
    assert!(listing.contains(&"f".repeat(60)), "{listing}");
    assert!(
        listing.contains("7,300") || listing.contains("7, 300"),
        "{listing}"
    );
}

fn tar_tv(tar: &[u8]) -> String {
    let mut child = std::process::Command::new("tar")
        .args(["-tvf", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(tar).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn rich_tree_round_trips_through_apply() {
    let (_base, [tree, target]) = tempdirs::<2>();
    rich_tree(&tree);
    for compression in [Compression::GZIP, Compression::ZSTD] {
        let (descriptor, blob) = diff_trees(None, &tree, compression);
        let applied = layer::apply(&blob[..], &target, &ApplyOptions::new()).unwrap();
        assert_eq!(applied.diff_id, descriptor.diff_id);
        let differences = super::tree::differences(
            &super::tree::capture(&tree, true),
            &super::tree::capture(&target, true),
        );
        assert!(differences.is_empty(), "{}", differences.join("\n"));
    }
}

#[test]
fn same_tree_gives_the_same_bytes() {
    let (_base, [tree]) = tempdirs::<1>();
    rich_tree(&tree);
    fs::write(tree.join("big"), super::tree::content(7, 3 << 20)).unwrap();
    for compression in [Compression::Uncompressed, Compression::GZIP, Compression::ZSTD] {
        let blobs: Vec<Vec<u8>> = [1, 2, 4]
            .into_iter()
            .map(|threads| {
                let options = DiffOptions::new().compression(compression).threads(threads);
                layer::diff(
                    Changes::TreeCompare {
                        parent: None,
                        tree: &tree,
                    },
                    Vec::new(),
                    &options,
                )
                .unwrap()
                .1
            })
            .collect();
        assert!(
            blobs[0] == blobs[1] && blobs[1] == blobs[2],
            "{compression:?} depends on the thread count"
        );
        assert_eq!(
            blobs[0],
            diff_trees(None, &tree, compression).1,
            "{compression:?} differs between runs"
        );
    }
}

#[test]
fn descriptor_digests_match_what_other_tools_see() {
    let (_base, [tree]) = tempdirs::<1>();
    fs::write(tree.join("big"), super::tree::content(3, 2 << 20)).unwrap();
    fs::write(tree.join("small"), "x").unwrap();
    let (plain, tar) = diff_trees(None, &tree, Compression::Uncompressed);
    assert_eq!(
        (plain.digest.clone(), plain.size),
        (layer::Digest::of(&tar), tar.len() as u64)
    );
    assert_eq!(plain.diff_id, plain.digest);
    assert_eq!(plain.media_type, "application/vnd.oci.image.layer.v1.tar");

    let (gz, blob) = diff_trees(None, &tree, Compression::GZIP);
    assert_eq!(
        (gz.digest, gz.size),
        (layer::Digest::of(&blob), blob.len() as u64)
    );
    assert_eq!(
        (gz.diff_id, gz.uncompressed_size),
        (plain.diff_id.clone(), tar.len() as u64)
    );
    // The system gzip (not flate2) decompresses the multi-block stream to the same tar.
    let mut child = std::process::Command::new("gzip")
        .args(["-dc"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&blob).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    assert!(out.stdout == tar, "gzip -dc gives back the tar");

    let (zst, blob) = diff_trees(None, &tree, Compression::ZSTD);
    assert_eq!(
        (zst.digest, zst.size),
        (layer::Digest::of(&blob), blob.len() as u64)
    );
    assert_eq!(zst.diff_id, plain.diff_id);
    assert_eq!(zst.media_type, "application/vnd.oci.image.layer.v1.tar+zstd");
}

#[test]
fn tree_compare_reports_changes_and_their_parents_only() {
    use std::os::unix::fs::PermissionsExt;
    let (_base, [parent, tree]) = tempdirs::<2>();
    for root in [&parent, &tree] {
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join("a/b/c"), "same").unwrap();
        fs::write(root.join("a/touched"), "same").unwrap();
        fs::write(root.join("a/mode"), "same").unwrap();
        fs::create_dir_all(root.join("gone/deep/deeper")).unwrap();
        fs::write(root.join("gone/deep/deeper/f"), "x").unwrap();
        fs::write(root.join("untouched"), "same").unwrap();
    }
    fs::write(tree.join("a/b/c"), "changed").unwrap();
    super::tree::set_times(&tree.join("a/touched"), 1_000_000_000);
    fs::set_permissions(tree.join("a/mode"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::remove_dir_all(tree.join("gone")).unwrap();

    let (_, blob) = diff_trees(Some(&parent), &tree, Compression::Uncompressed);
    let paths: Vec<String> = list(&blob).into_iter().map(|e| e.path).collect();
    // One whiteout for the whole deleted directory; the touched file is not a change.
    assert_eq!(paths, [".wh.gone", "a/", "a/b/", "a/b/c", "a/mode"]);
}

#[test]
fn unchanged_tree_gives_an_empty_layer() {
    let (_base, [parent, tree]) = tempdirs::<2>();
    rich_tree(&parent);
    super::tree::copy_tree(&parent, &tree);
    super::tree::set_times(&tree.join("usr/bin/tool"), 12345);
    let (descriptor, blob) = diff_trees(Some(&parent), &tree, Compression::Uncompressed);
    assert!(list(&blob).is_empty());
    assert_eq!(
        descriptor.uncompressed_size, 1024,
        "just the end-of-archive blocks"
    );
}

#[test]
fn mtimes_above_the_clamp_are_clamped() {
    let (_base, [tree]) = tempdirs::<1>();
    fs::write(tree.join("new"), "n").unwrap();
    fs::write(tree.join("old"), "o").unwrap();
    super::tree::set_times(&tree.join("new"), 2_000_000_000);
    super::tree::set_times(&tree.join("old"), 1_000_000_000);
    let clamp = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_500_000_000);
    let options = DiffOptions::new()
        .compression(Compression::Uncompressed)
        .clamp_mtime(Some(clamp));
    let (_, blob) = layer::diff(
        Changes::TreeCompare {
            parent: None,
            tree: &tree,
        },
        Vec::new(),
        &options,
    )
    .unwrap();
    let mtimes: Vec<(String, u64)> = list(&blob).into_iter().map(|e| (e.path, e.mtime)).collect();
    assert_eq!(
        mtimes,
        [("new".into(), 1_500_000_000), ("old".into(), 1_000_000_000)]
    );
}

#[test]
fn directory_mtimes_are_set_after_their_children() {
    let (_base, [target]) = tempdirs::<1>();
    let tar = super::RawTar::new()
        .dir("d")
        .file("d/f", b"x")
        .dir("d/e")
        .file("d/e/g", b"y")
        .finish();
    layer::apply(&tar[..], &target, &ApplyOptions::new()).unwrap();
    for dir in ["d", "d/e"] {
        assert_eq!(
            fs::metadata(target.join(dir)).unwrap().mtime(),
            1_600_000_000,
            "{dir}"
        );
    }
}

#[test]
fn whiteouts_spare_the_layers_own_entries_in_any_order() {
    let (_base, [target]) = tempdirs::<1>();
    fs::create_dir(target.join("d")).unwrap();
    fs::write(target.join("d/lower"), "l").unwrap();
    fs::write(target.join("x"), "lower x").unwrap();
    // The opaque marker and the whiteout come after the entries they must not remove.
    let tar = super::RawTar::new()
        .dir("d")
        .file("d/mine", b"m")
        .file("d/.wh..wh..opq", b"")
        .file("x", b"layer x")
        .file(".wh.x", b"")
        .finish();
    layer::apply(&tar[..], &target, &ApplyOptions::new()).unwrap();
    let names: Vec<_> = fs::read_dir(target.join("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["mine"]);
    assert_eq!(fs::read_to_string(target.join("x")).unwrap(), "layer x");
}

#[test]
fn overlay_features_the_upper_dir_cannot_express_are_refused() {
    let (_base, [upper]) = tempdirs::<1>();
    fs::create_dir(upper.join("moved")).unwrap();
    rustix::fs::lsetxattr(
        upper.join("moved"),
        "trusted.overlay.redirect",
        b"/elsewhere",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    match layer::diff(Changes::OverlayUpper(&upper), Vec::new(), &DiffOptions::new()) {
        Err(layer::DiffError::OverlayFeature { path, xattr }) => {
            assert_eq!(
                (path, xattr.as_str()),
                (upper.join("moved"), "trusted.overlay.redirect")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn files_named_like_whiteouts_cannot_be_stored() {
    let (_base, [tree]) = tempdirs::<1>();
    fs::write(tree.join(".wh.sneaky"), "").unwrap();
    match layer::diff(
        Changes::TreeCompare {
            parent: None,
            tree: &tree,
        },
        Vec::new(),
        &DiffOptions::new(),
    ) {
        Err(layer::DiffError::ReservedName { path }) => assert_eq!(path, tree.join(".wh.sneaky")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn gnu_tar_archives_apply_like_the_tree_they_came_from() {
    let (_base, [tree]) = tempdirs::<1>();
    rich_tree(&tree);
    // GNU tar keeps mtimes and owners but not the hardlink groups' order, so compare without links.
    let want = super::tree::capture(&tree, false);
    // GNU format (long names as `././@LongLink` entries) has no room for xattrs.
    let mut without_xattrs = want.clone();
    for node in without_xattrs.values_mut() {
        node.xattrs.clear();
    }
    let xattrs = ["--xattrs", "--xattrs-include=*"];
    for (format, flags, want) in [
        ("gnu", &[][..], &without_xattrs),
        ("pax", &xattrs[..], &want),
        ("posix", &xattrs[..], &want),
    ] {
        let tar = std::process::Command::new("tar")
            .args(flags)
            .args(["--numeric-owner", &format!("--format={format}"), "-cf", "-", "-C"])
            .arg(&tree)
            .arg(".")
            .output()
            .unwrap();
        assert!(tar.status.success(), "{}", String::from_utf8_lossy(&tar.stderr));
        let (_target_base, [target]) = tempdirs::<1>();
        layer::apply(&tar.stdout[..], &target, &ApplyOptions::new()).unwrap();
        let differences = super::tree::differences(want, &super::tree::capture(&target, false));
        assert!(differences.is_empty(), "{format}: {}", differences.join("\n"));
    }
}

#[test]
fn missing_parents_are_created_and_lower_files_can_be_linked() {
    let (_base, [target]) = tempdirs::<1>();
    fs::write(target.join("lower"), "from below").unwrap();
    let tar = super::RawTar::new()
        .file("a/b/c", b"deep")
        .hardlink("a/link", "lower")
        .file(".wh.nothing", b"")
        .finish();
    layer::apply(&tar[..], &target, &ApplyOptions::new()).unwrap();
    assert_eq!(fs::read_to_string(target.join("a/b/c")).unwrap(), "deep");
    assert_eq!(
        fs::metadata(target.join("a/link")).unwrap().ino(),
        fs::metadata(target.join("lower")).unwrap().ino()
    );
    assert_eq!(fs::metadata(target.join("a/b")).unwrap().mode() & 0o7777, 0o755);
}
