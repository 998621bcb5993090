//! save, load and their archives: round trips, what skopeo reads and writes, and bad input.

use std::path::Path;
use std::process::Command;

use predicates::prelude::*;
use serde_json::Value;

use crate::support::Root;

/// A file's JSON inside a tarball, read with tar(1).
fn member_json(archive: &Path, member: &str) -> Value {
    let out = Command::new("tar")
        .arg("-xOf")
        .arg(archive)
        .arg(member)
        .output()
        .unwrap();
    assert!(out.status.success(), "no {member} in {}", archive.display());
    serde_json::from_slice(&out.stdout).unwrap()
}

fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo is installed");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn ids(root: &Root) -> String {
    root.ok(&[
        "images",
        "--no-trunc",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}}",
    ])
}

/// The store's blobs and unfinished ingests: what must not change when a load fails.
fn store_state(root: &Root) -> (Vec<String>, usize, String) {
    let ingests = std::fs::read_dir(root.path().join("ingest-v1")).map_or(0, Iterator::count);
    (root.blobs(), ingests, ids(root))
}

#[test]
fn save_then_load_into_a_fresh_root_keeps_ids_and_names() {
    let root = Root::new();
    let id = root.import_busybox("busybox:latest");
    root.ok(&["tag", "busybox", "busybox:1.36"]);
    root.ok(&["tag", "busybox", "example.com/app:v2"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("all.tar");
    // A repository alone saves all its tags.
    root.ok(&[
        "save",
        "-o",
        file.to_str().unwrap(),
        "busybox",
        "example.com/app:v2",
    ]);

    let manifest = member_json(&file, "manifest.json");
    assert_eq!(manifest.as_array().unwrap().len(), 1);
    let mut tags: Vec<&str> = manifest[0]["RepoTags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    tags.sort_unstable();
    assert_eq!(tags, ["busybox:1.36", "busybox:latest", "example.com/app:v2"]);
    assert_eq!(manifest[0]["Config"], format!("blobs/sha256/{}", &id[7..]));
    assert_eq!(member_json(&file, "oci-layout")["imageLayoutVersion"], "1.0.0");
    let index = member_json(&file, "index.json");
    assert_eq!(index["manifests"].as_array().unwrap().len(), 3);
    assert_eq!(
        member_json(&file, "repositories")["busybox"]
            .as_object()
            .unwrap()
            .len(),
        2
    );

    let other = Root::new();
    let out = other.ok(&["load", "-i", file.to_str().unwrap()]);
    let mut loaded: Vec<&str> = out.lines().collect();
    loaded.sort_unstable();
    assert_eq!(
        loaded,
        [
            "Loaded image: busybox:1.36",
            "Loaded image: busybox:latest",
            "Loaded image: example.com/app:v2"
        ]
    );
    assert_eq!(ids(&other), ids(&root));
    assert_eq!(
        other.ok(&["inspect", "-f", "{{.Id}} {{.Config.Cmd}}", "busybox"]),
        format!("{id} [sh]\n")
    );
}

#[test]
fn save_streams_to_stdout_and_load_reads_stdin_and_gzip() {
    let root = Root::new();
    let id = root.import_busybox("busybox:latest");
    let tarball = root.kiln().args(["save", "busybox:latest"]).output().unwrap();
    assert!(tarball.status.success());
    let gzipped = Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            let mut stdin = child.stdin.take().unwrap();
            let bytes = tarball.stdout.clone();
            let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &bytes));
            let out = child.wait_with_output();
            writer.join().unwrap()?;
            out
        })
        .unwrap()
        .stdout;
    for input in [tarball.stdout, gzipped] {
        let other = Root::new();
        other
            .kiln()
            .arg("load")
            .write_stdin(input)
            .assert()
            .success()
            .stdout("Loaded image: busybox:latest\n");
        assert_eq!(ids(&other), ids(&root));
    }
    // By ID: no names in the archive; it loads as a dangling image, and -q prints only IDs.
    let by_id = root.kiln().args(["save", &id[7..19]]).output().unwrap();
    let manifest_json = untar_member(&by_id.stdout, "manifest.json");
    assert_eq!(manifest_json[0]["RepoTags"], Value::Null);
    let other = Root::new();
    other
        .kiln()
        .args(["load", "-q"])
        .write_stdin(by_id.stdout.clone())
        .assert()
        .success()
        .stdout(format!("{id}\n"));
    other
        .kiln()
        .arg("load")
        .write_stdin(by_id.stdout)
        .assert()
        .success()
        .stdout(format!("Loaded image ID: {id}\n"));
    assert_eq!(ids(&other), format!("<none>:<none> {id}\n"));
}

fn untar_member(archive: &[u8], member: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.tar");
    std::fs::write(&path, archive).unwrap();
    member_json(&path, member)
}

#[test]
fn skopeo_reads_what_save_writes_as_docker_and_oci_archive() {
    let root = Root::new();
    let id = root.import_busybox("busybox:latest");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("busybox.tar");
    root.ok(&["save", "-o", file.to_str().unwrap(), "busybox"]);
    let diff_id = root.ok(&["inspect", "-f", "{{index .RootFS.Layers 0}}", "busybox"]);
    let manifest_digest = root.ok(&["images", "--format", "{{.Digest}}"]);

    let docker: Value = serde_json::from_str(&skopeo(&[
        "inspect",
        &format!("docker-archive:{}", file.display()),
    ]))
    .unwrap();
    assert_eq!(docker["Layers"][0], diff_id.trim());
    assert_eq!(
        docker["Env"][0],
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    );
    let config: Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--config",
        &format!("docker-archive:{}", file.display()),
    ]))
    .unwrap();
    assert_eq!(config["rootfs"]["diff_ids"][0], diff_id.trim());

    let oci: Value =
        serde_json::from_str(&skopeo(&["inspect", &format!("oci-archive:{}", file.display())])).unwrap();
    assert_eq!(oci["Digest"], manifest_digest.trim());
    let raw: Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--raw",
        &format!("oci-archive:{}", file.display()),
    ]))
    .unwrap();
    assert_eq!(raw["config"]["digest"], id);
}

#[test]
fn load_reads_archives_skopeo_writes() {
    let root = Root::new();
    let id = root.import_busybox("busybox:latest");
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("saved.tar");
    root.ok(&["save", "-o", saved.to_str().unwrap(), "busybox"]);
    let source = format!("docker-archive:{}", saved.display());
    // Old-style docker archive: <hex>.json config, uncompressed <hex>.tar layers, a layer.tar symlink.
    let docker = dir.path().join("docker.tar");
    skopeo(&[
        "copy",
        "-q",
        &source,
        &format!("docker-archive:{}:mirror/busybox:copied", docker.display()),
    ]);
    let oci = dir.path().join("oci.tar");
    skopeo(&["copy", "-q", &source, &format!("oci-archive:{}", oci.display())]);
    let oci_named = dir.path().join("oci-named.tar");
    skopeo(&[
        "copy",
        "-q",
        &source,
        &format!("oci-archive:{}:oci/busybox:named", oci_named.display()),
    ]);

    let other = Root::new();
    assert_eq!(
        other.ok(&["load", "-i", docker.to_str().unwrap()]),
        "Loaded image: mirror/busybox:copied\n"
    );
    // The layers were stored compressed, and the image is the same image.
    assert_eq!(other.ok(&["images", "-q", "--no-trunc"]), format!("{id}\n"));
    let media_type = other.ok(&[
        "inspect",
        "-f",
        "{{.Descriptor.mediaType}}",
        "mirror/busybox:copied",
    ]);
    assert_eq!(media_type, "application/vnd.oci.image.manifest.v1+json\n");

    let out = other.ok(&["load", "-i", oci.to_str().unwrap()]);
    assert!(out.starts_with("Loaded image ID: sha256:"), "{out}");
    let oci_id = out.trim().rsplit(' ').next().unwrap().to_owned();
    assert_eq!(
        other.ok(&["images", "--filter", "dangling=true", "-q", "--no-trunc"]),
        format!("{oci_id}\n")
    );
    assert_eq!(
        other.ok(&["load", "-i", oci_named.to_str().unwrap()]),
        "Loaded image: oci/busybox:named\n"
    );
    // Named now, it is no longer dangling.
    assert_eq!(other.ok(&["images", "--filter", "dangling=true", "-q"]), "");
    assert_eq!(
        other.ok(&["images", "-q", "--no-trunc", "oci/busybox"]),
        format!("{oci_id}\n")
    );
}

#[test]
fn corrupt_truncated_and_incomplete_archives_fail_and_store_nothing() {
    let root = Root::new();
    root.import_busybox("busybox:latest");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("busybox.tar");
    root.ok(&["save", "-o", file.to_str().unwrap(), "busybox"]);
    let manifest = member_json(&file, "manifest.json");
    let layer = manifest[0]["Layers"][0].as_str().unwrap().to_owned();
    let bytes = std::fs::read(&file).unwrap();
    let header = find(&bytes, layer.as_bytes()).expect("the layer's tar header");
    assert_eq!(header % 512, 0);

    // The store loaded into holds another image (not busybox: a blob already stored would
    // rightly make up for one missing from the archive).
    let target = Root::new();
    let tree = tempfile::tempdir().unwrap();
    std::fs::write(tree.path().join("hello"), "hi\n").unwrap();
    let small = dir.path().join("small.tar");
    assert!(
        Command::new("tar")
            .arg("-cf")
            .arg(&small)
            .arg("-C")
            .arg(tree.path())
            .arg(".")
            .status()
            .unwrap()
            .success()
    );
    target.ok(&["import", small.to_str().unwrap(), "other:1"]);
    let before = store_state(&target);
    assert_eq!(before.0.len(), 3);

    let mut flipped = bytes.clone();
    flipped[header + 512 + 1000] ^= 0x40;
    target
        .kiln()
        .arg("load")
        .write_stdin(flipped)
        .assert()
        .failure()
        .stderr(predicate::str::contains(format!(
            "error: failed to load images: {layer}: digest mismatch"
        )));
    assert_eq!(store_state(&target), before);

    let truncated = bytes[..header + 512 + 4096].to_vec();
    target
        .kiln()
        .arg("load")
        .write_stdin(truncated)
        .assert()
        .failure()
        .stderr(predicate::str::contains(format!(
            "unexpected end of archive in {layer}"
        )));
    assert_eq!(store_state(&target), before);

    // The layer's entry renamed away: manifest.json and the manifest refer to a missing blob.
    let mut missing = bytes.clone();
    missing[header + 4] = b'z'; // blobs/sha256/<hex> -> blobz/sha256/<hex>
    fix_checksum(&mut missing[header..header + 512]);
    target
        .kiln()
        .arg("load")
        .write_stdin(missing)
        .assert()
        .failure()
        .stderr(predicate::str::contains("which the archive does not contain"));
    assert_eq!(store_state(&target), before);

    target
        .kiln()
        .arg("load")
        .write_stdin(b"this is not a tar archive".repeat(40))
        .assert()
        .failure()
        .stderr(predicate::str::starts_with("error: failed to load images"));
    assert_eq!(store_state(&target), before);
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// Recomputes a tar header's checksum after an edit.
fn fix_checksum(header: &mut [u8]) {
    header[148..156].fill(b' ');
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    let text = format!("{sum:06o}\0 ");
    header[148..156].copy_from_slice(text.as_bytes());
}

/// The short ID of the one layer a saved archive holds.
fn only_layer(archive: &Path) -> String {
    let manifest = member_json(archive, "manifest.json");
    let layers = manifest[0]["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    let path = layers[0].as_str().unwrap();
    path.strip_prefix("blobs/sha256/").unwrap()[..12].to_owned()
}

#[test]
fn load_says_each_layer_on_stderr_and_the_names_on_stdout_and_save_says_nothing() {
    let root = Root::new();
    let id = root.import_busybox("busybox:latest");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("busybox.tar");
    root.kiln()
        .args(["save", "-o", file.to_str().unwrap(), "busybox"])
        .assert()
        .success()
        .stdout("")
        .stderr("");
    let layer = only_layer(&file);

    Root::new()
        .kiln()
        .args(["load", "-i", file.to_str().unwrap()])
        .assert()
        .success()
        .stdout("Loaded image: busybox:latest\n")
        .stderr(format!("{layer}: Load complete\n"));
    Root::new()
        .kiln()
        .args(["load", "-q", "-i", file.to_str().unwrap()])
        .assert()
        .success()
        .stdout(format!("{id}\n"))
        .stderr("");
}

/// Runs `kiln --root <root> <args>` on a pseudo-terminal (`script`), and returns what it drew.
fn on_terminal(root: &Root, args: &str) -> String {
    let command = format!(
        "{} --root {} {args}",
        assert_cmd::cargo::cargo_bin("kiln").display(),
        root.path().display()
    );
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env("TERM", "xterm")
        .env("NO_COLOR", "1")
        .output()
        .expect("script (util-linux) runs");
    let screen = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{screen}");
    screen
}

#[test]
fn save_and_load_draw_a_bar_per_layer_on_a_terminal() {
    let root = Root::new();
    root.import_busybox("busybox:latest");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("busybox.tar");
    let screen = on_terminal(&root, &format!("save -o {} busybox", file.display()));
    let layer = only_layer(&file);
    assert!(
        screen.contains(&format!("{layer}: Saving layer [")),
        "no bar: {screen}"
    );
    assert!(screen.contains(&format!("{layer}: Save complete")), "{screen}");

    let screen = on_terminal(&Root::new(), &format!("load -i {}", file.display()));
    assert!(
        screen.contains(&format!("{layer}: Loading layer [")),
        "no bar: {screen}"
    );
    assert!(screen.contains(&format!("{layer}: Load complete")), "{screen}");
    assert!(screen.contains("Loaded image: busybox:latest"), "{screen}");
}
