//! `kiln build`: the image a Dockerfile makes, its config and history, and what RUN sees.

use crate::support::{Root, context};

#[test]
fn config_and_history_are_buildkits() {
    let root = Root::new();
    root.import_busybox("busybox:latest");
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM busybox\nARG V=1\nENV APP=/srv/app\nWORKDIR $APP\nCOPY hello.txt .\n\
         RUN echo \"v$V\" > version\nLABEL org.example=yes\nEXPOSE 8080/tcp\nUSER app\n\
         ENTRYPOINT [\"/bin/sh\", \"-c\"]\nCMD [\"cat /srv/app/version\"]\n",
        ),
        ("hello.txt", "hi\n"),
    ]);
    let built = root.build_ok(ctx.path(), &["-t", "app:1", "--label", "from=cli"]);
    assert!(
        built
            .stderr
            .contains("#1 [internal] load build definition from Dockerfile"),
        "{}",
        built.stderr
    );
    assert!(
        built
            .stderr
            .contains("] FROM docker.io/library/busybox:latest@sha256:"),
        "{}",
        built.stderr
    );
    assert!(
        built.stderr.contains(" [6/6] RUN echo \"v1\" > version\n")
            || built.stderr.contains("[4/4] RUN echo \"v1\" > version\n"),
        "{}",
        built.stderr
    );

    let image = root.config("app:1");
    let config = &image["Config"];
    assert_eq!(config["WorkingDir"], "/srv/app");
    assert_eq!(config["User"], "app");
    assert_eq!(config["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(config["Cmd"], serde_json::json!(["cat /srv/app/version"]));
    assert_eq!(config["Labels"]["org.example"], "yes");
    assert_eq!(config["Labels"]["from"], "cli");
    assert!(config["ExposedPorts"]["8080/tcp"].is_object());
    let env: Vec<&str> = config["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env.contains(&"APP=/srv/app"));
    assert!(
        !env.iter().any(|e| e.starts_with("V=")),
        "ARG values stay out of the config: {env:?}"
    );

    let history = root.ok(&["history", "--no-trunc", "--format", "{{.CreatedBy}}", "app:1"]);
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(
        lines[..10],
        [
            r#"CMD ["cat /srv/app/version"]"#,
            r#"ENTRYPOINT ["/bin/sh" "-c"]"#,
            "USER app",
            "EXPOSE [8080/tcp]",
            "LABEL org.example=yes",
            "RUN |1 V=1 /bin/sh -c echo \"v$V\" > version # buildkit",
            "COPY hello.txt . # buildkit",
            "WORKDIR /srv/app",
            "ENV APP=/srv/app",
            "ARG V=1",
        ]
    );
}

#[test]
fn run_sees_env_args_workdir_and_user() {
    let root = Root::new();
    root.import_busybox("busybox:latest");
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nARG GREETING=hello\nENV WHO=world\nWORKDIR /home/app/work\nUSER app\n\
         RUN echo \"$GREETING $WHO from $(pwd) as $(id -u):$(id -g)\" && touch /tmp/mine\n\
         USER root\nRUN stat -c '%u:%g %n' /home/app/work /tmp/mine\n",
    )]);
    let built = root.build_ok(ctx.path(), &[]);
    assert!(
        built
            .stderr
            .contains(" hello world from /home/app/work as 1000:1000\n"),
        "{}",
        built.stderr
    );
    // WORKDIR before USER: the directory is root's.
    assert!(built.stderr.contains(" 0:0 /home/app/work\n"), "{}", built.stderr);
    assert!(
        built.stderr.contains(" 1000:1000 /tmp/mine\n"),
        "{}",
        built.stderr
    );
}

#[test]
fn workdir_after_user_is_owned_by_the_user() {
    let root = Root::new();
    root.import_busybox("busybox:latest");
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nUSER app\nWORKDIR /data/app\nUSER root\nRUN stat -c '%u:%g %a' /data/app\n",
    )]);
    let built = root.build_ok(ctx.path(), &[]);
    assert!(built.stderr.contains(" 1000:1000 755\n"), "{}", built.stderr);
}

#[test]
fn untagged_builds_keep_an_image_id_and_quiet_prints_it() {
    let root = Root::new();
    root.import_busybox("busybox:latest");
    let ctx = context(&[("Dockerfile", "FROM busybox\nRUN echo x > /x\n")]);
    let iid = ctx.path().join("iid");
    let built = root.build_ok(ctx.path(), &["-q", "--iidfile", iid.to_str().unwrap()]);
    let id = built.stdout.trim();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    assert!(built.stderr.is_empty(), "-q prints no progress: {}", built.stderr);
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), id);
    assert_eq!(root.config(id)["Id"], id);
}

#[test]
fn scratch_images_and_local_output() {
    let root = Root::new();
    let ctx = context(&[
        (
            "Dockerfile",
            "FROM scratch\nCOPY --chmod=0755 tool /bin/tool\nCOPY <<EOF /etc/motd\nhello $NAME\nEOF\n",
        ),
        ("tool", "#!/bin/sh\n"),
    ]);
    let out = tempfile::tempdir().unwrap();
    let dest = format!("type=local,dest={}", out.path().display());
    root.build_ok(ctx.path(), &["-o", &dest]);
    let meta = std::fs::metadata(out.path().join("bin/tool")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777,
        0o755
    );
    assert_eq!(
        std::fs::read_to_string(out.path().join("etc/motd")).unwrap(),
        "hello \n"
    );
}

#[test]
fn docker_output_is_read_by_skopeo() {
    if std::process::Command::new("skopeo")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI installs skopeo");
        eprintln!("skipped: skopeo not installed");
        return;
    }
    let root = Root::new();
    root.import_busybox("busybox:latest");
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN echo built > /built\nCMD [\"cat\", \"/built\"]\n",
    )]);
    let tar = ctx.path().join("image.tar");
    let dest = format!("type=docker,dest={}", tar.display());
    root.build_ok(ctx.path(), &["-t", "out:1", "-o", &dest]);
    let out = std::process::Command::new("skopeo")
        .args([
            "inspect",
            "--config",
            &format!("docker-archive:{}", tar.display()),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["cat", "/built"]));
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
    // The store keeps the RUN's layer as a plain tar; the archive carries it gzipped, as BuildKit's.
    let layers = crate::support::archive_layers(&tar);
    let types: Vec<&str> = layers.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types, ["application/vnd.oci.image.layer.v1.tar+gzip"; 2]);
}

#[test]
fn archive_outputs_take_buildkits_compression_options() {
    let root = Root::new();
    root.import_busybox("busybox:latest");
    let ctx = context(&[("Dockerfile", "FROM busybox\nRUN echo built > /built\n")]);
    let layers_of = |options: &str| -> Vec<String> {
        let tar = ctx.path().join("image.tar");
        let dest = format!("type=oci,dest={}{options}", tar.display());
        root.build_ok(ctx.path(), &["-o", &dest]);
        crate::support::archive_layers(&tar)
            .into_iter()
            .map(|(media_type, _)| media_type)
            .collect()
    };
    let tar = "application/vnd.oci.image.layer.v1.tar";
    let gzip = "application/vnd.oci.image.layer.v1.tar+gzip";
    let zstd = "application/vnd.oci.image.layer.v1.tar+zstd";
    // The imported base is gzip; the RUN's layer is stored plain.
    assert_eq!(layers_of(""), [gzip, gzip]);
    assert_eq!(
        layers_of(",compression=zstd"),
        [gzip, zstd],
        "the base stays gzip"
    );
    assert_eq!(
        layers_of(",compression=zstd,force-compression=true"),
        [zstd, zstd]
    );
    assert_eq!(layers_of(",compression=zstd,compression-level=19"), [gzip, zstd]);
    assert_eq!(layers_of(",compression=uncompressed"), [gzip, tar]);
    assert_eq!(
        layers_of(",compression=uncompressed,force-compression=true"),
        [tar, tar]
    );

    // What is read back: skopeo copies the zstd archive, checking every digest.
    let tar_path = ctx.path().join("image.tar");
    let dest = format!(
        "type=oci,dest={},compression=zstd,force-compression=true",
        tar_path.display()
    );
    root.build_ok(ctx.path(), &["-o", &dest]);
    let dir = tempfile::tempdir().unwrap();
    let copied = std::process::Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(format!("oci-archive:{}", tar_path.display()))
        .arg(format!("dir:{}", dir.path().join("out").display()))
        .output();
    if let Ok(out) = copied {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    } else {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI installs skopeo");
    }

    for (option, message) in [
        (
            ",compression=estargz",
            "unsupported compression type \"estargz\" (uncompressed, gzip and zstd are)",
        ),
        (
            ",compression=gzip,compression-level=12",
            "compression-level 12 is out of gzip's range 0-9",
        ),
        (
            ",force-compression=yes",
            "invalid force-compression \"yes\": true or false",
        ),
    ] {
        let dest = format!("type=oci,dest={}{option}", tar_path.display());
        let built = root.build(ctx.path(), &["-o", &dest]);
        assert!(!built.success);
        assert!(built.stderr.contains(message), "{option}: {}", built.stderr);
    }
    let built = root.build(ctx.path(), &["-o", "type=image,compression=zstd"]);
    assert!(!built.success);
    assert!(
        built
            .stderr
            .contains("compression options apply to type=oci and type=docker outputs only"),
        "{}",
        built.stderr
    );
}
