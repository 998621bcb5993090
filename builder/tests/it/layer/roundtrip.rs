//! Property tests: random trees and random changes, diffed and applied back onto a copy of the parent,
//! must give the changed tree again (content, modes, owners, xattrs, symlinks, devices, hardlinks).

use std::fs;
use std::path::Path;

use kiln_builder::layer::{self, ApplyOptions, Changes, Compression, DiffOptions};
use proptest::prelude::*;

use super::tree;
use super::{Overlay, diff_trees};

fn compression() -> impl Strategy<Value = Compression> {
    prop::sample::select(vec![
        Compression::Uncompressed,
        Compression::Gzip { level: 1 },
        Compression::ZSTD,
    ])
}

fn dirs(names: &[&str]) -> (tempfile::TempDir, Vec<std::path::PathBuf>) {
    let base = tempfile::tempdir().unwrap();
    let paths = names
        .iter()
        .map(|n| {
            let p = base.path().join(n);
            fs::create_dir(&p).unwrap();
            p
        })
        .collect();
    (base, paths)
}

fn apply_and_compare(
    lower: &Path,
    target: &Path,
    blob: &[u8],
    want: &tree::Tree,
    links: bool,
) -> Result<(), TestCaseError> {
    tree::copy_tree(lower, target);
    layer::apply(blob, target, &ApplyOptions::new())
        .map_err(|e| TestCaseError::fail(format!("apply: {e:?}")))?;
    let differences = tree::differences(want, &tree::capture(target, links));
    prop_assert!(differences.is_empty(), "{}", differences.join("\n"));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn tree_compare_round_trip(
        initial in prop::collection::vec(tree::op(), 1..30),
        changes in prop::collection::vec(tree::op(), 1..20),
        compression in compression(),
    ) {
        let (_base, d) = dirs(&["parent", "changed", "target"]);
        tree::apply_ops(&d[0], &initial, 0);
        tree::copy_tree(&d[0], &d[1]);
        tree::apply_ops(&d[1], &changes, 1000);
        let want = tree::capture(&d[1], true);

        let (descriptor, blob) = diff_trees(Some(&d[0]), &d[1], compression);
        prop_assert_eq!(descriptor.size, blob.len() as u64);
        apply_and_compare(&d[0], &d[2], &blob, &want, true)?;
    }

    #[test]
    fn overlay_upper_round_trip(
        initial in prop::collection::vec(tree::op(), 1..30),
        changes in prop::collection::vec(tree::op(), 1..20),
        compression in compression(),
    ) {
        let (_base, d) = dirs(&["lower", "upper", "work", "merged", "target"]);
        tree::apply_ops(&d[0], &initial, 0);
        let want = {
            let _mount = Overlay::mount(&d[0], &d[1], &d[2], &d[3]);
            tree::apply_ops(&d[3], &changes, 1000);
            tree::capture(&d[3], false)
        };

        let options = DiffOptions::new().compression(compression).threads(2);
        let (_, blob) = layer::diff(Changes::OverlayUpper(&d[1]), Vec::new(), &options).expect("diff");
        apply_and_compare(&d[0], &d[4], &blob, &want, false)?;
    }
}
