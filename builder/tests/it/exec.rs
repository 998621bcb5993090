//! The RUN executor on a real busybox rootfs, in real namespaces (needs root).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kiln_builder::exec::{
    CancelToken, ExecError, Executor, ExitStatus, Mount, MountKind, NamespaceExecutor, NetworkMode,
    ProcessSpec, SetupStep, SignalProxy, Stream, User, resolve_user,
};
use tempfile::TempDir;

/// The busybox rootfs tarball, made once per test binary run by the repo's recipe.
fn tarball() -> &'static Path {
    static TARBALL: OnceLock<(TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = TARBALL.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("busybox-rootfs.tar");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/images/busybox-rootfs.sh");
        let status = Command::new("bash").arg(script).arg(&path).status().unwrap();
        assert!(
            status.success(),
            "busybox-rootfs.sh failed (is busybox-static installed?)"
        );
        (dir, path)
    });
    path
}

/// One test's world: a fresh busybox rootfs and a state directory, both under one temporary directory
/// (so leaked mounts can be looked for by prefix).
struct World {
    dir: TempDir,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("rootfs")).unwrap();
        fs::create_dir(dir.path().join("state")).unwrap();
        let status = Command::new("tar")
            .arg("-xpf")
            .arg(tarball())
            .arg("-C")
            .arg(dir.path().join("rootfs"))
            .status()
            .unwrap();
        assert!(status.success());
        Self { dir }
    }

    fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    fn executor(&self) -> NamespaceExecutor {
        NamespaceExecutor::new().with_state_dir(self.dir.path().join("state"))
    }

    fn run(&self, spec: &ProcessSpec) -> Output {
        self.run_with(spec, &CancelToken::new(), |_, _| {})
    }

    /// Runs `spec`; `on_chunk` sees each chunk as it arrives (with the token, to cancel from there).
    fn run_with(
        &self,
        spec: &ProcessSpec,
        cancel: &CancelToken,
        mut on_chunk: impl FnMut(&str, &CancelToken),
    ) -> Output {
        let mut chunks: Vec<(Stream, String)> = Vec::new();
        let mut sink = |stream: Stream, chunk: &[u8]| {
            let text = String::from_utf8_lossy(chunk).into_owned();
            on_chunk(&text, cancel);
            chunks.push((stream, text));
        };
        let status = self.executor().run(&self.rootfs(), spec, &mut sink, cancel);
        Output { status, chunks }
    }

    /// Lines of /proc/self/mountinfo that mention this world's directory.
    fn mounts(&self) -> Vec<String> {
        let prefix = self.dir.path().to_string_lossy().into_owned();
        fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|line| line.contains(&prefix))
            .map(str::to_owned)
            .collect()
    }
}

struct Output {
    status: Result<ExitStatus, ExecError>,
    chunks: Vec<(Stream, String)>,
}

impl Output {
    fn text(&self, which: Stream) -> String {
        self.chunks
            .iter()
            .filter(|(s, _)| *s == which)
            .map(|(_, t)| t.as_str())
            .collect()
    }

    fn stdout(&self) -> String {
        self.text(Stream::Stdout)
    }

    /// Succeeded, and its stdout.
    fn ok(&self) -> String {
        match &self.status {
            Ok(status) => assert!(
                status.success(),
                "{status}; stderr: {}",
                self.text(Stream::Stderr)
            ),
            Err(err) => panic!("{err:?}"),
        }
        self.stdout()
    }
}

fn sh(script: &str) -> ProcessSpec {
    let mut spec = ProcessSpec::new(["/bin/sh", "-c", script]);
    spec.env
        .push(("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into()));
    spec
}

/// Names, modes, sizes and mtimes of everything under `dir`.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, u64, i64, i64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path).unwrap();
        out.insert(
            path.strip_prefix(dir).unwrap().to_owned(),
            (meta.mode(), meta.size(), meta.mtime(), meta.mtime_nsec()),
        );
        if meta.is_dir() {
            stack.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out
}

/// Host pids of the processes with `arg` among their arguments.
fn pids_with_arg(arg: &str) -> Vec<u32> {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let entry = e.ok()?;
            let pid = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = fs::read(entry.path().join("cmdline")).ok()?;
            cmdline
                .split(|b| *b == 0)
                .any(|a| a == arg.as_bytes())
                .then_some(pid)
        })
        .collect()
}

fn processes_with_arg(arg: &str) -> usize {
    pids_with_arg(arg).len()
}

#[test]
fn exec_streams_stdout_and_stderr_in_order() {
    let world = World::new();
    let out = world.run(&sh(
        "echo out1; sleep 0.2; echo err1 >&2; sleep 0.2; echo out2; echo err2 >&2",
    ));
    out.ok();
    let mut merged: Vec<(Stream, String)> = Vec::new();
    for (stream, text) in &out.chunks {
        match merged.last_mut() {
            Some((last, acc)) if last == stream => acc.push_str(text),
            _ => merged.push((*stream, text.clone())),
        }
    }
    assert_eq!(
        merged,
        [
            (Stream::Stdout, "out1\n".to_owned()),
            (Stream::Stderr, "err1\n".to_owned()),
            (Stream::Stdout, "out2\n".to_owned()),
            (Stream::Stderr, "err2\n".to_owned())
        ]
    );
}

#[test]
fn exec_output_is_streamed_live() {
    let world = World::new();
    let cancel = CancelToken::new();
    let start = Instant::now();
    // The sink cancels when it sees "ready": this only returns early if output arrives while the
    // process still runs.
    let out = world.run_with(&sh("echo ready; sleep 3145"), &cancel, |text, cancel| {
        if text.contains("ready") {
            cancel.cancel();
        }
    });
    assert!(
        matches!(out.status, Err(ExecError::Cancelled)),
        "{:?}",
        out.status
    );
    assert_eq!(out.stdout(), "ready\n");
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn exec_exit_code_is_reported_with_buildkits_message() {
    let world = World::new();
    let spec = sh("exit 3");
    let status = world.run(&spec).status.unwrap();
    assert_eq!(status, ExitStatus::Exited(3));
    assert_eq!(
        status.check(&spec.args).unwrap_err().to_string(),
        r#"process "/bin/sh -c exit 3" did not complete successfully: exit code: 3"#
    );
}

#[test]
fn exec_a_step_killed_by_a_signal_reports_it() {
    let world = World::new();
    let spec = sh("sleep 3152");
    let status = std::thread::scope(|scope| {
        let run = scope.spawn(|| world.run(&spec).status);
        wait_for(|| processes_with_arg("3152") == 1, "the step to start");
        for pid in pids_with_arg("3152") {
            assert!(
                Command::new("kill")
                    .arg("-KILL")
                    .arg(pid.to_string())
                    .status()
                    .unwrap()
                    .success()
            );
        }
        run.join().unwrap()
    });
    let status = status.unwrap();
    assert_eq!(status, ExitStatus::Signaled(9));
    assert_eq!(
        status.check(&spec.args).unwrap_err().to_string(),
        r#"process "/bin/sh -c sleep 3152" did not complete successfully: exit code: 137"#
    );
}

#[test]
fn exec_user_app_runs_with_its_ids_and_groups() {
    let world = World::new();
    fs::write(
        world.rootfs().join("etc/group"),
        "root:x:0:\napp:x:1000:\nstaff:x:50:app\nnogroup:x:65534:\n",
    )
    .unwrap();
    let mut spec = sh("id; echo $HOME");
    spec.user = resolve_user(&world.rootfs(), "app").unwrap();
    assert_eq!(
        spec.user,
        User {
            uid: 1000,
            gid: 1000,
            additional_gids: vec![50]
        }
    );
    assert_eq!(
        world.run(&spec).ok(),
        "uid=1000(app) gid=1000(app) groups=50(staff)\n/home/app\n"
    );
}

#[test]
fn exec_user_numeric_and_root() {
    let world = World::new();
    let mut spec = sh("id");
    spec.user = resolve_user(&world.rootfs(), "1000:1000").unwrap();
    // busybox `id` lists getgroups(): empty, as BuildKit passes no supplementary groups here.
    assert_eq!(world.run(&spec).ok(), "uid=1000(app) gid=1000(app)\n");
    spec.user = resolve_user(&world.rootfs(), "4242:4343").unwrap();
    assert_eq!(world.run(&spec).ok(), "uid=4242 gid=4343\n");
    spec.user = resolve_user(&world.rootfs(), "root").unwrap();
    assert_eq!(world.run(&spec).ok(), "uid=0(root) gid=0(root)\n");
    fs::write(world.rootfs().join("etc/group"), "root:x:0:\nwheel:x:10:root\n").unwrap();
    spec.user = resolve_user(&world.rootfs(), "root").unwrap();
    assert_eq!(
        world.run(&spec).ok(),
        "uid=0(root) gid=0(root) groups=10(wheel)\n"
    );
}

#[test]
fn exec_unknown_user_is_an_error() {
    let world = World::new();
    let err = resolve_user(&world.rootfs(), "nosuch").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unable to find user nosuch: no matching entries in passwd file"
    );
    let err = resolve_user(&world.rootfs(), "app:nosuch").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unable to find group nosuch: no matching entries in group file"
    );
}

#[test]
fn exec_env_and_cwd_are_applied_and_cwd_is_created() {
    let world = World::new();
    let mut spec = sh("pwd; echo \"$GREETING\"; env | sort");
    spec.env.push(("GREETING".into(), "hello world".into()));
    spec.cwd = "/work/../srv/app".into();
    let out = world.run(&spec).ok();
    assert_eq!(
        out,
        "/srv/app\nhello world\nGREETING=hello world\nHOME=/root\nPATH=/usr/sbin:/usr/bin:/sbin:/bin\nPWD=/srv/app\nSHLVL=1\n"
    );
    let meta = fs::metadata(world.rootfs().join("srv/app")).unwrap();
    assert_eq!(
        (meta.mode() & 0o7777, meta.uid()),
        (0o755, 0),
        "created root-owned 0755, and kept"
    );
}

#[test]
fn exec_hostname_and_pid_1() {
    let world = World::new();
    let mut spec = sh("hostname; cat /etc/hostname; echo $$");
    assert_eq!(world.run(&spec).ok(), "buildkitsandbox\nbuildkitsandbox\n1\n");
    spec.hostname = "builder-7".into();
    assert_eq!(world.run(&spec).ok(), "builder-7\nbuilder-7\n1\n");
    spec.hostname = String::new();
    assert_eq!(world.run(&spec).ok(), "buildkitsandbox\nbuildkitsandbox\n1\n");
}

#[test]
fn exec_proc_dev_and_sys_are_mounted() {
    let world = World::new();
    let script = "set -e; cat /proc/1/cmdline | tr '\\0' ' '; echo; echo x > /dev/null; head -c 4 /dev/zero | wc -c; \
                  test -c /dev/urandom; test -d /dev/pts; readlink /dev/ptmx; readlink /dev/fd; \
                  test -d /dev/shm && touch /dev/shm/x; ls /sys/class/net; \
                  if touch /sys/kernel/x 2>/dev/null; then echo sys writable; fi; \
                  grep -c . /proc/self/mountinfo >/dev/null";
    assert_eq!(
        world.run(&sh(script)).ok(),
        format!(
            "/bin/sh -c {script} \n4\npts/ptmx\n/proc/self/fd\n{}",
            host_interfaces()
        )
    );
}

fn host_interfaces() -> String {
    let mut names: Vec<String> = fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .collect();
    names.sort();
    names.iter().map(|n| n.clone() + "\n").collect()
}

#[test]
fn exec_sys_is_read_only() {
    let world = World::new();
    let out = world.run(&sh("echo 1 > /sys/kernel/uevent_helper"));
    assert_eq!(*out.status.as_ref().unwrap(), ExitStatus::Exited(1));
    assert!(
        out.text(Stream::Stderr).contains("Read-only file system"),
        "{}",
        out.text(Stream::Stderr)
    );
}

#[test]
fn exec_network_none_has_only_loopback_up() {
    let world = World::new();
    let mut spec =
        sh("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; ls /sys/class/net; ip -o link show lo");
    spec.network = NetworkMode::None;
    let out = world.run(&spec).ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["lo", "lo"], "{out}");
    assert!(lines[2].contains("UP"), "{out}");
    spec.network = NetworkMode::Sandbox;
    let shared = world.run(&spec).ok();
    assert!(
        shared.lines().count() > 3,
        "the sandbox network is the host's: {shared}"
    );
}

#[test]
fn exec_etc_files_are_readable_inside_and_leave_no_trace() {
    let world = World::new();
    let before = snapshot(&world.rootfs());
    let mut spec = sh(
        "cat /etc/hosts; grep -c nameserver /etc/resolv.conf; cat /etc/hostname; \
                       echo 1 >> /etc/hosts || echo read-only",
    );
    spec.user = resolve_user(&world.rootfs(), "app").unwrap();
    let out = world.run(&spec);
    let text = out.ok();
    assert!(
        text.starts_with("127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
        "{text}"
    );
    assert!(text.ends_with("buildkitsandbox\nread-only\n"), "{text}");
    assert_eq!(
        snapshot(&world.rootfs()),
        before,
        "the rootfs is exactly as before"
    );
    assert!(
        fs::read_dir(world.dir.path().join("state"))
            .unwrap()
            .next()
            .is_none(),
        "state dir cleaned"
    );
}

#[test]
fn exec_on_an_overlay_rootfs_the_upper_dir_holds_only_the_steps_changes() {
    let world = World::new();
    let dir = world.dir.path();
    for sub in ["upper", "work", "merged"] {
        fs::create_dir(dir.join(sub)).unwrap();
    }
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        world.rootfs().display(),
        dir.join("upper").display(),
        dir.join("work").display()
    );
    let status = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &options])
        .arg(dir.join("merged"))
        .status();
    assert!(status.unwrap().success());
    let merged = Unmount(dir.join("merged"));
    let out = world.executor().run(
        &merged.0,
        &sh("echo hi > /hello; cat /etc/hostname"),
        &mut |_: Stream, _: &[u8]| {},
        &CancelToken::new(),
    );
    assert!(out.unwrap().success());
    drop(merged);
    let upper = snapshot(&dir.join("upper"));
    let names: Vec<_> = upper.keys().map(|p| p.to_string_lossy().into_owned()).collect();
    // `etc` is copied up to hold the /etc/hosts mount points while the step runs; emptied again, with
    // the lower directory's metadata, it is for the layer differ to skip.
    assert_eq!(names, ["", "etc", "hello"]);
    let (lower_etc, upper_etc) = (
        &snapshot(&world.rootfs())[Path::new("etc")],
        &upper[Path::new("etc")],
    );
    assert_eq!(
        lower_etc, upper_etc,
        "same mode, size and mtime as the lower /etc"
    );
}

/// Unmounts a mount point on drop.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn exec_missing_mount_points_are_created_then_removed() {
    let world = World::new();
    for dir in ["etc", "proc", "sys", "dev"] {
        fs::remove_dir_all(world.rootfs().join(dir)).unwrap();
    }
    let before = snapshot(&world.rootfs());
    assert_eq!(
        world
            .run(&sh("cat /etc/hostname; test -c /dev/null && ls /proc/1/exe"))
            .ok(),
        "buildkitsandbox\n/proc/1/exe\n"
    );
    assert_eq!(
        snapshot(&world.rootfs()),
        before,
        "no /etc, /proc, /sys or /dev left behind"
    );
}

#[test]
fn exec_existing_etc_files_are_shadowed_not_changed() {
    let world = World::new();
    fs::write(world.rootfs().join("etc/hosts"), "10.9.9.9 image-host\n").unwrap();
    fs::write(world.rootfs().join("etc/resolv.conf"), "nameserver 10.9.9.10\n").unwrap();
    let before = snapshot(&world.rootfs());
    let text = world.run(&sh("cat /etc/hosts /etc/resolv.conf")).ok();
    assert!(!text.contains("10.9.9."), "the step sees kiln's files: {text}");
    assert_eq!(snapshot(&world.rootfs()), before);
    assert_eq!(
        fs::read_to_string(world.rootfs().join("etc/hosts")).unwrap(),
        "10.9.9.9 image-host\n"
    );
}

#[test]
fn exec_extra_mounts_bind_and_tmpfs() {
    let world = World::new();
    let (ro, rw) = (world.dir.path().join("ro"), world.dir.path().join("rw"));
    fs::create_dir(&ro).unwrap();
    fs::create_dir(&rw).unwrap();
    fs::write(ro.join("input"), "from host\n").unwrap();
    let before = snapshot(&world.rootfs());
    let mut spec = sh(
        "cat /mnt/ro/input; touch /mnt/ro/x 2>/dev/null || echo ro; echo made > /cache/out; \
                       echo t > /run/tmp/file && grep -c ' /run/tmp ' /proc/self/mountinfo",
    );
    spec.mounts = vec![
        Mount {
            target: "/run/tmp".into(),
            kind: MountKind::Tmpfs { size: Some(1 << 20) },
        },
        Mount {
            target: "/mnt/ro".into(),
            kind: MountKind::Bind {
                source: ro,
                readonly: true,
            },
        },
        Mount {
            target: "/cache".into(),
            kind: MountKind::Bind {
                source: rw.clone(),
                readonly: false,
            },
        },
    ];
    assert_eq!(world.run(&spec).ok(), "from host\nro\n1\n");
    assert_eq!(fs::read_to_string(rw.join("out")).unwrap(), "made\n");
    assert_eq!(
        snapshot(&world.rootfs()),
        before,
        "mount points removed, tmpfs content gone"
    );
}

#[test]
fn exec_program_is_looked_up_in_the_steps_path_inside_the_rootfs() {
    let world = World::new();
    let probe = world.rootfs().join("usr/local/bin/kiln-probe");
    fs::create_dir_all(probe.parent().unwrap()).unwrap();
    fs::write(&probe, "#!/bin/sh\necho \"probe $1 in $(pwd)\"\n").unwrap();
    fs::set_permissions(&probe, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut spec = ProcessSpec::new(["kiln-probe", "arg"]);
    spec.env.push(("PATH".into(), "/usr/local/bin:/bin".into()));
    spec.cwd = "/tmp".into();
    assert_eq!(world.run(&spec).ok(), "probe arg in /tmp\n");
}

#[test]
fn exec_missing_program_and_unreachable_cwd_are_errors() {
    let world = World::new();
    let mut spec = ProcessSpec::new(["nosuch-tool", "--version"]);
    spec.env.push(("PATH".into(), "/bin".into()));
    let err = world.run(&spec).status.unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"exec: "nosuch-tool": executable file not found in $PATH"#
    );

    let mut spec = sh("pwd");
    spec.user = resolve_user(&world.rootfs(), "app").unwrap();
    spec.cwd = "/root".into();
    match world.run(&spec).status {
        Err(ExecError::Setup {
            step: SetupStep::Chdir { cwd },
            source,
        }) => {
            assert_eq!(cwd, "/root");
            assert_eq!(source.kind(), std::io::ErrorKind::PermissionDenied);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn exec_cancel_kills_the_whole_step_promptly() {
    let world = World::new();
    let cancel = CancelToken::new();
    let start = Instant::now();
    let out = world.run_with(
        &sh("sleep 3146 & (sleep 3147 & wait) & echo ready; sleep 3148"),
        &cancel,
        |text, cancel| {
            if text.contains("ready") {
                cancel.cancel();
            }
        },
    );
    assert!(
        matches!(out.status, Err(ExecError::Cancelled)),
        "{:?}",
        out.status
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    for arg in ["3146", "3147", "3148"] {
        assert_eq!(processes_with_arg(arg), 0, "sleep {arg} survived");
    }
    // A cancelled token stops a run before it starts.
    assert!(matches!(
        world.run_with(&sh("true"), &cancel, |_, _| {}).status,
        Err(ExecError::Cancelled)
    ));
}

#[test]
fn exec_dropping_the_guard_cancels_a_step_on_another_thread() {
    let world = World::new();
    let cancel = CancelToken::new();
    let guard = cancel.cancel_on_drop();
    let start = Instant::now();
    let result = std::thread::scope(|scope| {
        let run = scope.spawn(|| world.run_with(&sh("sleep 3149"), &cancel, |_, _| {}).status);
        std::thread::sleep(Duration::from_millis(300));
        drop(guard);
        run.join().unwrap()
    });
    assert!(matches!(result, Err(ExecError::Cancelled)), "{result:?}");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(processes_with_arg("3149"), 0);
}

/// Not a test: the process `exec_killing_kiln_kills_the_step` runs and SIGKILLs mid-step.
#[test]
#[ignore = "helper process for exec_killing_kiln_kills_the_step"]
fn exec_helper_run_until_killed() {
    let Some(dir) = std::env::var_os("KILN_EXEC_HELPER_DIR") else {
        return;
    };
    let world = World {
        dir: tempfile::tempdir_in(dir).unwrap(),
    };
    fs::create_dir(world.rootfs()).unwrap();
    fs::create_dir(world.dir.path().join("state")).unwrap();
    let status = Command::new("tar")
        .arg("-xpf")
        .arg(tarball())
        .arg("-C")
        .arg(world.rootfs())
        .status()
        .unwrap();
    assert!(status.success());
    world.run_with(&sh("echo ready; sleep 3151"), &CancelToken::new(), |text, _| {
        if text.contains("ready") {
            println!("helper: step running");
        }
    });
}

/// Kills (SIGKILL) and reaps a child process when dropped, so a failing test leaves nothing behind.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn exec_killing_kiln_kills_the_step() {
    use std::io::BufRead;
    let scratch = tempfile::tempdir().unwrap();
    let mut helper = KillOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "exec::exec_helper_run_until_killed",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("KILN_EXEC_HELPER_DIR", scratch.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = std::io::BufReader::new(helper.0.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|line| line.unwrap().contains("helper: step running")),
        "the helper never ran its step"
    );
    // "ready" is printed just before `sleep` starts.
    wait_for(|| processes_with_arg("3151") == 1, "the step's sleep to start");
    drop(helper); // SIGKILL: kiln gets no chance to clean up.
    wait_for(|| processes_with_arg("3151") == 0, "the step to die with kiln");
}

fn wait_for(condition: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Makes a directory a shared mount in the host's namespace (as systemd makes `/`), so a mount made
/// under it in a namespace that forgot to go private would show up on the host; unmounts on drop.
struct SharedMount(PathBuf);

impl SharedMount {
    fn new(dir: &Path) -> Self {
        let mount = |args: &[&str]| {
            let status = Command::new("mount")
                .args(args)
                .arg(dir)
                .arg(dir)
                .status()
                .unwrap();
            assert!(status.success(), "mount {args:?}");
        };
        mount(&["--bind"]);
        let guard = Self(dir.to_owned());
        let status = Command::new("mount")
            .arg("--make-rshared")
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success());
        guard
    }
}

impl Drop for SharedMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn exec_leaks_no_mounts_on_the_host() {
    let world = World::new();
    let shared = SharedMount::new(world.dir.path());
    let before = world.mounts();
    assert_eq!(before.len(), 1, "only the test's own shared bind: {before:?}");
    assert!(before[0].contains("shared:"), "{before:?}");
    world.run(&sh("true")).ok();
    assert_eq!(world.run(&sh("exit 7")).status.unwrap(), ExitStatus::Exited(7));
    let mut failing = sh("true");
    failing.mounts.push(Mount {
        target: "/x".into(),
        kind: MountKind::Bind {
            source: "/".into(),
            readonly: true,
        },
    });
    failing.cwd = "/root".into();
    failing.user = User {
        uid: 1000,
        gid: 1000,
        additional_gids: Vec::new(),
    };
    assert!(matches!(world.run(&failing).status, Err(ExecError::Setup { .. })));
    let cancel = CancelToken::new();
    let out = world.run_with(&sh("echo ready; sleep 3150"), &cancel, |_, cancel| {
        cancel.cancel();
    });
    assert!(matches!(out.status, Err(ExecError::Cancelled)));
    assert_eq!(world.mounts(), before);
    drop(shared);
}

#[test]
fn exec_runs_concurrently_from_many_threads() {
    let worlds: Vec<World> = (0..4).map(|_| World::new()).collect();
    std::thread::scope(|scope| {
        for (i, world) in worlds.iter().enumerate() {
            scope.spawn(move || {
                for round in 0..3 {
                    assert_eq!(
                        world.run(&sh(&format!("echo {i}-{round}"))).ok(),
                        format!("{i}-{round}\n")
                    );
                }
            });
        }
    });
}

#[test]
fn exec_signal_proxy_forwards_to_pid_1_which_exits_in_its_own_time() {
    let world = World::new();
    let signals = SignalProxy::new();
    assert!(!signals.forward(libc::SIGTERM), "no process runs yet");
    // The sink forwards SIGTERM once the trap is set ("ready"); the loop ends by itself otherwise.
    let script = r#"trap "echo got-term; exit 3" TERM; echo ready; i=0; while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done"#;
    let mut stdout = String::new();
    let mut forwarded = None;
    let mut sink = |stream: Stream, chunk: &[u8]| {
        if stream == Stream::Stdout {
            stdout.push_str(&String::from_utf8_lossy(chunk));
            if stdout == "ready\n" {
                forwarded = Some(signals.forward(libc::SIGTERM));
            }
        }
    };
    let status = world
        .executor()
        .with_signal_proxy(signals.clone())
        .run(&world.rootfs(), &sh(script), &mut sink, &CancelToken::new())
        .unwrap();
    assert_eq!(
        (status, stdout.as_str(), forwarded),
        (ExitStatus::Exited(3), "ready\ngot-term\n", Some(true))
    );
    assert!(!signals.forward(libc::SIGTERM), "the run is over");
    assert!(world.mounts().is_empty());
}
