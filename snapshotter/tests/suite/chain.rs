//! Deep chains: 200 layers, each adding one file; the top sees them all. For overlay this is past what
//! absolute paths fit in mount(2)'s one page of options, so both mount paths are exercised.

use std::fs;

use kiln_snapshotter::Backend;
use kiln_snapshotter::mount::MountApi;

use crate::common::{Fixture, commit_layer};

const DEPTH: usize = 200;

both_backends!(chain_200_deep);

fn chain_200_deep(backend: Backend) {
    let fx = Fixture::new(backend);
    let s = fx.open();
    let mut parent: Option<String> = None;
    for i in 0..DEPTH {
        let name = format!("layer-{i}");
        commit_layer(&fx, &*s, &name, parent.as_deref(), |root| {
            fs::write(root.join(format!("file-{i}")), i.to_string()).unwrap();
        });
        parent = Some(name);
    }
    let top = parent.unwrap();
    let view = s.view("top-view", Some(&top)).unwrap();
    let active = s.prepare("top-active", Some(&top)).unwrap();
    let apis: &[MountApi] = match backend {
        Backend::Overlay => &[MountApi::Auto, MountApi::FsConfig, MountApi::Legacy],
        _ => &[MountApi::Auto],
    };
    for api in apis {
        let guard = fx.mount_with(&view, &format!("view-{api:?}"), *api);
        let count = fs::read_dir(guard.target()).unwrap().count();
        assert_eq!(count, DEPTH, "{api:?}: the top view sees every layer's file");
        for i in [0, DEPTH / 2, DEPTH - 1] {
            assert_eq!(
                fs::read_to_string(guard.target().join(format!("file-{i}"))).unwrap(),
                i.to_string()
            );
        }
        drop(guard);
        let guard = fx.mount_with(&active, &format!("active-{api:?}"), *api);
        fs::write(guard.target().join(format!("written-{api:?}")), "x").unwrap();
        assert_eq!(fs::read_dir(guard.target()).unwrap().count(), DEPTH + 1);
        fs::remove_file(guard.target().join(format!("written-{api:?}"))).unwrap();
    }
    if backend == Backend::Overlay {
        let options = view[0].options.join(",");
        assert!(
            options.len() > 4096,
            "absolute layer paths overflow a page ({} bytes)",
            options.len()
        );
    }
}
