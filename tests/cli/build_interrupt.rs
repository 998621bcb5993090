//! Ctrl-C during `kiln build`: the running step is killed and nothing is left behind.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{Root, context};

#[test]
fn sigint_stops_the_build_cleanly() {
    let root = Root::new();
    root.import_busybox("busybox:latest");
    let ctx = context(&[("Dockerfile", "FROM busybox\nRUN echo started && sleep 60\n")]);
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("kiln"))
        .arg("--root")
        .arg(root.path())
        .args(["build", "--progress=plain", "-t", "never:1"])
        .arg(ctx.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the step runs (its output reaches the progress), then interrupt.
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        let mut buf = [0u8; 4096];
        loop {
            match std::io::Read::read(&mut stderr, &mut buf) {
                Ok(0) | Err(_) => break all,
                Ok(n) => all.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    });
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) && root.step_mounts().is_empty() {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let interrupted = Instant::now();
    let exit = child.wait().unwrap();
    let stderr = reader.join().unwrap();
    assert!(!exit.success(), "{stderr}");
    assert!(
        interrupted.elapsed() < Duration::from_secs(10),
        "the sleep was killed: {stderr}"
    );
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(root.leftover_mounts().is_empty(), "{:?}", root.leftover_mounts());
    let images = root.ok(&["images", "--format", "{{.Repository}}"]);
    assert!(!images.contains("never"), "{images}");
}
