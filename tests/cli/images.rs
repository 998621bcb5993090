//! The image commands on a store holding an imported busybox: import, images, tag, rmi, inspect,
//! history, image prune, system df.

use predicates::prelude::*;
use serde_json::Value;

use crate::support::{Root, busybox_rootfs};

fn short(id: &str) -> &str {
    &id["sha256:".len().."sha256:".len() + 12]
}

#[test]
fn import_then_images_lists_the_image() {
    let root = Root::new();
    let id = root.import_busybox("busybox:latest");
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    let table = root.ok(&["images"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    );
    assert!(
        lines[0].starts_with("REPOSITORY   TAG       IMAGE ID       CREATED"),
        "{table}"
    );
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(&cells[..3], ["busybox", "latest", short(&id)]);
    assert!(lines[1].contains("ago"), "{table}");
    assert!(cells.last().unwrap().ends_with("MB") || cells.last().unwrap().ends_with("kB"));

    assert_eq!(root.ok(&["images", "-q"]), format!("{}\n", short(&id)));
    assert_eq!(root.ok(&["images", "-q", "--no-trunc"]), format!("{id}\n"));
    assert_eq!(
        root.ok(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}\\t{{.ID}}"]),
        format!("busybox:latest\t{}\n", short(&id))
    );
    let table = root.ok(&["images", "--format", "table {{.Repository}}\\t{{.Tag}}"]);
    assert_eq!(table, "REPOSITORY   TAG\nbusybox      latest\n");
}

#[test]
fn images_format_json_and_digests() {
    let root = Root::new();
    let id = root.import_busybox("busybox:latest");
    let line = root.ok(&["images", "--format", "json"]);
    let row: Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(row["Repository"], "busybox");
    assert_eq!(row["Tag"], "latest");
    assert_eq!(row["ID"], short(&id));
    let digest = row["Digest"].as_str().unwrap().to_owned();
    assert!(digest.starts_with("sha256:"));
    assert_eq!(root.ok(&["images", "--format", "{{json .}}"]), line);

    let inspect: Value = serde_json::from_str(&root.ok(&["inspect", "busybox"])).unwrap();
    assert_eq!(inspect[0]["RepoDigests"][0], format!("busybox@{digest}"));
    let table = root.ok(&["images", "--digests"]);
    assert!(table.lines().next().unwrap().contains("DIGEST"), "{table}");
    assert!(table.contains(&digest), "{table}");
}

#[test]
fn images_filters_by_reference_dangling_and_label() {
    let root = Root::new();
    let id = root.import_busybox("busybox:latest");
    root.ok(&["tag", "busybox", "example.com/team/app:v1"]);
    let rootfs = busybox_rootfs();
    let labelled = root.ok(&["import", "-c", "LABEL tier=web", rootfs.to_str().unwrap()]);
    let labelled = labelled.trim();
    let names = |args: &[&str]| {
        let mut all = vec!["images", "--format", "{{.Repository}}:{{.Tag}}"];
        all.extend_from_slice(args);
        let mut lines: Vec<String> = root.ok(&all).lines().map(str::to_owned).collect();
        lines.sort();
        lines
    };
    assert_eq!(
        names(&[]),
        ["<none>:<none>", "busybox:latest", "example.com/team/app:v1"]
    );
    assert_eq!(names(&["--filter", "reference=busybox"]), ["busybox:latest"]);
    assert_eq!(
        names(&["--filter", "reference=example.com/*/*:v1"]),
        ["example.com/team/app:v1"]
    );
    assert_eq!(names(&["busybox:latest"]), ["busybox:latest"]);
    assert!(names(&["busybox:nope"]).is_empty());
    assert_eq!(names(&["--filter", "dangling=true"]), ["<none>:<none>"]);
    assert_eq!(names(&["-f", "dangling=false"]).len(), 2);
    assert_eq!(names(&["--filter", "label=tier=web"]), ["<none>:<none>"]);
    assert!(names(&["--filter", "label=tier=db"]).is_empty());
    let ids = root.ok(&["images", "-q", "--no-trunc", "--filter", "dangling=true"]);
    assert_eq!(ids.trim(), labelled);
    assert_ne!(labelled, id);
    root.kiln()
        .args(["images", "--filter", "colour=blue"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("invalid filter 'colour'"));
}

#[test]
fn tag_adds_names_and_rmi_untags_before_it_deletes() {
    let root = Root::new();
    let id = root.import_busybox("busybox:latest");
    root.ok(&["tag", "busybox:latest", "mirror/busybox:1"]);
    root.ok(&["tag", short(&id), "busybox:stable"]);
    assert_eq!(root.ok(&["images", "-q"]).lines().count(), 3);

    assert_eq!(root.ok(&["rmi", "busybox:stable"]), "Untagged: busybox:stable\n");
    // By ID, names in two repositories take --force.
    root.kiln()
        .args(["rmi", short(&id)])
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "must be forced) - image is referenced in multiple repositories",
        ));
    assert_eq!(
        root.ok(&["rmi", "-f", short(&id)]),
        format!("Untagged: busybox:latest\nUntagged: mirror/busybox:1\nDeleted: {id}\n")
    );
    assert_eq!(root.ok(&["images", "-q"]), "");
    // The blobs went with the image.
    assert_eq!(root.blobs(), Vec::<String>::new());
}

#[test]
fn rmi_of_the_last_name_deletes_and_reports_missing_images() {
    let root = Root::new();
    let id = root.import_busybox("busybox:latest");
    root.kiln()
        .args(["rmi", "nothere", "busybox"])
        .assert()
        .failure()
        .stdout(format!("Untagged: busybox:latest\nDeleted: {id}\n"))
        .stderr(predicate::str::contains("error: No such image: nothere:latest"));
    root.kiln()
        .args(["tag", "busybox", "x"])
        .assert()
        .failure()
        .stderr("error: No such image: busybox:latest\n");
    root.kiln()
        .args(["inspect", "busybox"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("No such image: busybox"));
}

#[test]
fn inspect_shows_config_from_changes_and_the_layers() {
    let root = Root::new();
    let rootfs = busybox_rootfs();
    let id = root.ok(&[
        "import",
        "--change",
        "ENV GREETING=\"hello world\" OTHER=$GREETING!",
        "-c",
        "ENV THIRD=${GREETING}!",
        "-c",
        "ENTRYPOINT [\"/bin/sh\", \"-c\"]",
        "-c",
        "CMD echo $GREETING",
        "-c",
        "WORKDIR /srv",
        "-c",
        "USER app",
        "-c",
        "EXPOSE 8080 53/udp",
        "-c",
        "LABEL org.example.team=images",
        "-c",
        "VOLUME /data",
        "-c",
        "STOPSIGNAL SIGINT",
        "-m",
        "a commit message",
        "--platform",
        "linux/arm64/v8",
        rootfs.to_str().unwrap(),
        "app:1",
    ]);
    let inspect: Value = serde_json::from_str(&root.ok(&["image", "inspect", "app:1"])).unwrap();
    let image = &inspect[0];
    assert_eq!(image["Id"], id.trim());
    assert_eq!(image["RepoTags"], serde_json::json!(["app:1"]));
    assert_eq!(image["Comment"], "a commit message");
    assert_eq!(
        (image["Os"].as_str(), image["Architecture"].as_str()),
        (Some("linux"), Some("arm64"))
    );
    assert_eq!(image["Variant"], "v8");
    let config = &image["Config"];
    // As in a Dockerfile, one ENV sees the variables set before it, not its own.
    assert_eq!(
        config["Env"],
        serde_json::json!(["GREETING=hello world", "OTHER=!", "THIRD=hello world!"])
    );
    assert_eq!(config["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    // CMD after ENTRYPOINT is kept; its shell form runs through /bin/sh -c.
    assert_eq!(
        config["Cmd"],
        serde_json::json!(["/bin/sh", "-c", "echo $GREETING"])
    );
    assert_eq!(config["WorkingDir"], "/srv");
    assert_eq!(config["User"], "app");
    assert_eq!(
        config["ExposedPorts"],
        serde_json::json!({"53/udp": {}, "8080/tcp": {}})
    );
    assert_eq!(config["Labels"]["org.example.team"], "images");
    assert_eq!(config["Volumes"], serde_json::json!({"/data": {}}));
    assert_eq!(config["StopSignal"], "SIGINT");
    let layers = image["RootFS"]["Layers"].as_array().unwrap();
    assert_eq!(image["RootFS"]["Type"], "layers");
    assert_eq!(layers.len(), 1);
    // The layer's diff_id is the digest of the tarball as imported.
    let tar = std::fs::read(&rootfs).unwrap();
    let diff_id = format!("sha256:{}", sha256_hex(&tar));
    assert_eq!(layers[0], diff_id.as_str());

    assert_eq!(root.ok(&["inspect", "--format", "{{.Id}}", "app:1"]), id);
    assert_eq!(
        root.ok(&["inspect", "-f", "{{json .Config.Cmd}}", "app:1"]),
        "[\"/bin/sh\",\"-c\",\"echo $GREETING\"]\n"
    );
    assert_eq!(
        root.ok(&[
            "inspect",
            "-f",
            "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}} {{end}}",
            "app:1"
        ]),
        "org.example.team=images \n"
    );
}

#[test]
fn import_refuses_bad_changes_and_non_tar_input() {
    let root = Root::new();
    let rootfs = busybox_rootfs();
    root.kiln()
        .args(["import", "-c", "RUN echo hi", rootfs.to_str().unwrap()])
        .assert()
        .failure()
        .stderr(predicate::str::contains("RUN is not a valid change command"));
    let junk = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(junk.path(), vec![b'x'; 4096]).unwrap();
    root.kiln().arg("import").arg(junk.path()).assert().failure();
    assert_eq!(root.ok(&["images", "-q"]), "");
    // gzip input from standard input.
    let gz = std::process::Command::new("gzip")
        .arg("-c")
        .arg(&rootfs)
        .output()
        .unwrap()
        .stdout;
    let id = root
        .kiln()
        .args(["import", "-", "fromstdin"])
        .write_stdin(gz)
        .output()
        .unwrap();
    assert!(id.status.success(), "{}", String::from_utf8_lossy(&id.stderr));
    let history = root.ok(&["history", "--format", "{{.Comment}}", "fromstdin"]);
    assert_eq!(history, "Imported from -\n");
}

#[test]
fn history_lists_the_import_step() {
    let root = Root::new();
    let id = root.import_busybox("busybox:latest");
    let table = root.ok(&["history", "busybox"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("IMAGE          CREATED"), "{table}");
    assert!(
        lines[0].contains("CREATED BY") && lines[0].ends_with("COMMENT"),
        "{table}"
    );
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[1].starts_with(short(&id)), "{table}");
    let rootfs = busybox_rootfs();
    assert!(
        lines[1].ends_with(&format!("Imported from {}", rootfs.display())),
        "{table}"
    );
    assert_eq!(
        root.ok(&["history", "-q", "busybox"]),
        format!("{}\n", short(&id))
    );
    let raw = root.ok(&[
        "history",
        "--human=false",
        "--format",
        "{{.Size}} {{.CreatedSince}}",
        "busybox",
    ]);
    let (size, created) = raw.trim().split_once(' ').unwrap();
    let layer_size: u64 = size.parse().unwrap();
    let inspect: Value = serde_json::from_str(&root.ok(&["inspect", "busybox"])).unwrap();
    assert!(layer_size > 0 && layer_size < inspect[0]["Size"].as_u64().unwrap());
    assert!(created.ends_with('Z') && created.len() == 20, "{created}");
}

#[test]
fn image_prune_removes_dangling_images_and_with_all_every_image() {
    let root = Root::new();
    let named = root.import_busybox("busybox:latest");
    let rootfs = busybox_rootfs();
    let dangling = root.ok(&["import", "-c", "LABEL dangling=yes", rootfs.to_str().unwrap()]);
    let dangling = dangling.trim();
    let out = root.ok(&["image", "prune", "-f"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "Deleted Images:");
    assert_eq!(lines[1], format!("deleted: {dangling}"));
    assert_eq!(lines[2], "");
    // Only the config differed: the shared layer stays.
    assert!(
        lines[3].starts_with("Total reclaimed space: ") && lines[3].ends_with('B'),
        "{out}"
    );
    assert_eq!(root.ok(&["images", "-q", "--no-trunc"]), format!("{named}\n"));
    assert_eq!(root.ok(&["image", "prune", "-f"]), "Total reclaimed space: 0B\n");

    // Declining the prompt removes nothing.
    root.kiln()
        .args(["image", "prune", "-a"])
        .write_stdin("n\n")
        .assert()
        .success()
        .stdout("")
        .stderr(predicate::str::contains("WARNING! This will remove all images"));
    let out = root.ok(&["image", "prune", "-a", "-f", "--filter", "until=1h"]);
    assert_eq!(
        out, "Total reclaimed space: 0B\n",
        "the image is younger than an hour"
    );
    let out = root.ok(&["image", "prune", "-a", "-f"]);
    assert!(
        out.starts_with(&format!(
            "Deleted Images:\nuntagged: busybox:latest\ndeleted: {named}\n\nTotal reclaimed space: "
        )),
        "{out}"
    );
    assert!(out.trim_end().ends_with("MB"), "{out}");
    assert_eq!(root.blobs(), Vec::<String>::new());
}

#[test]
fn system_df_counts_shared_layers_once() {
    let root = Root::new();
    let empty = root.ok(&["system", "df"]);
    assert_eq!(
        empty,
        "TYPE          TOTAL     ACTIVE    SIZE      RECLAIMABLE\nImages        0         0         0B        0B\nBuild Cache   0         0         0B        0B\n"
    );
    root.import_busybox("busybox:latest");
    let rootfs = busybox_rootfs();
    root.ok(&["import", "-c", "LABEL x=y", rootfs.to_str().unwrap(), "other:1"]);
    let images = root.ok(&[
        "system",
        "df",
        "--format",
        "{{.Type}} {{.TotalCount}} {{.Size}} {{.Reclaimable}}",
    ]);
    let first = images.lines().next().unwrap();
    let (head, reclaimable) = first.split_once(" (").unwrap_or((first, ""));
    assert!(head.starts_with("Images 2 "), "{images}");
    assert_eq!(reclaimable, "100%)");
    let size = head.split_whitespace().nth(2).unwrap();
    // One layer of about a megabyte, however many images share it.
    assert!(size.starts_with("1.0") && size.ends_with("MB"), "{images}");
}

fn sha256_hex(bytes: &[u8]) -> String {
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(bytes)?;
            child.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

#[test]
fn images_filters_by_creation_relative_to_another_image() {
    let root = Root::new();
    root.import_busybox("old:1");
    // Creation times are compared to the second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let rootfs = busybox_rootfs();
    root.ok(&["import", "-c", "LABEL v=2", rootfs.to_str().unwrap(), "new:2"]);
    let names = |filter: &str| root.ok(&["images", "--filter", filter, "--format", "{{.Repository}}"]);
    assert_eq!(names("since=old:1"), "new\n");
    assert_eq!(names("before=new:2"), "old\n");
    assert_eq!(
        root.ok(&["images", "--format", "{{.Repository}}"]),
        "new\nold\n",
        "newest first"
    );
    root.kiln()
        .args(["images", "--filter", "since=missing"])
        .assert()
        .failure()
        .stderr("error: No such image: missing:latest\n");
}
