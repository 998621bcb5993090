//! The exact layer format: order, whiteouts, opaque dirs, PAX, hardlinks, clamps, determinism, and
//! compressed blobs other tools read.

use std::fs;
use std::os::unix::fs::symlink;
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
