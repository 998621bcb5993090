//! `kiln run --rm`: a command in a throwaway container of a stored image.

use crate::support::{Root, context};

/// Lines of /proc/self/mountinfo (mounts made by a run would show here until removed).
fn mount_count() -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count()
}

/// How many snapshots (committed or active) the root's snapshotter holds.
fn snapshots(root: &Root) -> usize {
    std::fs::read_dir(root.path().join("snapshots-v1/snapshots")).map_or(0, Iterator::count)
}

#[test]
fn run_echo_prints_and_leaves_nothing_behind() {
    let root = Root::new();
    root.import_busybox("busybox");
    let before = mount_count();
    let out = root
        .kiln()
        .args(["run", "--rm", "busybox", "echo", "hi"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "hi\n");
    assert_eq!(mount_count(), before);
    assert!(root.leftover_mounts().is_empty());
    // Only busybox's one layer stays (shared with builds); the container's snapshot is gone.
    assert_eq!(snapshots(&root), 1);
    root.ok(&["run", "--rm", "busybox", "true"]);
    assert_eq!(snapshots(&root), 1);
}

#[test]
fn run_propagates_exit_code_and_stderr() {
    let root = Root::new();
    root.import_busybox("busybox");
    let out = root
        .kiln()
        .args(["run", "--rm", "busybox", "sh", "-c", "echo oops >&2; exit 7"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(String::from_utf8(out.stderr).unwrap(), "oops\n");
    assert!(out.stdout.is_empty());
    assert!(root.leftover_mounts().is_empty());
}

#[test]
fn run_uses_image_env_workdir_and_default_cmd() {
    let root = Root::new();
    root.import_busybox("busybox");
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nENV A=1\nWORKDIR /w\nCMD [\"sh\", \"-c\", \"echo default $A\"]\n",
    )]);
    root.build_ok(
        ctx.path(),
        &[
            "-t",
            "img",
            "-f",
            &ctx.path().join("Dockerfile").to_string_lossy(),
        ],
    );
    let out = root.ok(&["run", "--rm", "img", "sh", "-c", "echo $A; pwd; hostname"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["1", "/w"]);
    assert!(
        lines[2].len() == 12 && lines[2].bytes().all(|b| b.is_ascii_hexdigit()),
        "hostname {:?} is not a short container id",
        lines[2]
    );
    assert_eq!(root.ok(&["run", "--rm", "img"]), "default 1\n");
}

#[test]
fn run_unknown_image_fails_with_docker_message() {
    let root = Root::new();
    let out = root
        .kiln()
        .args(["run", "--rm", "nope", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("Unable to find image 'nope:latest' locally"),
        "{stderr}"
    );
}

#[test]
fn run_forwards_sigint_to_the_process_and_exits_with_its_status() {
    use std::io::{BufRead as _, Read as _};
    use std::process::Stdio;

    let root = Root::new();
    root.import_busybox("busybox");
    // The trap is set before `ready`; the loop ends by itself (a minute) should SIGINT never come.
    let script = r#"trap "echo got-int; exit 7" INT; echo ready; i=0; while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; echo no-signal"#;
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("kiln"))
        .arg("--root")
        .arg(root.path())
        .args(["run", "--rm", "busybox", "sh", "-c", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!((rest.as_str(), status.code()), ("got-int\n", Some(7)), "{stderr}");
    // kiln cleaned up: no mount of the root's snapshots (/proc/self/mountinfo), and only busybox's
    // layer snapshot left.
    assert!(root.leftover_mounts().is_empty(), "{:?}", root.leftover_mounts());
    assert_eq!(snapshots(&root), 1);
}
