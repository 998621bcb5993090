//! `kiln build --secret` and `--ssh`: `RUN --mount=type=secret|ssh` as BuildKit gives them to a
//! step, and what never reaches the image.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::support::{Built, Root, context};

/// The value the tests hide; it must appear nowhere but inside the steps.
const VALUE: &str = "kiln-test-secret-7f3a9c";

fn setup(dockerfile: &str) -> (Root, tempfile::TempDir) {
    let root = Root::new();
    root.import_busybox("busybox:latest");
    let ctx = context(&[("Dockerfile", dockerfile)]);
    (root, ctx)
}

/// A file holding `content`, in a temp dir kept alive with it.
fn secret_file(content: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.txt");
    std::fs::write(&path, content).unwrap();
    (dir, path)
}

/// `kiln build --progress=plain ARGS... CONTEXT` with extra environment variables.
fn build(root: &Root, ctx: &Path, args: &[&str], env: &[(&str, &str)]) -> Built {
    let mut cmd = root.kiln();
    cmd.arg("build").arg("--progress=plain").args(args).arg(ctx);
    cmd.env_remove("SSH_AUTH_SOCK");
    for (name, value) in env {
        cmd.env(name, value);
    }
    let out = cmd.output().unwrap();
    Built {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn build_ok(root: &Root, ctx: &Path, args: &[&str], env: &[(&str, &str)]) -> Built {
    let built = build(root, ctx, args, env);
    assert!(built.success, "kiln build failed:\n{}", built.stderr);
    assert!(!built.stderr.contains(VALUE), "the progress shows the secret");
    built
}

fn local_dest(out: &tempfile::TempDir) -> String {
    format!("type=local,dest={}", out.path().display())
}

fn read(dir: &Path, path: &str) -> String {
    std::fs::read_to_string(dir.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every path under `dir` (relative), and whether any file's bytes contain `needle`.
fn walk(dir: &Path, needle: &[u8]) -> (Vec<String>, bool) {
    let mut paths = Vec::new();
    let mut found = false;
    let mut pending = vec![dir.to_owned()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            paths.push(path.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            if meta.is_dir() {
                pending.push(path);
            } else if meta.is_file() {
                found |= contains(&std::fs::read(&path).unwrap(), needle);
            }
        }
    }
    (paths, found)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The tar bytes of `path` if it is a layer: a gzip stream (a pulled or imported layer) or a plain
/// tar (the layers a build stores), else `None`.
fn layer_tar(path: &Path) -> Option<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let out = Command::new("gzip").arg("-dc").arg(path).output().unwrap();
        assert!(out.status.success(), "gzip -dc {}", path.display());
        return Some(out.stdout);
    }
    (bytes.len() >= 512 && &bytes[257..262] == b"ustar").then_some(bytes)
}

/// The entries of the layer tarball `blob` (plain or gzip: GNU tar tells), via `tar -t`.
fn layer_entries(blob: &Path) -> Vec<String> {
    let out = Command::new("tar").arg("-tf").arg(blob).output().unwrap();
    assert!(out.status.success(), "tar -tf {}", blob.display());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_secret_file_is_at_run_secrets_id_read_only_root_0400() {
    let (root, ctx) = setup(
        "FROM busybox\n\
         RUN --mount=type=secret,id=token cat /run/secrets/token > /seen \
         && stat -c '%a %u %g' /run/secrets/token > /meta \
         && if echo x 2>/dev/null > /run/secrets/token; then echo writable; fi > /writable\n",
    );
    let (_dir, file) = secret_file("visible to the step");
    let src = format!("id=token,src={}", file.display());
    let out = tempfile::tempdir().unwrap();
    build_ok(
        &root,
        ctx.path(),
        &["--secret", &src, "-o", &local_dest(&out)],
        &[],
    );
    assert_eq!(read(out.path(), "seen"), "visible to the step");
    assert_eq!(read(out.path(), "meta"), "400 0 0\n");
    assert_eq!(read(out.path(), "writable"), "", "the secret is read-only");
    assert!(!out.path().join("run").exists(), "the mount point stub is gone");
}

#[test]
fn target_uid_gid_and_mode_serve_a_non_root_user() {
    let (root, ctx) = setup(
        "FROM busybox\nUSER app\nWORKDIR /home/app\n\
         RUN --mount=type=secret,id=token,target=/home/app/.token,uid=1000,gid=1000,mode=0440 \
         cat /home/app/.token > /tmp/seen && stat -c '%a %u %g' /home/app/.token > /tmp/meta\n\
         RUN --mount=type=secret,id=token,target=relative.txt,uid=1000 cat /home/app/relative.txt > /tmp/rel\n",
    );
    let (_dir, file) = secret_file("for app");
    let src = format!("id=token,src={}", file.display());
    let out = tempfile::tempdir().unwrap();
    build_ok(
        &root,
        ctx.path(),
        &["--secret", &src, "-o", &local_dest(&out)],
        &[],
    );
    assert_eq!(read(out.path(), "tmp/seen"), "for app");
    assert_eq!(read(out.path(), "tmp/meta"), "440 1000 1000\n");
    assert_eq!(read(out.path(), "tmp/rel"), "for app");
    assert!(!out.path().join("home/app/.token").exists());
    assert!(!out.path().join("home/app/relative.txt").exists());
}

#[test]
fn env_exposes_the_secret_as_a_variable_and_a_file_only_with_a_target() {
    let (root, ctx) = setup(
        "FROM busybox\n\
         RUN --mount=type=secret,id=token,env=TOKEN \
         echo \"${#TOKEN}\" > /len && if [ -e /run/secrets/token ]; then echo file; fi > /file\n\
         RUN --mount=type=secret,id=token,env=TOKEN,target=/t \
         test \"$(cat /t)\" = \"$TOKEN\" && echo both > /both\n\
         RUN echo \"${TOKEN:-unset}\" > /after\n",
    );
    let out = tempfile::tempdir().unwrap();
    // `env=` on the command line: the secret's value is kiln's variable.
    build_ok(
        &root,
        ctx.path(),
        &[
            "--secret",
            "id=token,env=KILN_TEST_TOKEN",
            "-o",
            &local_dest(&out),
        ],
        &[("KILN_TEST_TOKEN", VALUE)],
    );
    assert_eq!(read(out.path(), "len"), format!("{}\n", VALUE.len()));
    assert_eq!(read(out.path(), "file"), "", "env= without target makes no file");
    assert_eq!(read(out.path(), "both"), "both\n");
    assert_eq!(
        read(out.path(), "after"),
        "unset\n",
        "only the step with the mount sees it"
    );
}

#[test]
fn id_alone_reads_the_variable_if_set_else_the_file() {
    let (root, ctx) = setup(
        "FROM busybox\n\
         RUN --mount=type=secret,id=KILN_TEST_ID cat /run/secrets/KILN_TEST_ID > /from-env\n\
         RUN --mount=type=secret,id=token.txt cat /run/secrets/token.txt > /from-file\n",
    );
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(cwd.path().join("token.txt"), "from a file").unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut cmd = root.kiln();
    cmd.current_dir(cwd.path())
        .env("KILN_TEST_ID", "from a variable")
        .args(["build", "--progress=plain", "--secret", "id=KILN_TEST_ID"])
        .args(["--secret", "id=token.txt", "-o", &local_dest(&out)])
        .arg(ctx.path());
    let result = cmd.output().unwrap();
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert_eq!(read(out.path(), "from-env"), "from a variable");
    assert_eq!(read(out.path(), "from-file"), "from a file");
}

#[test]
fn a_required_secret_that_is_missing_fails_the_step() {
    let (root, ctx) = setup("FROM busybox\nRUN --mount=type=secret,id=nope,required=true true\n");
    let built = build(&root, ctx.path(), &[], &[]);
    assert!(!built.success);
    assert!(
        built.stderr.contains("failed to solve: secret nope: not found"),
        "{}",
        built.stderr
    );
    assert!(root.leftover_mounts().is_empty());
}

#[test]
fn an_optional_secret_that_is_missing_is_left_out() {
    let (root, ctx) = setup(
        "FROM busybox\nRUN --mount=type=secret,id=nope --mount=type=secret,id=nope2,env=NOPE \
         test ! -e /run/secrets/nope && test -z \"${NOPE+set}\" && echo ran > /ran\n",
    );
    let out = tempfile::tempdir().unwrap();
    build_ok(&root, ctx.path(), &["-o", &local_dest(&out)], &[]);
    assert_eq!(read(out.path(), "ran"), "ran\n");
    assert!(!out.path().join("run").exists());
}

#[test]
fn the_secret_reaches_neither_the_image_nor_its_layers() {
    let (root, ctx) = setup(
        "FROM busybox\n\
         RUN --mount=type=secret,id=token --mount=type=secret,id=env,env=TOKEN \
         cat /run/secrets/token > /dev/null && echo \"${#TOKEN}\" > /len\n",
    );
    let (_dir, file) = secret_file(VALUE);
    let src = format!("id=token,src={}", file.display());
    let out = tempfile::tempdir().unwrap();
    let args = [
        "--secret",
        &src,
        "--secret",
        "id=env,env=KILN_TEST_TOKEN",
        "-t",
        "secret:1",
        "-o",
        "type=image",
        "-o",
        &local_dest(&out),
    ];
    build_ok(&root, ctx.path(), &args, &[("KILN_TEST_TOKEN", VALUE)]);
    assert_eq!(read(out.path(), "len"), format!("{}\n", VALUE.len()));
    let (paths, found) = walk(out.path(), VALUE.as_bytes());
    assert!(!found, "the exported filesystem holds the secret");
    assert!(!paths.iter().any(|p| p.starts_with("run")), "{paths:?}");

    // `kiln save`: every blob, gzip layers decompressed.
    let saved = tempfile::tempdir().unwrap();
    let tarball = saved.path().join("image.tar");
    root.ok(&["save", "-o", tarball.to_str().unwrap(), "secret:1"]);
    let unpacked = saved.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    let status = Command::new("tar")
        .arg("-xf")
        .arg(&tarball)
        .arg("-C")
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(status.success());
    let (files, found) = walk(&unpacked, VALUE.as_bytes());
    assert!(!found, "the saved image holds the secret");
    let layers: Vec<PathBuf> = files
        .iter()
        .map(|f| unpacked.join(f))
        .filter(|p| p.is_file() && layer_tar(p).is_some())
        .collect();
    assert_eq!(layers.len(), 2, "busybox and the RUN: {files:?}");
    for layer in &layers {
        assert!(!contains(&layer_tar(layer).unwrap(), VALUE.as_bytes()));
    }
    // The RUN's layer is the smaller one: /len and nothing of the mount points.
    let run_layer = layers
        .iter()
        .min_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let entries = layer_entries(run_layer);
    assert!(
        entries
            .iter()
            .all(|e| !e.contains("run") && !e.contains("secret")),
        "{entries:?}"
    );
    assert!(
        entries.iter().any(|e| e.trim_start_matches("./") == "len"),
        "{entries:?}"
    );
}

#[test]
fn a_changed_secret_does_not_bust_the_cache() {
    let (root, ctx) = setup("FROM busybox\nRUN --mount=type=secret,id=token wc -c /run/secrets/token > /n\n");
    let (dir, file) = secret_file("first");
    let src = format!("id=token,src={}", file.display());
    let first = build_ok(&root, ctx.path(), &["--secret", &src], &[]);
    assert_eq!(
        first.cached(),
        1,
        "FROM, which the import unpacked: {}",
        first.stderr
    );
    std::fs::write(&file, "a different value").unwrap();
    let second = build_ok(&root, ctx.path(), &["--secret", &src], &[]);
    assert_eq!(second.cached(), 2, "FROM and the RUN: {}", second.stderr);
    drop(dir);
}

#[test]
fn secret_flag_errors_name_what_is_wrong() {
    let (root, ctx) = setup("FROM busybox\n");
    let cases = [
        (
            "id=x,src=/nonexistent/kiln-secret",
            "invalid --secret id=x,src=/nonexistent/kiln-secret: failed to stat /nonexistent/kiln-secret: No such file or directory",
        ),
        (
            "src=/etc/hostname",
            "invalid --secret src=/etc/hostname: secret missing ID",
        ),
        (
            "id=x,type=socket",
            "invalid --secret id=x,type=socket: unsupported secret type \"socket\"",
        ),
        (
            "id=x,color=red",
            "invalid --secret id=x,color=red: unexpected key 'color' in 'color=red'",
        ),
        (
            "id",
            "invalid --secret id: invalid field 'id' must be a key=value pair",
        ),
    ];
    for (spec, message) in cases {
        let built = build(&root, ctx.path(), &["--secret", spec], &[]);
        assert!(!built.success, "{spec}");
        assert!(built.stderr.contains(message), "{spec}: {}", built.stderr);
    }
}

/// A real `ssh-agent` (openssh-client) in the foreground on a socket in a temp dir, killed on drop;
/// a plain listening socket when ssh-agent is not installed.
struct Agent {
    child: Option<Child>,
    _listener: Option<std::os::unix::net::UnixListener>,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Agent {
    fn start() -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "ssh-agent missing (openssh-client in .ci/apt-packages)"
            );
            let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
            return Agent {
                child: None,
                _listener: Some(listener),
                socket,
                _dir: dir,
            };
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !socket.exists() {
            assert!(std::time::Instant::now() < deadline, "ssh-agent did not listen");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Agent {
            child: Some(child),
            _listener: None,
            socket,
            _dir: dir,
        }
    }

    fn socket(&self) -> &str {
        self.socket.to_str().unwrap()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn ssh_gives_the_step_the_agent_socket_and_ssh_auth_sock() {
    let (root, ctx) = setup(
        "FROM busybox\n\
         RUN --mount=type=ssh test -S \"$SSH_AUTH_SOCK\" \
         && echo \"$SSH_AUTH_SOCK $(stat -c '%a %u' \"$SSH_AUTH_SOCK\")\" > /default\n\
         RUN --mount=type=ssh,id=work,target=/tmp/agent.sock,uid=1000,mode=0660 \
         test -S /tmp/agent.sock && echo \"$SSH_AUTH_SOCK $(stat -c '%a %u' /tmp/agent.sock)\" > /named\n\
         RUN --mount=type=ssh,id=absent echo \"$SSH_AUTH_SOCK\" > /absent && test ! -e \"$SSH_AUTH_SOCK\"\n",
    );
    let agent = Agent::start();
    let out = tempfile::tempdir().unwrap();
    let work = format!("work={}", agent.socket());
    build_ok(
        &root,
        ctx.path(),
        &["--ssh", "default", "--ssh", &work, "-o", &local_dest(&out)],
        &[("SSH_AUTH_SOCK", agent.socket())],
    );
    assert_eq!(read(out.path(), "default"), "/run/buildkit/ssh_agent.0 600 0\n");
    assert_eq!(read(out.path(), "named"), "/tmp/agent.sock 660 1000\n");
    assert_eq!(read(out.path(), "absent"), "/run/buildkit/ssh_agent.0\n");
    assert!(!out.path().join("run").exists(), "the mount point stub is gone");
    assert!(!out.path().join("tmp/agent.sock").exists());
    assert!(agent.socket.exists(), "the agent's own socket is untouched");
}

#[test]
fn ssh_errors_a_required_agent_and_bad_flags() {
    let (root, ctx) = setup("FROM busybox\nRUN --mount=type=ssh,required=true true\n");
    let built = build(&root, ctx.path(), &[], &[]);
    assert!(!built.success);
    assert!(
        built
            .stderr
            .contains(r#"failed to solve: no SSH key "default" forwarded from the client"#),
        "{}",
        built.stderr
    );
    let (_dir, key) = secret_file("-----BEGIN OPENSSH PRIVATE KEY-----\n");
    let key_flag = format!("default={}", key.display());
    let cases = [
        (
            "default",
            "invalid --ssh default: invalid empty ssh agent socket: make sure SSH_AUTH_SOCK is set"
                .to_owned(),
        ),
        (
            "default=/nonexistent/agent.sock",
            "failed to stat /nonexistent/agent.sock: No such file or directory".to_owned(),
        ),
        (
            key_flag.as_str(),
            format!(
                "{} is not an agent socket: SSH key files are not supported",
                key.display()
            ),
        ),
    ];
    for (spec, message) in cases {
        let built = build(&root, ctx.path(), &["--ssh", spec], &[]);
        assert!(!built.success, "{spec}");
        assert!(built.stderr.contains(&message), "{spec}: {}", built.stderr);
    }
}
