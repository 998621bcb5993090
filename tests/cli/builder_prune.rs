//! `kiln builder prune` / `du` and the Build Cache row of `kiln system df`: what goes, what stays,
//! and builds after (and during) a prune.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Root, context};

/// The ids `builder prune` printed under `Deleted build cache objects:`.
fn deleted(stdout: &str) -> Vec<String> {
    let mut lines = stdout.lines();
    let mut ids = Vec::new();
    if lines.next() == Some("Deleted build cache objects:") {
        ids.extend(lines.take_while(|l| !l.is_empty()).map(str::to_owned));
    }
    ids
}

/// The Build Cache row of `system df`: (total, active, size, reclaimable).
fn df_cache_row(root: &Root) -> (usize, usize, String, String) {
    let out = root.ok(&[
        "system",
        "df",
        "--format",
        "{{.Type}}|{{.TotalCount}}|{{.Active}}|{{.Size}}|{{.Reclaimable}}",
    ]);
    let line = out
        .lines()
        .find(|l| l.starts_with("Build Cache|"))
        .unwrap_or_else(|| panic!("no Build Cache row:\n{out}"));
    let cells: Vec<&str> = line.split('|').collect();
    (
        cells[1].parse().unwrap(),
        cells[2].parse().unwrap(),
        cells[3].to_owned(),
        cells[4].to_owned(),
    )
}

/// Snapshot directories left in the root's snapshotter.
fn snapshot_dirs(root: &Root) -> Vec<String> {
    std::fs::read_dir(root.path().join("snapshots-v1/snapshots"))
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

const MULTI_STAGE: &str = "FROM busybox AS build\nRUN echo built > /artifact\nRUN echo more >> /artifact\n\
                           FROM busybox\nCOPY --from=build /artifact /artifact\nRUN cat /artifact\n";

#[test]
fn a_dangling_prune_removes_the_stage_no_image_holds() {
    let root = Root::new();
    root.import_busybox("busybox:latest");
    let ctx = context(&[("Dockerfile", MULTI_STAGE)]);
    root.build_ok(ctx.path(), &["-t", "final:1"]);
    let id = root.config("final:1")["Id"].clone();

    let out = root.ok(&["builder", "prune", "-f"]);
    let removed = deleted(&out);
    // The build stage's two steps: no image has their layers.
    assert_eq!(removed.len(), 2, "{out}");
    assert!(removed.iter().all(|r| r.starts_with("step-")), "{out}");
    assert!(out.ends_with('\n') && out.lines().last().unwrap().starts_with("Total reclaimed space: "));
    assert!(out.contains("\n\nTotal reclaimed space: "), "{out}");
    let left = root.cache_entries();
    assert!(removed.iter().all(|r| !left.contains(r)), "{left:?}");
    assert_eq!(
        deleted(&root.ok(&["builder", "prune", "-f"])),
        Vec::<String>::new()
    );

    // The final image's steps are still cached; the stage it copies from runs again (the
    // scheduler runs every stage a target reads) and yields the same image.
    let again = root.build_ok(ctx.path(), &["-t", "final:1"]);
    assert_eq!(
        again.ran(),
        [
            "[build 2/3] RUN echo built > /artifact",
            "[build 3/3] RUN echo more >> /artifact",
            "exporting to image"
        ],
        "{}",
        again.stderr
    );
    assert_eq!(root.config("final:1")["Id"], id);

    // Pruned again, the intermediate target runs its steps.
    assert_eq!(deleted(&root.ok(&["builder", "prune", "-f"])).len(), 2);
    let stage = root.build_ok(ctx.path(), &["--target", "build"]);
    assert_eq!(stage.ran().len(), 3, "two steps and the export: {}", stage.stderr);
    assert!(root.leftover_mounts().is_empty(), "{:?}", root.leftover_mounts());
}

#[test]
fn prune_all_removes_every_entry_and_the_next_build_runs_every_step() {
    let root = Root::new();
    root.import_busybox("busybox:latest");
    let dockerfile = "FROM busybox\nRUN --mount=type=cache,target=/cache echo hit >> /cache/log && cp /cache/log /log\n\
                      COPY file.txt /\n";
    let ctx = context(&[("Dockerfile", dockerfile), ("file.txt", "file\n")]);
    root.build_ok(ctx.path(), &["-t", "app:1"]);
    let (total, active, _, _) = df_cache_row(&root);
    // Busybox's base layer, two steps, one cache mount.
    assert_eq!((total, active), (4, 0));
    let dirs = snapshot_dirs(&root);
    assert_eq!(dirs.len(), 3, "{dirs:?}");

    // Everything an image holds, and cache mounts, stay without --all.
    let out = root.ok(&["builder", "prune", "-f"]);
    assert_eq!(deleted(&out), Vec::<String>::new(), "{out}");
    assert_eq!(out, "Total reclaimed space: 0B\n");

    let out = root.ok(&["builder", "prune", "-a", "-f"]);
    let removed = deleted(&out);
    assert_eq!(removed.len(), 4, "{out}");
    for prefix in ["step-", "layer-", "cache-mount-"] {
        assert!(removed.iter().any(|r| r.starts_with(prefix)), "{prefix}: {out}");
    }
    // Children before parents: the base layer goes after the steps on it.
    let position = |prefix: &str| removed.iter().rposition(|r| r.starts_with(prefix)).unwrap();
    assert!(position("step-") < position("layer-"), "{out}");
    assert_ne!(out.lines().last().unwrap(), "Total reclaimed space: 0B");
    assert_eq!(root.cache_entries(), Vec::<String>::new());
    assert_eq!(df_cache_row(&root), (0, 0, "0B".to_owned(), "0B".to_owned()));
    assert_eq!(snapshot_dirs(&root), Vec::<String>::new());
    assert!(root.leftover_mounts().is_empty(), "{:?}", root.leftover_mounts());

    let again = root.build_ok(ctx.path(), &["-t", "app:2"]);
    assert_eq!(again.cached(), 0, "{}", again.stderr);
    assert_eq!(
        again.ran().len(),
        4,
        "FROM unpacks again, two steps and the export: {}",
        again.stderr
    );
    // A fresh cache mount: the log has one line.
    assert_eq!(root.ok(&["run", "--rm", "app:2", "cat", "/log"]), "hit\n");
}

#[test]
fn after_rmi_a_prune_removes_the_image_step_cache_and_its_layer_blobs() {
    let root = Root::new();
    root.import_busybox("busybox:latest");
    let before = root.blobs();
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN echo one > /one\nRUN echo two > /two\n",
    )]);
    root.build_ok(ctx.path(), &["-t", "app:1"]);
    assert_eq!(
        deleted(&root.ok(&["builder", "prune", "-f"])),
        Vec::<String>::new()
    );

    root.ok(&["rmi", "app:1"]);
    let out = root.ok(&["builder", "prune", "-f"]);
    let removed = deleted(&out);
    assert_eq!(removed.len(), 2, "{out}");
    assert!(
        removed.iter().all(|r| r.starts_with("step-")),
        "busybox is still stored: {out}"
    );
    // The steps' layer blobs went with their records.
    assert_eq!(root.blobs(), before);
    assert_eq!(root.cache_entries().len(), 1, "busybox's base layer");
}

#[test]
fn an_until_filter_keeps_fresh_cache() {
    let root = Root::new();
    root.import_busybox("busybox:latest");
    let ctx = context(&[("Dockerfile", MULTI_STAGE)]);
    root.build_ok(ctx.path(), &[]);
    let before = root.cache_entries();
    for filter in ["until=1h", "unused-for=24h"] {
        let out = root.ok(&["builder", "prune", "-a", "-f", "--filter", filter]);
        assert_eq!(out, "Total reclaimed space: 0B\n", "{filter}");
    }
    assert_eq!(root.cache_entries(), before);
    let bad = root
        .kiln()
        .args(["builder", "prune", "-f", "--filter", "label=x"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("invalid filter 'label'"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn keep_storage_leaves_the_cache_under_budget() {
    let root = Root::new();
    root.import_busybox("busybox:latest");
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN head -c 300000 /dev/zero > /a\nRUN head -c 300000 /dev/zero > /b\n",
    )]);
    root.build_ok(ctx.path(), &[]);
    let out = root.ok(&["buildx", "prune", "-a", "-f", "--keep-storage", "100GB"]);
    assert_eq!(out, "Total reclaimed space: 0B\n");
    let out = root.ok(&["buildx", "prune", "-a", "-f", "--keep-storage", "0"]);
    assert_eq!(deleted(&out).len(), 3, "{out}");
}

#[test]
fn without_force_it_asks_and_no_keeps_everything() {
    let root = Root::new();
    root.import_busybox("busybox:latest");
    let ctx = context(&[("Dockerfile", MULTI_STAGE)]);
    root.build_ok(ctx.path(), &[]);
    let before = root.cache_entries();
    let out = root
        .kiln()
        .args(["builder", "prune"])
        .write_stdin("n\n")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "WARNING! This will remove all dangling build cache. Are you sure you want to continue? [y/N] \n"
    );
    assert!(out.stdout.is_empty());
    assert_eq!(root.cache_entries(), before);
    let out = root
        .kiln()
        .args(["builder", "prune", "--all"])
        .write_stdin("y\n")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("WARNING! This will remove all build cache."));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("Deleted build cache objects:\n"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_prune_during_a_build_does_not_break_it() {
    let root = Root::new();
    root.import_busybox("busybox:latest");
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN echo first > /first\nRUN sleep 2 && cat /first > /slept\nRUN cat /slept\n",
    )]);
    let child = Command::new(assert_cmd::cargo::cargo_bin("kiln"))
        .arg("--root")
        .arg(root.path())
        .args(["build", "--progress=plain", "-t", "slow:1"])
        .arg(ctx.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the sleeping step's active snapshot.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !root.cache_entries().iter().any(|e| e.starts_with("build-")) {
        assert!(Instant::now() < deadline, "the build never ran a step");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, active, _, _) = df_cache_row(&root);
    assert!(active > 0, "a running build holds its snapshots");
    let out = root.ok(&["builder", "prune", "-a", "-f"]);
    let built = child.wait_with_output().unwrap();
    assert!(
        built.status.success(),
        "{}\nprune said:\n{out}",
        String::from_utf8_lossy(&built.stderr)
    );
    assert_eq!(root.ok(&["run", "--rm", "slow:1", "cat", "/slept"]), "first\n");
    // Once the build is done, everything can go.
    root.ok(&["builder", "prune", "-a", "-f"]);
    assert_eq!(root.cache_entries(), Vec::<String>::new());
    assert!(root.leftover_mounts().is_empty(), "{:?}", root.leftover_mounts());
}
