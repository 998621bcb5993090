//! Containment: nothing a context, a rootfs or a race plants makes fsop read or write outside its
//! roots.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use kiln_builder::fsop::{CopySpec, FsopError};

use super::{Fx, write};

fn unique(name: &str) -> String {
    format!("kiln-fsop-{name}-{}", std::process::id())
}

#[test]
fn destination_through_absolute_symlink_stays_in_root() {
    let fx = Fx::new();
    let name = unique("abs");
    fx.file(&name, "payload");
    fs::create_dir(fx.at("etc")).unwrap();
    symlink("/etc", fx.at("app")).unwrap();
    fx.cp(&[&name], "/app/").unwrap();
    assert_eq!(fx.read(&format!("etc/{name}")), "payload");
    assert!(!Path::new("/etc").join(&name).exists());
}

#[test]
fn destination_through_relative_escaping_symlink_stays_in_root() {
    let fx = Fx::new();
    let name = unique("rel");
    fx.file(&name, "payload");
    fs::create_dir_all(fx.at("srv/www")).unwrap();
    symlink("../../../../../../tmp", fx.at("srv/www/up")).unwrap();
    fx.cp(&[&name], "/srv/www/up/").unwrap();
    // `..` stops at the root: the link means <root>/tmp, created for the copy.
    assert_eq!(fx.read(&format!("tmp/{name}")), "payload");
    assert!(!Path::new("/tmp").join(&name).exists());
}

#[test]
fn dangling_destination_symlink_is_created_inside_root() {
    let fx = Fx::new();
    let name = unique("dangling");
    fx.file("a.txt", "payload");
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join(&name);
    symlink(&target, fx.at("out")).unwrap();
    fx.cp(&["a.txt"], "/out").unwrap();
    assert!(!target.exists());
    assert_eq!(
        fs::read_to_string(fx.at(target.to_str().unwrap())).unwrap(),
        "payload"
    );
}

#[test]
fn dotdot_in_destination_and_sources_stops_at_the_roots() {
    let fx = Fx::new();
    let name = unique("dotdot");
    fx.file(&name, "payload");
    fx.cp(&[&format!("../../../{name}")], "/../../../x/").unwrap();
    assert_eq!(fx.read(&format!("x/{name}")), "payload");

    let err = fx.cp(&["../../../../etc/passwd"], "/y").unwrap_err();
    assert_eq!(err.to_string(), "\"/etc/passwd\": not found");
}

#[test]
fn context_symlinks_resolve_inside_the_context() {
    let fx = Fx::new();
    symlink("/etc/passwd", fx.ctx("pw")).unwrap();
    symlink("../../../../../..", fx.ctx("up")).unwrap();
    let err = fx.cp(&["pw"], "/pw").unwrap_err();
    assert!(matches!(err, FsopError::SourceNotFound { .. }), "{err:?}");
    let err = fx.cp(&["up/etc/passwd"], "/pw").unwrap_err();
    assert!(matches!(err, FsopError::SourceNotFound { .. }), "{err:?}");
    assert!(!fx.exists("pw"));

    // With an etc/passwd of its own, the context's is what the links name.
    fx.file("etc/passwd", "context passwd");
    fx.cp(&["pw"], "/pw").unwrap();
    assert_eq!(fx.read("pw"), "context passwd");
    fx.cp(&["up/etc/passwd"], "/pw2").unwrap();
    assert_eq!(fx.read("pw2"), "context passwd");
}

#[test]
fn symlinked_wildcard_base_does_not_escape() {
    let fx = Fx::new();
    symlink("/etc", fx.ctx("sys")).unwrap();
    let err = fx.cp(&["sys/pass*"], "/o/").unwrap_err();
    assert!(matches!(err, FsopError::NoSourceFiles { .. }), "{err:?}");
}

/// Swaps `dir/name` between what it is and a symlink to `target`, until told to stop.
fn swapper(dir: &Path, name: &str, target: &Path, stop: Arc<AtomicBool>) -> thread::JoinHandle<u32> {
    let (real, parked, link) = (
        dir.join(name),
        dir.join(format!("{name}.parked")),
        target.to_owned(),
    );
    thread::spawn(move || {
        let mut swaps = 0;
        while !stop.load(Ordering::Relaxed) && swaps < 20_000 {
            if fs::rename(&real, &parked).is_ok() {
                let _ = symlink(&link, &real);
                thread::yield_now();
                let _ = fs::remove_file(&real);
                let _ = fs::rename(&parked, &real);
                swaps += 1;
            }
        }
        swaps
    })
}

#[test]
fn destination_swapped_for_a_symlink_mid_copy_cannot_redirect_writes() {
    let fx = Fx::new();
    for i in 0..20 {
        fx.file(&format!("d/f{i}"), "payload");
    }
    fs::create_dir_all(fx.at("app/sub")).unwrap();
    let outside = tempfile::tempdir().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = swapper(fx.root.path(), "app", outside.path(), Arc::clone(&stop));
    for _ in 0..200 {
        // Errors are fine (the path changes under the copy); writes outside are not.
        let _ = fx.cp(&["d"], "/app/sub/");
    }
    stop.store(true, Ordering::Relaxed);
    assert!(swaps.join().unwrap() > 0);
    assert_eq!(
        fs::read_dir(outside.path()).unwrap().count(),
        0,
        "a write escaped the root"
    );
}

#[test]
fn source_swapped_for_a_symlink_mid_copy_never_reads_outside() {
    let fx = Fx::new();
    let secret_dir = tempfile::tempdir().unwrap();
    let secret = write(&secret_dir.path().join("secret"), "SECRET");
    fx.file("d/f", "public");
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = swapper(&fx.ctx("d"), "f", &secret, Arc::clone(&stop));
    for i in 0..300 {
        let dest = format!("/o{i}/");
        let _ = fx.cp(&["d"], &dest);
        let _ = fx.cp(&["d/f"], &format!("/n{i}"));
        for copied in [fx.at(&format!("o{i}/f")), fx.at(&format!("n{i}"))] {
            if let Ok(meta) = fs::symlink_metadata(&copied) {
                if meta.is_file() {
                    assert_eq!(
                        fs::read_to_string(&copied).unwrap(),
                        "public",
                        "read outside the context"
                    );
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    assert!(swaps.join().unwrap() > 0);
}

#[test]
fn symlink_loops_are_an_error_not_a_hang() {
    let fx = Fx::new();
    symlink("b", fx.ctx("a")).unwrap();
    symlink("a", fx.ctx("b")).unwrap();
    let err = fx.cp(&["a"], "/x").unwrap_err();
    assert!(
        err.to_string().contains("too many levels of symbolic links"),
        "{err}"
    );
    fx.file("f", "f");
    symlink("loop2", fx.at("loop1")).unwrap();
    symlink("loop1", fx.at("loop2")).unwrap();
    let err = fx.copy(&CopySpec::new(["f"], "/loop1/")).unwrap_err();
    assert!(
        err.to_string().contains("too many levels of symbolic links"),
        "{err}"
    );
}
