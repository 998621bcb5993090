//! `kiln import`, `load` and `pull` unpack the images they store, as containerd does: a build
//! `FROM` such an image finds its layers unpacked (its FROM vertex is `CACHED`), and an image
//! whose layers cannot be unpacked is stored all the same, with a warning.

use crate::support::{Built, Registry, Root, context};

/// The snapshot the one layer of `image` unpacks into: `layer-<diff id hex>` (a bottom layer's
/// chain id is its diff id).
fn layer_snapshot(root: &Root, image: &str) -> String {
    let layers = root.config(image)["RootFS"]["Layers"].clone();
    assert_eq!(layers.as_array().map(Vec::len), Some(1), "{layers}");
    let diff_id = layers[0].as_str().unwrap();
    format!("layer-{}", diff_id.strip_prefix("sha256:").unwrap())
}

/// How the FROM vertex of a plain-progress build ended: `CACHED`, or `DONE` when it unpacked.
fn from_vertex(built: &Built) -> String {
    let id = built
        .stderr
        .lines()
        .find_map(|line| {
            let (id, text) = line.strip_prefix('#')?.split_once(' ')?;
            text.contains("] FROM ").then(|| id.to_owned())
        })
        .unwrap_or_else(|| panic!("no FROM vertex:\n{}", built.stderr));
    let prefix = format!("#{id} ");
    built
        .stderr
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .find_map(|text| match text.split(' ').next() {
            Some(end @ ("CACHED" | "DONE" | "ERROR:")) => Some(end.to_owned()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("the FROM vertex did not end:\n{}", built.stderr))
}

/// Builds a step on `image` and returns the build.
fn build_on(root: &Root, image: &str) -> Built {
    let ctx = context(&[("Dockerfile", &format!("FROM {image}\nRUN echo on > /on\n"))]);
    root.build_ok(ctx.path(), &[])
}

#[test]
fn import_unpacks_so_a_build_from_the_image_has_nothing_to_unpack() {
    let root = Root::new();
    root.import_busybox("busybox:latest");
    let layer = layer_snapshot(&root, "busybox:latest");
    assert_eq!(root.cache_entries(), std::slice::from_ref(&layer));
    // The unpacked layer is build cache, as one a build unpacks (counted, not in use).
    let df = root.ok(&[
        "system",
        "df",
        "--format",
        "{{.Type}}|{{.TotalCount}}|{{.Active}}",
    ]);
    assert_eq!(df, "Images|1|0\nBuild Cache|1|0\n");

    let built = build_on(&root, "busybox");
    assert_eq!(from_vertex(&built), "CACHED", "{}", built.stderr);
    assert_eq!(built.ran(), ["[2/2] RUN echo on > /on", "exporting to image"]);

    // Without the unpacked layer (pruned), the build unpacks it at FROM.
    root.ok(&["builder", "prune", "-a", "-f"]);
    assert_eq!(root.cache_entries(), Vec::<String>::new());
    let built = build_on(&root, "busybox");
    assert_eq!(from_vertex(&built), "DONE", "{}", built.stderr);
    assert_eq!(root.cache_entries().iter().filter(|e| **e == layer).count(), 1);
}

#[test]
fn load_unpacks_each_image_and_still_says_what_it_loaded() {
    let source = Root::new();
    source.import_busybox("busybox:latest");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("busybox.tar");
    source.ok(&["save", "-o", file.to_str().unwrap(), "busybox"]);

    let root = Root::new();
    let out = root.ok(&["load", "-i", file.to_str().unwrap()]);
    assert_eq!(out, "Loaded image: busybox:latest\n");
    assert_eq!(root.cache_entries(), [layer_snapshot(&root, "busybox:latest")]);
    let built = build_on(&root, "busybox");
    assert_eq!(from_vertex(&built), "CACHED", "{}", built.stderr);
}

#[test]
fn pull_unpacks_so_a_build_from_the_image_has_nothing_to_unpack() {
    let registry = Registry::start();
    let config = tempfile::tempdir().unwrap();
    let name = registry.name("busybox:latest");
    let source = Root::new();
    source.import_busybox(&name);
    let push = source.run_with_config(config.path(), &["push", &name]);
    assert!(push.ok, "push failed:\n{}", push.stderr);

    let root = Root::new();
    let pull = root.run_with_config(config.path(), &["pull", &name]);
    assert!(pull.ok, "pull failed:\n{}", pull.stderr);
    assert!(!pull.stderr.contains("warning"), "{}", pull.stderr);
    assert_eq!(root.cache_entries(), [layer_snapshot(&root, &name)]);
    let built = build_on(&root, &name);
    assert_eq!(from_vertex(&built), "CACHED", "{}", built.stderr);
}

/// A root filesystem tarball whose one entry is a hard link to a file it does not hold: a
/// well-formed tar, so it imports, but no layer applier can unpack it.
fn dangling_hardlink_tar() -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Link);
    header.set_size(0);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    tar.append_link(&mut header, "link", "missing").unwrap();
    tar.into_inner().unwrap()
}

#[test]
fn an_image_that_cannot_be_unpacked_is_stored_with_a_warning() {
    let root = Root::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.tar");
    std::fs::write(&file, dangling_hardlink_tar()).unwrap();

    let out = root
        .kiln()
        .args(["import", file.to_str().unwrap(), "broken:1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let id = String::from_utf8(out.stdout).unwrap();
    assert!(id.starts_with("sha256:"), "{id}");
    assert!(
        stderr.starts_with("warning: image broken:1 could not be unpacked: ")
            && stderr.contains("link")
            && stderr.ends_with("; it will be unpacked when a build uses it\n"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(
        root.ok(&[
            "images",
            "--no-trunc",
            "--format",
            "{{.Repository}}:{{.Tag}} {{.ID}}"
        ]),
        format!("broken:1 {id}")
    );
    assert_eq!(
        root.cache_entries(),
        Vec::<String>::new(),
        "nothing half-unpacked is left"
    );

    // A build meets the same error at FROM.
    let ctx = context(&[("Dockerfile", "FROM broken:1\n")]);
    let built = root.build(ctx.path(), &[]);
    assert!(!built.success, "{}", built.stderr);
    assert_eq!(from_vertex(&built), "ERROR:", "{}", built.stderr);
}

/// A root filesystem tarball of `files` small files in 100 directories: quick to import, slow
/// enough to unpack (file creation) that a test can interrupt the unpack midway.
fn many_files_tar(files: usize) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for i in 0..files {
        let mut header = tar::Header::new_gnu();
        header.set_size(6);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, format!("d{}/f{i}", i % 100), &b"hello\n"[..])
            .unwrap();
    }
    tar.into_inner().unwrap()
}

#[test]
fn ctrl_c_during_the_unpack_leaves_no_mount_and_keeps_the_image() {
    let root = Root::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("many.tar");
    std::fs::write(&file, many_files_tar(20_000)).unwrap();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("kiln"))
        .arg("--root")
        .arg(root.path())
        .args(["import", file.to_str().unwrap(), "many:1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The layer is mounted (outside the root) while it unpacks: interrupt then.
    let started = std::time::Instant::now();
    while root.step_mounts().is_empty() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "the unpack never mounted"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "import ended before its unpack was seen"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "exits as Ctrl-C asked: {stderr}");
    assert!(root.leftover_mounts().is_empty(), "{:?}", root.leftover_mounts());
    assert_eq!(
        root.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]),
        "many:1\n",
        "stored before it was unpacked"
    );
    // The unpack ran to its end before kiln exited: its snapshot is committed (an unpack commits
    // only a whole layer), and a build on the image has nothing to unpack.
    assert_eq!(root.cache_entries(), [layer_snapshot(&root, "many:1")]);
    let built = build_on_scratch_like(&root, "many:1");
    assert_eq!(from_vertex(&built), "CACHED", "{}", built.stderr);
}

/// Builds an image with no shell: a config-only step on `image`.
fn build_on_scratch_like(root: &Root, image: &str) -> Built {
    let ctx = context(&[("Dockerfile", &format!("FROM {image}\nLABEL unpacked=yes\n"))]);
    root.build_ok(ctx.path(), &[])
}
