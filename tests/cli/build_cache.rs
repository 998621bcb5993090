//! `kiln build` and its cache: what hits, what misses, and `--no-cache`.

use crate::support::{Root, context};

const DOCKERFILE: &str = "FROM busybox\nCOPY src/ /src/\nRUN cat /src/* > /all\nCOPY other.txt /\n";

fn setup() -> (Root, tempfile::TempDir) {
    let root = Root::new();
    root.import_busybox("busybox:latest");
    let ctx = context(&[
        ("Dockerfile", DOCKERFILE),
        ("src/a.txt", "a\n"),
        ("src/b.txt", "b\n"),
        ("other.txt", "other\n"),
        ("unused.txt", "unused\n"),
    ]);
    (root, ctx)
}

#[test]
fn a_rebuild_hits_every_step() {
    let (root, ctx) = setup();
    let first = root.build_ok(ctx.path(), &["-t", "c:1"]);
    // Only FROM: `kiln import` unpacked busybox.
    assert_eq!(first.cached(), 1, "{}", first.stderr);
    let second = root.build_ok(ctx.path(), &["-t", "c:2"]);
    // FROM and the three steps.
    assert_eq!(second.cached(), 4, "{}", second.stderr);
    let layers = |name: &str| root.config(name)["RootFS"]["Layers"].clone();
    assert_eq!(layers("c:1"), layers("c:2"));
    // As with BuildKit, a cached step keeps the time it ran: the rebuild is the very same image.
    assert_eq!(root.config("c:1")["Id"], root.config("c:2")["Id"]);
    let history = root.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedAt}} {{.CreatedBy}}",
        "c:2",
    ]);
    assert!(history.contains("RUN /bin/sh -c cat /src/* > /all"), "{history}");
}

#[test]
fn a_stage_the_image_does_not_contain_leaves_no_layer_until_an_image_needs_it() {
    let root = Root::new();
    root.import_busybox("busybox:latest");
    let dockerfile = "FROM busybox AS build\nRUN echo built > /artifact && head -c 65536 /dev/urandom > /noise\n\
                      FROM busybox\nCOPY --from=build /artifact /artifact\n";
    let ctx = context(&[("Dockerfile", dockerfile)]);
    let before = root.blobs();
    root.build_ok(ctx.path(), &["-t", "final:1"]);
    let image_layers = |name: &str| -> Vec<String> {
        root.config(name)["RootFS"]["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_owned())
            .collect()
    };
    let added: Vec<String> = root.blobs().into_iter().filter(|b| !before.contains(b)).collect();
    // The image's config, manifest and its one new layer: the build stage's RUN wrote no blob.
    assert_eq!(added.len(), 3, "new blobs: {added:?}");
    assert_eq!(image_layers("final:1").len(), 2);

    // Building that stage as an image later hits the cache and writes its layer from the snapshot.
    let stage = root.build_ok(ctx.path(), &["--target", "build", "-t", "stage:1"]);
    assert_eq!(stage.ran(), ["exporting to image"], "{}", stage.stderr);
    assert_eq!(image_layers("stage:1").len(), 2);
    let dest = tempfile::tempdir().unwrap();
    let tar = dest.path().join("stage.tar");
    root.ok(&["save", "-o", tar.to_str().unwrap(), "stage:1"]);
    let other = Root::new();
    other.ok(&["load", "-i", tar.to_str().unwrap()]);
    let out = other.ok(&["run", "--rm", "stage:1", "cat", "/artifact"]);
    assert_eq!(out.trim(), "built");
}

#[test]
fn touching_files_hits_and_changing_an_unselected_file_hits() {
    let (root, ctx) = setup();
    root.build_ok(ctx.path(), &[]);
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
    for file in ["src/a.txt", "src/b.txt", "other.txt"] {
        std::fs::File::options()
            .write(true)
            .open(ctx.path().join(file))
            .unwrap()
            .set_modified(later)
            .unwrap();
    }
    std::fs::write(ctx.path().join("unused.txt"), "changed\n").unwrap();
    let again = root.build_ok(ctx.path(), &[]);
    assert_eq!(again.cached(), 4, "{}", again.stderr);
}

#[test]
fn a_content_change_misses_from_that_step_on() {
    let (root, ctx) = setup();
    root.build_ok(ctx.path(), &[]);
    std::fs::write(ctx.path().join("other.txt"), "new\n").unwrap();
    let again = root.build_ok(ctx.path(), &[]);
    assert_eq!(
        again.ran(),
        ["[4/4] COPY other.txt /", "exporting to image"],
        "{}",
        again.stderr
    );
}

#[test]
fn renaming_a_selected_file_misses() {
    let (root, ctx) = setup();
    root.build_ok(ctx.path(), &[]);
    std::fs::rename(ctx.path().join("src/b.txt"), ctx.path().join("src/c.txt")).unwrap();
    let again = root.build_ok(ctx.path(), &[]);
    assert_eq!(again.cached(), 1, "only FROM hits: {}", again.stderr);
}

#[test]
fn no_cache_runs_everything() {
    let (root, ctx) = setup();
    root.build_ok(ctx.path(), &[]);
    let again = root.build_ok(ctx.path(), &["--no-cache"]);
    assert_eq!(
        again.ran().len(),
        4,
        "three steps and the export: {}",
        again.stderr
    );
}

#[test]
fn no_cache_keeps_the_new_result_and_later_builds_hit_it() {
    let root = Root::new();
    root.import_busybox("busybox:latest");
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN cat /proc/sys/kernel/random/uuid > /id\n",
    )]);
    let id_of = |args: &[&str]| {
        let built = root.build_ok(ctx.path(), &[&["-t", "fresh:1"], args].concat());
        let id = root.ok(&["run", "--rm", "fresh:1", "cat", "/id"]);
        (built, id)
    };
    let (_, first) = id_of(&[]);
    let (rebuilt, second) = id_of(&["--no-cache"]);
    assert_eq!(
        rebuilt.cached(),
        1,
        "only FROM (unpacked by import): {}",
        rebuilt.stderr
    );
    assert_ne!(
        second, first,
        "--no-cache ran the step again and kept what it made"
    );
    let (cached, third) = id_of(&[]);
    assert_eq!(cached.cached(), 2, "FROM and the RUN: {}", cached.stderr);
    assert_eq!(third, second, "the cache now holds the newest result");
}

#[test]
fn build_args_in_scope_key_the_run() {
    let root = Root::new();
    root.import_busybox("busybox:latest");
    let ctx = context(&[("Dockerfile", "FROM busybox\nARG MODE=a\nRUN echo $MODE\n")]);
    root.build_ok(ctx.path(), &[]);
    assert_eq!(root.build_ok(ctx.path(), &["--build-arg", "MODE=a"]).cached(), 2);
    let other = root.build_ok(ctx.path(), &["--build-arg", "MODE=b"]);
    assert!(other.stderr.contains(" b\n"), "{}", other.stderr);
    // A proxy variable reaches RUN but not the key.
    let proxied = root.build_ok(
        ctx.path(),
        &[
            "--build-arg",
            "MODE=b",
            "--build-arg",
            "HTTP_PROXY=http://proxy:3128",
        ],
    );
    assert_eq!(proxied.cached(), 2, "{}", proxied.stderr);
}

#[test]
fn a_stat_cache_that_cannot_open_slows_the_build_but_does_not_fail_it() {
    let (root, ctx) = setup();
    // A file where the stat cache's directory belongs.
    std::fs::write(root.path().join("context-cache-v2"), "not a directory").unwrap();
    let built = root.build_ok(ctx.path(), &["-t", "c:1"]);
    assert!(
        built.stderr.contains("no stat cache, every file is read: "),
        "{}",
        built.stderr
    );
    assert_eq!(root.ok(&["run", "--rm", "c:1", "cat", "/all"]), "a\nb\n");
}
