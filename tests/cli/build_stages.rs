//! `kiln build` with several stages: `--target`, `COPY --from`, stages never run, parallel builds.

use crate::support::{Root, context};

const MULTI: &str = "FROM busybox AS build\nRUN echo compiled > /app\n\
                     FROM busybox AS broken\nRUN exit 1\n\
                     FROM scratch AS release\nCOPY --from=build /app /app\n\
                     FROM busybox AS test\nCOPY --from=build /app /app\nRUN grep compiled /app\n";

#[test]
fn the_target_builds_only_what_it_needs() {
    let root = Root::new();
    root.import_busybox("busybox:latest");
    let ctx = context(&[("Dockerfile", MULTI)]);
    let out = tempfile::tempdir().unwrap();
    let dest = format!("type=local,dest={}", out.path().display());
    let built = root.build_ok(ctx.path(), &["--target", "release", "-o", &dest]);
    assert!(
        !built.stderr.contains("exit 1"),
        "the broken stage never runs: {}",
        built.stderr
    );
    assert!(
        built.stderr.contains("[release 1/1] COPY --from=build /app /app"),
        "{}",
        built.stderr
    );
    assert_eq!(
        std::fs::read_to_string(out.path().join("app")).unwrap(),
        "compiled\n"
    );
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        1,
        "scratch plus one file"
    );
    // The default target is the last stage.
    let test = root.build_ok(ctx.path(), &[]);
    assert!(
        test.stderr.contains("[test 3/3] RUN grep compiled /app"),
        "{}",
        test.stderr
    );
}

#[test]
fn a_failing_run_reads_as_buildkit() {
    let root = Root::new();
    root.import_busybox("busybox:latest");
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN true\nRUN echo about to fail && exit 3\nRUN echo never\n",
    )]);
    let built = root.build(ctx.path(), &[]);
    assert!(!built.success);
    assert!(
        built.stderr.contains(
            "error: failed to solve: process \"/bin/sh -c echo about to fail && exit 3\" did not complete successfully: exit code: 3"
        ),
        "{}",
        built.stderr
    );
    assert!(
        built
            .stderr
            .contains(" > [3/4] RUN echo about to fail && exit 3:\nabout to fail\n"),
        "{}",
        built.stderr
    );
    assert!(
        built
            .stderr
            .contains("   3 | >>> RUN echo about to fail && exit 3\n"),
        "{}",
        built.stderr
    );
    assert!(!built.stderr.contains("RUN echo never\n#"), "{}", built.stderr);
    assert!(root.leftover_mounts().is_empty(), "{:?}", root.leftover_mounts());
    // Nothing was named.
    assert!(
        root.ok(&["images", "--format", "{{.Repository}}"])
            .lines()
            .all(|l| l == "busybox")
    );
}

#[test]
fn two_concurrent_builds_share_a_store() {
    let root = Root::new();
    root.import_busybox("busybox:latest");
    let one = context(&[("Dockerfile", "FROM busybox\nRUN echo one > /id\nRUN sleep 0.2\n")]);
    let two = context(&[("Dockerfile", "FROM busybox\nRUN echo two > /id\nRUN sleep 0.2\n")]);
    std::thread::scope(|s| {
        let a = s.spawn(|| root.build(one.path(), &["-t", "one:1"]));
        let b = s.spawn(|| root.build(two.path(), &["-t", "two:1"]));
        for built in [a.join().unwrap(), b.join().unwrap()] {
            assert!(built.success, "{}", built.stderr);
        }
    });
    assert_ne!(root.config("one:1")["Id"], root.config("two:1")["Id"]);
    let again = root.build_ok(one.path(), &["-t", "one:2"]);
    assert_eq!(again.cached(), 3, "{}", again.stderr);
}
