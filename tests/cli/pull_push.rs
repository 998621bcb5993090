//! `kiln pull` and `kiln push` against a real registry on 127.0.0.1: Docker's output, skopeo
//! reading what kiln pushed, kiln pulling what skopeo pushed, into fresh roots.

use serde_json::Value;

use crate::support::{Registry, Root, Run, archive_layers, skopeo};

/// A Docker config dir with no logins, so tests never read the user's.
fn no_logins() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// `skopeo inspect` of an image in the registry: (manifest digest, layer digests, manifest size).
fn inspect(name: &str) -> (String, Vec<String>, usize) {
    let image = format!("docker://{name}");
    let info: Value = serde_json::from_str(&skopeo(&["inspect", "--tls-verify=false", &image])).unwrap();
    let layers = info["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| layer.as_str().unwrap().to_owned())
        .collect();
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &image]);
    (info["Digest"].as_str().unwrap().to_owned(), layers, raw.len())
}

/// The 12-digit ID Docker shows for a blob.
fn short(digest: &str) -> &str {
    &digest["sha256:".len()..][..12]
}

fn succeeded(run: Run, what: &str) -> Run {
    assert!(run.ok, "{what} failed:\n{}", run.stderr);
    run
}

#[test]
fn pushed_images_read_back_with_skopeo_and_pull_into_a_fresh_root_with_the_same_id() {
    let registry = Registry::start();
    let config = no_logins();
    let name = registry.name("busybox");
    let source = Root::new();
    let id = source.import_busybox(&format!("{name}:latest"));

    let push = succeeded(source.run_with_config(config.path(), &["push", &name]), "push");
    let (digest, layers, size) = inspect(&format!("{name}:latest"));
    assert_eq!(layers.len(), 1, "busybox is one layer");
    let layer = short(&layers[0]);
    assert_eq!(push.stdout, format!("latest: digest: {digest} size: {size}\n"));
    assert_eq!(
        push.stderr,
        format!("Using default tag: latest\nThe push refers to repository [{name}]\n{layer}: Pushed\n")
    );
    let again = succeeded(source.run_with_config(config.path(), &["push", &name]), "push");
    assert_eq!(again.stdout, push.stdout, "the same manifest, the same digest");
    assert!(
        again.stderr.contains(&format!("{layer}: Layer already exists\n")),
        "{}",
        again.stderr
    );

    let target = Root::new();
    let pull = succeeded(target.run_with_config(config.path(), &["pull", &name]), "pull");
    assert_eq!(
        pull.stdout,
        format!("{name}:latest\n"),
        "stdout has the name alone"
    );
    assert_eq!(
        pull.stderr,
        format!(
            "Using default tag: latest\nlatest: Pulling from busybox\n{layer}: Pull complete\n\
             Digest: {digest}\nStatus: Downloaded newer image for {name}:latest\n"
        )
    );
    let listed = target.ok(&[
        "images",
        "--no-trunc",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}}",
    ]);
    assert_eq!(listed, format!("{name}:latest {id}\n"));

    let up_to_date = succeeded(
        target.run_with_config(config.path(), &["pull", &format!("{name}:latest")]),
        "second pull",
    );
    assert_eq!(
        up_to_date.stderr,
        format!(
            "latest: Pulling from busybox\nDigest: {digest}\nStatus: Image is up to date for {name}:latest\n"
        ),
        "an image already here lists no layers"
    );
}

#[test]
fn pulls_by_digest_quietly_and_of_what_skopeo_pushed() {
    let registry = Registry::start();
    let config = no_logins();
    let source = Root::new();
    let id = source.import_busybox("busybox:saved");
    let archive = tempfile::tempdir().unwrap();
    let tarball = archive.path().join("busybox.tar");
    source.ok(&["save", "-o", tarball.to_str().unwrap(), "busybox:saved"]);
    let name = registry.name("copied/busybox:v1");
    skopeo(&[
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        &format!("oci-archive:{}", tarball.display()),
        &format!("docker://{name}"),
    ]);
    let (digest, _, _) = inspect(&name);

    let target = Root::new();
    let quiet = succeeded(
        target.run_with_config(config.path(), &["pull", "-q", &name]),
        "pull -q",
    );
    assert_eq!(
        (quiet.stdout.as_str(), quiet.stderr.as_str()),
        (&*format!("{name}\n"), "")
    );
    let listed = target.ok(&[
        "images",
        "--no-trunc",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}}",
    ]);
    assert_eq!(
        listed,
        format!("{name} {id}\n"),
        "skopeo kept the config, so the ID"
    );

    let pinned = format!("{}@{digest}", registry.name("copied/busybox"));
    let by_digest = succeeded(
        target.run_with_config(config.path(), &["pull", &pinned]),
        "pull by digest",
    );
    assert_eq!(by_digest.stdout, format!("{pinned}\n"));
    assert!(
        by_digest
            .stderr
            .starts_with(&format!("{digest}: Pulling from copied/busybox\n")),
        "{}",
        by_digest.stderr
    );
    assert!(by_digest.stderr.ends_with(&format!(
        "Digest: {digest}\nStatus: Downloaded newer image for {pinned}\n"
    )));
    let rows = target.ok(&[
        "images",
        "--digests",
        "--no-trunc",
        "--format",
        "{{.Repository}} {{.Tag}} {{.Digest}} {{.ID}}",
    ]);
    assert_eq!(
        rows,
        format!("{} v1 {digest} {id}\n", registry.name("copied/busybox")),
        "one image, its tag and its digest"
    );
}

#[test]
fn unknown_tags_repositories_and_local_images_fail_as_docker_says() {
    let registry = Registry::start();
    let config = no_logins();
    let root = Root::new();
    let name = registry.name("busybox");
    root.import_busybox(&format!("{name}:1"));
    succeeded(
        root.run_with_config(config.path(), &["push", "-q", &format!("{name}:1")]),
        "push",
    );

    let tag = root.run_with_config(config.path(), &["pull", &format!("{name}:nope")]);
    assert!(!tag.ok);
    assert!(
        tag.stderr.ends_with(&format!(
            "error: manifest for {name}:nope not found: manifest unknown\n"
        )),
        "{}",
        tag.stderr
    );
    // distribution answers MANIFEST_UNKNOWN for a repository it never had (Docker Hub answers
    // 401, and that reads "pull access denied": the login tests see it).
    let repository = root.run_with_config(config.path(), &["pull", "-q", &registry.name("nothing")]);
    assert!(!repository.ok);
    assert_eq!(
        repository.stderr,
        format!(
            "error: manifest for {}:latest not found: manifest unknown\n",
            registry.name("nothing")
        )
    );
    let missing = root.run_with_config(config.path(), &["push", &registry.name("missing:1")]);
    assert!(!missing.ok);
    assert_eq!(
        missing.stderr,
        format!(
            "error: An image does not exist locally with the tag: {}\n",
            registry.name("missing")
        )
    );
    let pinned = root.run_with_config(
        config.path(),
        &["push", &format!("{name}@sha256:{}", "a".repeat(64))],
    );
    assert_eq!(pinned.stderr, "error: cannot push a digest reference\n");
    let refused = Root::new().run_with_config(config.path(), &["pull", "-q", "127.0.0.1:1/app"]);
    assert!(
        refused
            .stderr
            .contains("cannot connect to registry 127.0.0.1:1: connection refused"),
        "{}",
        refused.stderr
    );
}

#[test]
fn a_push_to_another_repository_mounts_the_blobs() {
    let registry = Registry::start();
    let config = no_logins();
    let root = Root::new();
    let first = registry.name("busybox:1");
    let second = registry.name("team/other:2");
    root.import_busybox(&first);
    let pushed = succeeded(root.run_with_config(config.path(), &["push", &first]), "push");
    root.ok(&["tag", &first, &second]);

    let mounted = succeeded(
        root.run_with_config(config.path(), &["push", &second]),
        "second push",
    );
    let (digest, layers, _) = inspect(&second);
    assert_eq!(
        mounted.stderr,
        format!(
            "The push refers to repository [{}]\n{}: Mounted from busybox\n",
            registry.name("team/other"),
            short(&layers[0])
        )
    );
    assert_eq!(mounted.stdout, pushed.stdout.replacen("1:", "2:", 1));
    assert!(mounted.stdout.contains(&digest));
}

#[test]
fn a_pull_on_a_terminal_draws_bars_that_end_as_docker_lines() {
    let registry = Registry::start();
    let config = no_logins();
    let source = Root::new();
    let name = registry.name("busybox:tty");
    source.import_busybox(&name);
    succeeded(
        source.run_with_config(config.path(), &["push", "-q", &name]),
        "push",
    );
    let (_, layers, _) = inspect(&name);

    // `script` gives kiln a pseudo-terminal for stdout and stderr, and copies what it drew.
    let target = Root::new();
    let kiln = assert_cmd::cargo::cargo_bin("kiln");
    let command = format!(
        "{} --root {} pull {name}",
        kiln.display(),
        target.path().display()
    );
    let out = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env("DOCKER_CONFIG", config.path())
        .env("TERM", "xterm")
        .output()
        .expect("script (util-linux) runs");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(
        screen.contains(&format!("{}: Pull complete", short(&layers[0]))),
        "{screen}"
    );
    assert!(
        screen.contains(&format!("Status: Downloaded newer image for {name}")),
        "{screen}"
    );
}

/// The layers of `name` in `root`'s store as `kiln save` writes them: (media type, digest), bottom
/// first.
fn saved_layers(root: &Root, name: &str) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let tarball = dir.path().join("image.tar");
    root.ok(&["save", "-o", tarball.to_str().unwrap(), name]);
    archive_layers(&tarball)
}

#[test]
fn a_built_image_is_stored_with_plain_layers_and_pushed_with_gzip_ones() {
    let registry = Registry::start();
    let config = no_logins();
    let root = Root::new();
    root.import_busybox("busybox:latest");
    let name = registry.name("built:1");
    let ctx = crate::support::context(&[("Dockerfile", "FROM busybox\nRUN echo built > /built\n")]);
    root.build_ok(ctx.path(), &["-t", &name]);
    let id = root.config(&name)["Id"].as_str().unwrap().to_owned();

    // Locally the RUN's layer is a plain tar (what `docker save` writes too).
    let local = saved_layers(&root, &name);
    assert_eq!(local.len(), 2);
    assert_eq!(local[1].0, "application/vnd.oci.image.layer.v1.tar");

    let push = succeeded(root.run_with_config(config.path(), &["push", &name]), "push");
    let raw: Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{name}"),
    ]))
    .unwrap();
    let pushed: Vec<&str> = raw["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap())
        .collect();
    assert_eq!(
        pushed, ["application/vnd.oci.image.layer.v1.tar+gzip"; 2],
        "every layer goes up compressed"
    );
    let run_layer = raw["layers"][1]["digest"].as_str().unwrap();
    assert_ne!(run_layer, local[1].1);
    assert!(
        push.stderr.contains(&format!("{}: Pushed\n", short(run_layer))),
        "{}",
        push.stderr
    );

    // Pushed again: the same compressed copy, so the same manifest, and nothing to upload.
    let again = succeeded(
        root.run_with_config(config.path(), &["push", &name]),
        "second push",
    );
    assert_eq!(again.stdout, push.stdout);
    assert!(
        again
            .stderr
            .contains(&format!("{}: Layer already exists\n", short(run_layer))),
        "{}",
        again.stderr
    );

    // Pulled into a fresh root it is the very same image, and it runs.
    let target = Root::new();
    succeeded(target.run_with_config(config.path(), &["pull", &name]), "pull");
    let listed = target.ok(&["images", "--no-trunc", "--format", "{{.ID}}"]);
    assert_eq!(listed.trim(), id);
    assert_eq!(target.ok(&["run", "--rm", &name, "cat", "/built"]), "built\n");
}
