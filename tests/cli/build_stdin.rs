//! `kiln build -`: the context (a tar archive, plain or compressed) or the Dockerfile alone on
//! standard input, as `docker build -` reads it.

use std::io::Write as _;
use std::path::Path;

use crate::support::{Built, Root};

/// `kiln build --progress=plain ARGS... -` with `input` on stdin.
fn build_stdin(root: &Root, args: &[&str], input: impl Into<Vec<u8>>) -> Built {
    let out = root
        .kiln()
        .args(["build", "--progress=plain"])
        .args(args)
        .arg("-")
        .write_stdin(input)
        .output()
        .unwrap();
    Built::from(out)
}

fn build_stdin_ok(root: &Root, args: &[&str], input: impl Into<Vec<u8>>) -> Built {
    let built = build_stdin(root, args, input);
    assert!(built.success, "kiln build - failed:\n{}", built.stderr);
    built
}

/// A tar archive of `(path, content)` files, as `tar c` makes it.
fn tar_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, content.as_bytes()).unwrap();
    }
    tar.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// What the kiln root's directory of unpacked contexts holds (nothing once a build is over).
fn unpacked_contexts(root: &Root) -> Vec<String> {
    std::fs::read_dir(root.path().join("tmp-v1")).map_or_else(
        |_| Vec::new(),
        |entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        },
    )
}

/// Every path below `dir` whose file name is `name`.
fn find(dir: &Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() == name {
            found.push(entry.path());
        }
        if entry.file_type().unwrap().is_dir() {
            found.extend(find(&entry.path(), name));
        }
    }
    found
}

#[test]
fn stdin_dockerfile_builds_with_an_empty_context() {
    let root = Root::new();
    root.import_busybox("busybox");
    let dockerfile = "FROM busybox\nRUN echo built > /out\n";
    let built = build_stdin_ok(&root, &["-t", "fromstdin"], dockerfile);
    assert!(
        built
            .stderr
            .contains("[internal] load build context\n#1 transferring context: 0B done"),
        "{}",
        built.stderr
    );
    assert!(
        built
            .stderr
            .contains(&format!("transferring dockerfile: {}B done", dockerfile.len())),
        "{}",
        built.stderr
    );
    assert_eq!(root.ok(&["run", "--rm", "fromstdin", "cat", "/out"]), "built\n");
    assert!(unpacked_contexts(&root).is_empty());
}

#[test]
fn stdin_dockerfile_copy_fails_with_a_located_not_found() {
    let root = Root::new();
    root.import_busybox("busybox");
    let built = build_stdin(&root, &[], "FROM busybox\nCOPY app.txt /\n");
    assert!(!built.success);
    let error = built.stderr.lines().last().unwrap();
    assert!(
        error.starts_with(
            "error: failed to solve: failed to compute cache key: failed to calculate checksum of ref "
        ) && error.ends_with(": \"/app.txt\": not found"),
        "{}",
        built.stderr
    );
    // The excerpt is the Dockerfile that came on stdin, not a file of the working directory.
    assert!(
        built.stderr.contains(
            "Dockerfile:2\n--------------------\n   1 |     FROM busybox\n   2 | >>> COPY app.txt /\n"
        ),
        "{}",
        built.stderr
    );
    assert!(unpacked_contexts(&root).is_empty());
}

#[test]
fn stdin_dockerfile_and_dockerfile_flag_are_ambiguous() {
    let root = Root::new();
    let built = build_stdin(&root, &["-f", "Dockerfile"], "FROM busybox\n");
    assert!(!built.success);
    assert!(
        built.stderr.ends_with(
            "error: failed to solve: ambiguous Dockerfile source: both stdin and flag correspond to \
             Dockerfiles\n"
        ),
        "{}",
        built.stderr
    );
}

#[test]
fn stdin_plain_tar_is_the_context() {
    let root = Root::new();
    root.import_busybox("busybox");
    let archive = tar_of(&[
        ("Dockerfile", "FROM busybox\nCOPY . /ctx/\n"),
        ("app.txt", "hello\n"),
        ("dir/nested.txt", "nested\n"),
    ]);
    let built = build_stdin_ok(&root, &["-t", "plain"], archive.clone());
    assert!(
        built
            .stderr
            .contains(&format!("transferring context: {}B done", archive.len())),
        "{}",
        built.stderr
    );
    assert_eq!(
        root.ok(&[
            "run",
            "--rm",
            "plain",
            "cat",
            "/ctx/app.txt",
            "/ctx/dir/nested.txt"
        ]),
        "hello\nnested\n"
    );
    assert!(unpacked_contexts(&root).is_empty());
}

#[test]
fn stdin_gzip_tar_with_dockerfile_in_a_subdirectory() {
    let root = Root::new();
    root.import_busybox("busybox");
    let archive = gzip(&tar_of(&[
        ("sub/Dockerfile", "FROM busybox\nCOPY app.txt /\n"),
        ("app.txt", "from gzip\n"),
    ]));
    build_stdin_ok(&root, &["-f", "sub/Dockerfile", "-t", "gz"], archive.clone());
    assert_eq!(root.ok(&["run", "--rm", "gz", "cat", "/app.txt"]), "from gzip\n");
    // Without -f the default Dockerfile is at the archive's root, where there is none.
    let built = build_stdin(&root, &[], archive);
    assert!(
        built
            .stderr
            .ends_with("error: failed to solve: failed to read dockerfile Dockerfile: No such file or directory (os error 2)\n"),
        "{}",
        built.stderr
    );
    assert!(unpacked_contexts(&root).is_empty());
}

#[test]
fn stdin_zstd_tar_is_the_context() {
    let root = Root::new();
    root.import_busybox("busybox");
    let archive = tar_of(&[
        ("Dockerfile", "FROM busybox\nCOPY app.txt /\n"),
        ("app.txt", "from zstd\n"),
    ]);
    let archive = zstd::encode_all(&archive[..], 3).unwrap();
    build_stdin_ok(&root, &["-t", "zst"], archive);
    assert_eq!(root.ok(&["run", "--rm", "zst", "cat", "/app.txt"]), "from zstd\n");
}

#[test]
fn stdin_tar_dockerignore_is_honoured() {
    let root = Root::new();
    root.import_busybox("busybox");
    let archive = tar_of(&[
        ("Dockerfile", "FROM busybox\nCOPY . /ctx/\n"),
        (".dockerignore", "*.log\nsecret/\n"),
        ("app.txt", "kept\n"),
        ("debug.log", "ignored\n"),
        ("secret/key", "ignored\n"),
    ]);
    build_stdin_ok(&root, &["-t", "ignored"], archive);
    assert_eq!(
        root.ok(&["run", "--rm", "ignored", "ls", "-A", "/ctx"]),
        ".dockerignore\nDockerfile\napp.txt\n"
    );
    // An ignored file does not exist for COPY either.
    let archive = tar_of(&[
        ("Dockerfile", "FROM busybox\nCOPY debug.log /\n"),
        (".dockerignore", "*.log\n"),
        ("debug.log", "ignored\n"),
    ]);
    let built = build_stdin(&root, &[], archive);
    assert!(
        built.stderr.ends_with(": \"/debug.log\": not found\n"),
        "{}",
        built.stderr
    );
}

#[test]
fn stdin_tar_entry_escaping_the_context_is_refused() {
    let root = Root::new();
    root.import_busybox("busybox");
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(13);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "Dockerfile", &b"FROM busybox\n"[..])
        .unwrap();
    // `append_data` refuses `..`; a hostile archive is written by hand.
    let mut header = tar::Header::new_gnu();
    header.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
    header.set_size(6);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append(&header, &b"owned\n"[..]).unwrap();
    let built = build_stdin(&root, &[], tar.into_inner().unwrap());
    assert!(!built.success);
    assert!(
        built.stderr.ends_with(
            "error: failed to solve: failed to unpack the build context: archive stdin: archive path \
             \"../escape\" is outside extraction root\n"
        ),
        "{}",
        built.stderr
    );
    assert!(find(root.path(), "escape").is_empty());
    assert!(unpacked_contexts(&root).is_empty());
}

#[test]
fn stdin_tar_symlinks_resolve_inside_the_context() {
    let root = Root::new();
    root.import_busybox("busybox");
    // `up` points two levels above the context directory (the kiln root); a file written through
    // it lands in the context root, as if the context were `/`.
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_size(0);
    header.set_mode(0o777);
    tar.append_link(&mut header, "up", "../..").unwrap();
    for (path, content) in [
        ("up/through-link.txt", "contained\n"),
        ("Dockerfile", "FROM busybox\nCOPY through-link.txt /\n"),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, content.as_bytes()).unwrap();
    }
    build_stdin_ok(&root, &["-t", "linked"], tar.into_inner().unwrap());
    assert_eq!(
        root.ok(&["run", "--rm", "linked", "cat", "/through-link.txt"]),
        "contained\n"
    );
    // Outside the context, the file is only in the image's layer snapshot; not where `up` points.
    let found = find(root.path(), "through-link.txt");
    assert!(
        found
            .iter()
            .all(|p| p.starts_with(root.path().join("snapshots-v1"))),
        "{found:?}"
    );
    assert!(unpacked_contexts(&root).is_empty());
}

#[test]
fn stdin_for_both_context_and_dockerfile_is_refused() {
    let root = Root::new();
    let built = build_stdin(&root, &["-f", "-"], "FROM busybox\n");
    assert!(!built.success);
    assert_eq!(
        built.stderr,
        "error: invalid argument: can't use stdin for both build context and dockerfile\n"
    );
}

#[test]
fn stdin_that_is_neither_archive_nor_dockerfile_is_refused() {
    let root = Root::new();
    let built = build_stdin(&root, &[], &b"PK\x03\x04\x14\x00\x00\x00zipped"[..]);
    assert!(!built.success);
    assert!(
        built.stderr.ends_with(
            "error: failed to solve: stdin holds a zip archive, not a build context: kiln reads a tar \
             archive (plain, gzip, bzip2, xz or zstd) or a Dockerfile\n"
        ),
        "{}",
        built.stderr
    );
    assert!(unpacked_contexts(&root).is_empty());
}

/// Starts `kiln build --progress=plain -` with a pipe on stdin (returned, still open).
fn spawn_build(root: &Root) -> (std::process::Child, std::process::ChildStdin) {
    use std::process::Stdio;
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("kiln"))
        .arg("--root")
        .arg(root.path())
        .args(["build", "--progress=plain", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    (child, stdin)
}

/// Waits (a minute at most) for `condition`, then sends SIGINT to `child` and returns its stderr.
fn interrupt_when(child: &mut std::process::Child, condition: impl Fn() -> bool) -> String {
    use std::io::Read as _;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !condition() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(condition(), "the build never got there");
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    stderr
}

#[test]
fn stdin_interrupted_while_waiting_for_input_removes_the_context() {
    let root = Root::new();
    let (mut child, stdin) = spawn_build(&root);
    // Nothing is written: kiln waits for the stream in its context directory.
    let stderr = interrupt_when(&mut child, || !unpacked_contexts(&root).is_empty());
    drop(stdin);
    assert!(
        stderr.ends_with("error: failed to solve: interrupted\n"),
        "{stderr}"
    );
    assert!(unpacked_contexts(&root).is_empty());
}

#[test]
fn stdin_interrupted_during_a_step_removes_the_context() {
    let root = Root::new();
    root.import_busybox("busybox");
    let (mut child, mut stdin) = spawn_build(&root);
    let archive = tar_of(&[("Dockerfile", "FROM busybox\nRUN sleep 60\n")]);
    stdin.write_all(&archive).unwrap();
    drop(stdin);
    // The step runs once its rootfs is mounted; the context directory is still there.
    let stderr = interrupt_when(&mut child, || !root.step_mounts().is_empty());
    assert!(
        stderr.ends_with("error: failed to solve: interrupted\n"),
        "{stderr}"
    );
    assert!(unpacked_contexts(&root).is_empty());
    assert!(root.leftover_mounts().is_empty());
}
