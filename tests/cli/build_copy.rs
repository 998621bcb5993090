//! `kiln build`: COPY and ADD as BuildKit does them, seen in the built filesystem.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::support::{Root, context};

/// Builds `dockerfile` with `files` in the context and exports the result to a directory.
fn build_local(root: &Root, files: &[(&str, &str)]) -> tempfile::TempDir {
    let ctx = context(files);
    let out = tempfile::tempdir().unwrap();
    let dest = format!("type=local,dest={}", out.path().display());
    root.build_ok(ctx.path(), &["-o", &dest]);
    out
}

fn read(dir: &Path, path: &str) -> String {
    std::fs::read_to_string(dir.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn sources_destinations_wildcards_and_directory_contents() {
    let root = Root::new();
    let out = build_local(
        &root,
        &[
            (
                "Dockerfile",
                "FROM scratch\nWORKDIR /app\nCOPY dir /contents/\nCOPY dir/sub/c.txt renamed.txt\n\
                 COPY *.md docs/\nCOPY a.txt b.txt /multi/\nCOPY --exclude=*.log dir /filtered\n",
            ),
            ("dir/a.txt", "a\n"),
            ("dir/sub/c.txt", "c\n"),
            ("dir/debug.log", "log\n"),
            ("one.md", "1\n"),
            ("two.md", "2\n"),
            ("a.txt", "A\n"),
            ("b.txt", "B\n"),
        ],
    );
    let o = out.path();
    // A directory source copies its contents.
    assert_eq!(read(o, "contents/a.txt"), "a\n");
    assert_eq!(read(o, "contents/sub/c.txt"), "c\n");
    assert!(!o.join("contents/dir").exists());
    // A relative destination is under WORKDIR; a file to a name without slash is that file.
    assert_eq!(read(o, "app/renamed.txt"), "c\n");
    assert_eq!(read(o, "app/docs/one.md"), "1\n");
    assert_eq!(read(o, "app/docs/two.md"), "2\n");
    assert_eq!(read(o, "multi/b.txt"), "B\n");
    assert!(o.join("filtered/a.txt").exists());
    assert!(!o.join("filtered/debug.log").exists());
}

#[test]
fn chown_names_resolve_in_the_image_and_chmod_applies() {
    let root = Root::new();
    root.import_busybox("busybox:latest");
    let out = build_local(
        &root,
        &[
            (
                "Dockerfile",
                "FROM busybox\nCOPY --chown=app:app owned.txt /data/\nCOPY --chown=1234 --chmod=u=rwx,go=r tool /bin/tool\n",
            ),
            ("owned.txt", "x\n"),
            ("tool", "#!/bin/sh\n"),
        ],
    );
    let owned = std::fs::metadata(out.path().join("data/owned.txt")).unwrap();
    assert_eq!((owned.uid(), owned.gid()), (1000, 1000));
    let tool = std::fs::metadata(out.path().join("bin/tool")).unwrap();
    assert_eq!((tool.uid(), tool.gid()), (1234, 1234));
    assert_eq!(tool.permissions().mode() & 0o7777, 0o744);
}

#[test]
fn add_extracts_local_archives_and_copy_does_not() {
    let root = Root::new();
    let ctx = context(&[(
        "Dockerfile",
        "FROM scratch\nADD files.tar /x/\nCOPY files.tar /y/\n",
    )]);
    let payload = ctx.path().join("payload");
    std::fs::create_dir(&payload).unwrap();
    std::fs::write(payload.join("inside.txt"), "packed\n").unwrap();
    let status = std::process::Command::new("tar")
        .arg("-cf")
        .arg(ctx.path().join("files.tar"))
        .arg("-C")
        .arg(&payload)
        .arg("inside.txt")
        .status()
        .unwrap();
    assert!(status.success());
    let out = tempfile::tempdir().unwrap();
    let dest = format!("type=local,dest={}", out.path().display());
    root.build_ok(ctx.path(), &["-o", &dest]);
    assert_eq!(read(out.path(), "x/inside.txt"), "packed\n");
    assert!(out.path().join("y/files.tar").is_file());
}

#[test]
fn dockerignore_hides_files_from_copy() {
    let root = Root::new();
    let out = build_local(
        &root,
        &[
            ("Dockerfile", "FROM scratch\nCOPY . /ctx/\n"),
            (".dockerignore", "secret.txt\n*.log\n"),
            ("kept.txt", "kept\n"),
            ("secret.txt", "secret\n"),
            ("build.log", "log\n"),
        ],
    );
    assert_eq!(read(out.path(), "ctx/kept.txt"), "kept\n");
    assert!(!out.path().join("ctx/secret.txt").exists());
    assert!(!out.path().join("ctx/build.log").exists());
}

#[test]
fn heredocs_and_onbuild_triggers() {
    let root = Root::new();
    root.import_busybox("busybox:latest");
    let parent = context(&[(
        "Dockerfile",
        "FROM busybox\nONBUILD RUN echo triggered > /from-onbuild\n",
    )]);
    root.build_ok(parent.path(), &["-t", "parent:1"]);
    let child = context(&[(
        "Dockerfile",
        "FROM parent:1\nARG WHO=you\nCOPY <<EOF /greeting\nhello $WHO\nEOF\nRUN <<EOF\ncat /greeting /from-onbuild > /both\nEOF\n",
    )]);
    let out = tempfile::tempdir().unwrap();
    let dest = format!("type=local,dest={}", out.path().display());
    let built = root.build_ok(child.path(), &["-o", &dest]);
    assert!(
        built
            .stderr
            .contains("ONBUILD RUN echo triggered > /from-onbuild"),
        "{}",
        built.stderr
    );
    assert_eq!(read(out.path(), "both"), "hello you\ntriggered\n");
}

#[test]
fn a_missing_source_fails_its_step_with_the_dockerfile_lines() {
    let root = Root::new();
    root.import_busybox("busybox:latest");
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM busybox\nCOPY present.txt /\nCOPY missing.txt /\n",
        ),
        ("present.txt", "here\n"),
    ]);
    let built = root.build(ctx.path(), &["-t", "never:1"]);
    assert!(!built.success);
    let stderr = &built.stderr;
    assert!(
        stderr.contains("\"/missing.txt\": not found"),
        "the path that is missing: {stderr}"
    );
    assert!(
        stderr.contains("error: failed to solve: failed to compute cache key: "),
        "{stderr}"
    );
    assert!(stderr.contains(" > [3/3] COPY missing.txt /:\n"), "{stderr}");
    assert!(stderr.contains("   3 | >>> COPY missing.txt /\n"), "{stderr}");
    assert!(root.ok(&["images", "-q", "never:1"]).is_empty());
}
