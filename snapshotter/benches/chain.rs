//! Cost of one build step's snapshot bookkeeping on a deep chain: `prepare` + `commit` of an empty step
//! on top of a 100-deep overlay chain (target: under 5 ms). Also the cost of mounting that chain.
//!
//! Run as root: `cargo bench -p kiln-snapshotter --bench chain`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use kiln_snapshotter::mount::{self, MountApi};
use kiln_snapshotter::{OverlaySnapshotter, Snapshotter};

const DEPTH: usize = 100;

fn chain(c: &mut Criterion) {
    let dir = tempfile::Builder::new()
        .prefix("bench-chain-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir");
    let snapshotter = OverlaySnapshotter::open(dir.path().join("snapshots-v1")).expect("overlay works here");
    let mut parent: Option<String> = None;
    for i in 0..DEPTH {
        let (key, name) = (format!("k{i}"), format!("layer-{i}"));
        snapshotter.prepare(&key, parent.as_deref()).unwrap();
        std::fs::write(snapshotter.upper_dir(&key).unwrap().join(format!("f{i}")), "x").unwrap();
        snapshotter.commit(&name, &key).unwrap();
        parent = Some(name);
    }
    let top = parent.unwrap();

    let mut step = 0u64;
    c.bench_function(
        "overlay: prepare + commit an empty step on a 100-deep chain",
        |b| {
            b.iter(|| {
                step += 1;
                let key = format!("step-{step}");
                black_box(snapshotter.prepare(&key, Some(&top)).unwrap());
                snapshotter.commit(&format!("done-{step}"), &key).unwrap();
            });
        },
    );

    let mounts = snapshotter.view("bench-view", Some(&top)).unwrap();
    let target = dir.path().join("mnt");
    std::fs::create_dir(&target).unwrap();
    for api in [MountApi::FsConfig, MountApi::Legacy] {
        c.bench_function(
            &format!("overlay: mount + unmount a 100-deep view ({api:?})"),
            |b| {
                b.iter(|| {
                    mount::mount_all_with(&mounts, &target, api)
                        .unwrap()
                        .unmount()
                        .unwrap();
                });
            },
        );
    }
}

criterion_group!(benches, chain);
criterion_main!(benches);
