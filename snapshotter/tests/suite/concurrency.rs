//! Several handles on one root at once (each with its own database connection), as several kiln
//! processes would be.

use std::fs;
use std::sync::{Arc, Barrier};
use std::thread;

use kiln_snapshotter::{Backend, Kind};

use crate::common::{Fixture, commit_layer};

both_backends!(
    concurrent_prepares_from_one_parent,
    cleanup_racing_with_builds_loses_nothing
);

fn concurrent_prepares_from_one_parent(backend: Backend) {
    const WORKERS: usize = 4;
    let fx = Arc::new(Fixture::new(backend));
    let s = fx.open();
    commit_layer(&fx, &*s, "base", None, |root| {
        fs::write(root.join("shared"), "x").unwrap();
    });
    let barrier = Arc::new(Barrier::new(WORKERS));
    let workers: Vec<_> = (0..WORKERS)
        .map(|i| {
            let (fx, barrier) = (Arc::clone(&fx), Arc::clone(&barrier));
            thread::spawn(move || {
                let s = fx.open();
                barrier.wait();
                let mounts = s.prepare(&format!("step-{i}"), Some("base")).unwrap();
                let guard = fx.mount(&mounts, &format!("step-{i}"));
                assert!(guard.target().join("shared").exists());
                fs::write(guard.target().join("mine"), i.to_string()).unwrap();
                guard.unmount().unwrap();
                s.commit(&format!("done-{i}"), &format!("step-{i}")).unwrap();
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker succeeded");
    }
    for i in 0..WORKERS {
        let info = s.stat(&format!("done-{i}")).unwrap();
        assert_eq!(
            (info.kind, info.parent.as_deref()),
            (Kind::Committed, Some("base"))
        );
        let upper = s.upper_dir(&format!("done-{i}")).unwrap();
        assert_eq!(fs::read_to_string(upper.join("mine")).unwrap(), i.to_string());
    }
}

/// Builders prepare and commit while another handle sweeps over and over: the sweeper must never take a
/// snapshot in flight (staged, renamed in, or committed) for garbage.
fn cleanup_racing_with_builds_loses_nothing(backend: Backend) {
    const BUILDERS: usize = 2;
    const STEPS: usize = 15;
    let fx = Arc::new(Fixture::new(backend));
    let s = fx.open();
    commit_layer(&fx, &*s, "base", None, |root| {
        fs::write(root.join("f"), "x").unwrap();
    });
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sweeper = {
        let (fx, done) = (Arc::clone(&fx), Arc::clone(&done));
        thread::spawn(move || {
            let s = fx.open();
            let mut sweeps = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let report = s.cleanup().unwrap_or_else(|e| panic!("cleanup: {e} ({e:?})"));
                assert!(report.snapshots.is_empty(), "swept live snapshots: {report:?}");
                sweeps += 1;
            }
            sweeps
        })
    };
    let builders: Vec<_> = (0..BUILDERS)
        .map(|b| {
            let fx = Arc::clone(&fx);
            thread::spawn(move || {
                let s = fx.open();
                let mut parent = "base".to_owned();
                for step in 0..STEPS {
                    let key = format!("b{b}-k{step}");
                    s.prepare(&key, Some(&parent)).unwrap();
                    fs::write(s.upper_dir(&key).unwrap().join(format!("s{step}")), "x").unwrap();
                    let name = format!("b{b}-n{step}");
                    s.commit(&name, &key).unwrap();
                    parent = name;
                }
            })
        })
        .collect();
    for builder in builders {
        builder.join().expect("builder succeeded");
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(sweeper.join().expect("sweeper succeeded") > 0);
    for b in 0..BUILDERS {
        for step in 0..STEPS {
            let upper = s.upper_dir(&format!("b{b}-n{step}")).unwrap();
            assert!(
                upper.join(format!("s{step}")).exists(),
                "{} lost",
                upper.display()
            );
        }
    }
}

const CHILD_ROOT: &str = "KILN_SNAPSHOTTER_CHILD_ROOT";
const CHILD_BACKEND: &str = "KILN_SNAPSHOTTER_CHILD_BACKEND";
const CHILD_INDEX: &str = "KILN_SNAPSHOTTER_CHILD_INDEX";

/// Run by `concurrent_processes_prepare_from_one_parent` in child processes.
#[test]
#[ignore = "helper: only meaningful when spawned by concurrent_processes_prepare_from_one_parent"]
fn process_child() {
    let root = std::path::PathBuf::from(std::env::var_os(CHILD_ROOT).expect("spawned by the parent test"));
    let backend: Backend = std::env::var(CHILD_BACKEND).unwrap().parse().unwrap();
    let i = std::env::var(CHILD_INDEX).unwrap();
    let s = kiln_snapshotter::open(&root, backend).unwrap();
    for step in 0..5 {
        let key = format!("p{i}-k{step}");
        s.prepare(&key, Some("base")).unwrap();
        fs::write(s.upper_dir(&key).unwrap().join("mine"), &i).unwrap();
        s.commit(&format!("p{i}-n{step}"), &key).unwrap();
    }
}

both_backends!(concurrent_processes_prepare_from_one_parent);

fn concurrent_processes_prepare_from_one_parent(backend: Backend) {
    let fx = Fixture::new(backend);
    let s = fx.open();
    commit_layer(&fx, &*s, "base", None, |root| {
        fs::write(root.join("shared"), "x").unwrap();
    });
    let children: Vec<_> = (0..3)
        .map(|i| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "concurrency::process_child",
                    "--ignored",
                    "--test-threads=1",
                ])
                .env(CHILD_ROOT, &fx.root)
                .env(CHILD_BACKEND, backend.as_str())
                .env(CHILD_INDEX, i.to_string())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(
            child.wait().unwrap().success(),
            "every process prepared and committed"
        );
    }
    for i in 0..3 {
        for step in 0..5 {
            let info = s.stat(&format!("p{i}-n{step}")).unwrap();
            assert_eq!(
                (info.kind, info.parent.as_deref()),
                (Kind::Committed, Some("base"))
            );
            let upper = s.upper_dir(&format!("p{i}-n{step}")).unwrap();
            assert_eq!(fs::read_to_string(upper.join("mine")).unwrap(), i.to_string());
        }
    }
}
