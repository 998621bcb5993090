//! `RUN --mount=type=secret` and `RUN --mount=type=ssh`: what a build was given ([`Secrets`]) and
//! what one step gets of it ([`StepSecrets`]), with BuildKit's semantics.
//!
//! A **secret** is read when a step mounts it, never earlier, and never goes into a cache key (the
//! key holds the mount's options, not the value: a changed secret does not invalidate the cache, as
//! in BuildKit). Its id is the mount's `id`, else its `source`, else the base name of its `target`.
//! As a file it is written to a private directory outside the rootfs (0700, on tmpfs when `/dev/shm`
//! is one, so it never reaches a disk) and bind-mounted read-only at `target`, by default
//! `/run/secrets/<id>`, with the mount's `mode` (0400), `uid` and `gid` (0). With `env=NAME` it is
//! the variable `NAME` instead, and also a file only when a `target` is given. A secret the build
//! was not given is an error (`secret ID: not found`) when the mount says `required`, and is left
//! out otherwise. The executor removes the mount point it made for the file after the run, so
//! nothing of the secret stays in the layer.
//!
//! An **ssh** mount gives the step the agent of its `id` (`default` when none) through a socket of
//! its own, at `target` (by default `/run/buildkit/ssh_agent.<n>`, `n` counting the step's ssh
//! mounts) with the mount's `mode` (0600), `uid` and `gid` (0): a forwarder thread connects each
//! connection to the agent, so the agent's socket is never exposed or changed. `SSH_AUTH_SOCK`
//! names the first ssh mount's target unless the step's environment already sets it. A missing
//! agent is an error when the mount says `required` (BuildKit's default is optional).
//!
//! Nothing here logs, and no error carries a secret's value: only ids, variable names and paths.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use kiln_frontend::instruction::Mount;

use crate::exec;
use crate::solver::request::{BuildRequest, SecretSource, SshSource};

/// The largest secret BuildKit accepts (500 KiB).
const MAX_SECRET_SIZE: u64 = 500 * 1024;

/// Where secret files go by default in the container.
const SECRETS_DIR: &str = "/run/secrets";

/// The id an ssh mount uses when it names none.
const DEFAULT_SSH_ID: &str = "default";

/// Why a step's secret or ssh mount could not be given to it. Messages name ids, variables and
/// paths, never a secret's value.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SecretError {
    /// A `required` secret the build was not given (BuildKit's wording).
    #[error("secret {id}: not found")]
    NotFound {
        /// The secret's id.
        id: String,
    },
    /// A secret mount with no id, source or target to name its secret.
    #[error("one of source, target required")]
    NoId,
    /// The secret's file could not be read.
    #[error("secret {id}: reading {}", path.display())]
    Read {
        /// The secret's id.
        id: String,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The secret is larger than BuildKit allows.
    #[error("secret {id} too big. max size 500KB")]
    TooBig {
        /// The secret's id.
        id: String,
    },
    /// `env=NAME` with a value an environment variable cannot hold.
    #[error(
        "secret {id}: cannot be the value of environment variable {name}: not UTF-8 text, or has a NUL byte"
    )]
    NotEnvText {
        /// The secret's id.
        id: String,
        /// The variable.
        name: String,
    },
    /// A `required` ssh mount whose agent the build was not given (BuildKit's wording).
    #[error("no SSH key {id:?} forwarded from the client")]
    SshNotFound {
        /// The agent's id.
        id: String,
    },
    /// `source=` on an ssh mount.
    #[error("ssh does not support source")]
    SshSource,
    /// The agent's socket is missing or is not a socket.
    #[error("ssh agent {id}: {}", path.display())]
    Agent {
        /// The agent's id.
        id: String,
        /// The socket the build was given.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The private directory, a secret file or a forwarding socket could not be made.
    #[error("preparing the {what} of the step")]
    Private {
        /// `secret mounts` or `ssh mounts`.
        what: &'static str,
        /// The cause.
        source: io::Error,
    },
}

impl SecretError {
    /// The message and its causes, joined by `: ` (a step failure carries one message).
    pub(crate) fn chain(&self) -> String {
        crate::solver::error::chain(self)
    }
}

/// The secrets and ssh agents a build was given, by id.
#[derive(Debug, Clone, Default)]
pub(crate) struct Secrets {
    secrets: BTreeMap<String, SecretSource>,
    ssh: BTreeMap<String, SshSource>,
}

impl Secrets {
    /// What `request` gives its steps.
    pub(crate) fn of(request: &BuildRequest) -> Secrets {
        Secrets {
            secrets: request.secrets().clone(),
            ssh: request.ssh().clone(),
        }
    }

    /// The value of secret `id`, read now; `None` when the build was not given it.
    fn read(&self, id: &str) -> Result<Option<Vec<u8>>, SecretError> {
        let value = match self.secrets.get(id) {
            None => return Ok(None),
            Some(SecretSource::Env(name)) => std::env::var_os(name)
                .map(std::os::unix::ffi::OsStringExt::into_vec)
                .unwrap_or_default(),
            Some(SecretSource::File(path)) => {
                let read = |source| SecretError::Read {
                    id: id.to_owned(),
                    path: path.clone(),
                    source,
                };
                let mut value = Vec::new();
                fs::File::open(path)
                    .and_then(|f| f.take(MAX_SECRET_SIZE + 1).read_to_end(&mut value))
                    .map_err(read)?;
                value
            }
        };
        if value.len() as u64 > MAX_SECRET_SIZE {
            return Err(SecretError::TooBig { id: id.to_owned() });
        }
        Ok(Some(value))
    }
}

/// What one step's secret and ssh mounts give it: mounts, environment variables, and what backs
/// them (the private directory, the forwarders), held until the step has run and undone on drop.
#[derive(Default)]
pub(crate) struct StepSecrets {
    /// Bind mounts of secret files and forwarding sockets.
    mounts: Vec<exec::Mount>,
    /// `env=` secrets, by variable.
    env: Vec<(String, String)>,
    /// The first ssh mount's target, for `SSH_AUTH_SOCK`.
    ssh_auth_sock: Option<String>,
    ssh_mounts: usize,
    /// Stopped before `dir` goes, as fields drop in order.
    forwarders: Vec<AgentForwarder>,
    dir: Option<tempfile::TempDir>,
}

impl StepSecrets {
    /// An empty set.
    pub(crate) fn new() -> StepSecrets {
        StepSecrets::default()
    }

    /// Adds `RUN --mount=type=secret` `mount`; `cwd` anchors a relative target.
    pub(crate) fn add_secret(
        &mut self,
        secrets: &Secrets,
        mount: &Mount,
        cwd: &str,
    ) -> Result<(), SecretError> {
        let target = mount.target.as_deref().filter(|t| !t.is_empty());
        let id = match (&mount.id, &mount.source, target) {
            (Some(id), _, _) | (None, Some(id), _) if !id.is_empty() => id.clone(),
            (_, _, Some(target)) => base_name(target).to_owned(),
            _ => return Err(SecretError::NoId),
        };
        let Some(value) = secrets.read(&id)? else {
            if mount.required {
                return Err(SecretError::NotFound { id });
            }
            return Ok(());
        };
        if let Some(name) = &mount.env {
            let text = String::from_utf8(value.clone())
                .ok()
                .filter(|t| !t.contains('\0'))
                .ok_or_else(|| SecretError::NotEnvText {
                    id: id.clone(),
                    name: name.clone(),
                })?;
            self.env.retain(|(n, _)| n != name);
            self.env.push((name.clone(), text));
        }
        let target = match (target, &mount.env) {
            (Some(target), _) => absolute(target, cwd),
            (None, None) => format!("{SECRETS_DIR}/{}", base_name(&id)),
            (None, Some(_)) => return Ok(()),
        };
        let private = |source| SecretError::Private {
            what: "secret mounts",
            source,
        };
        let path = self.private_path("secret").map_err(private)?;
        write_secret(&path, &value, mount).map_err(private)?;
        self.mounts.push(exec::Mount {
            target,
            // Always read-only, whatever `rw` says, as BuildKit mounts secrets.
            kind: exec::MountKind::Bind {
                source: path,
                readonly: true,
            },
        });
        Ok(())
    }

    /// Adds `RUN --mount=type=ssh` `mount`; `cwd` anchors a relative target.
    pub(crate) fn add_ssh(&mut self, secrets: &Secrets, mount: &Mount, cwd: &str) -> Result<(), SecretError> {
        if mount.source.is_some() {
            return Err(SecretError::SshSource);
        }
        let index = self.ssh_mounts;
        self.ssh_mounts += 1;
        let target = match mount.target.as_deref().filter(|t| !t.is_empty()) {
            Some(target) => absolute(target, cwd),
            None => format!("/run/buildkit/ssh_agent.{index}"),
        };
        // Set from the mount as written, whether or not the agent is there, as BuildKit does.
        self.ssh_auth_sock.get_or_insert_with(|| target.clone());
        let id = mount
            .id
            .clone()
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| DEFAULT_SSH_ID.to_owned());
        let Some(SshSource::Agent(agent)) = secrets.ssh.get(&id) else {
            if mount.required {
                return Err(SecretError::SshNotFound { id });
            }
            return Ok(());
        };
        check_socket(agent).map_err(|source| SecretError::Agent {
            id: id.clone(),
            path: agent.clone(),
            source,
        })?;
        let private = |source| SecretError::Private {
            what: "ssh mounts",
            source,
        };
        let socket = self.private_path("ssh").map_err(private)?;
        let owner = (mount.uid.unwrap_or(0), mount.gid.unwrap_or(0));
        let forwarder =
            AgentForwarder::start(agent, &socket, owner, mount.mode.unwrap_or(0o600)).map_err(private)?;
        self.forwarders.push(forwarder);
        self.mounts.push(exec::Mount {
            target,
            kind: exec::MountKind::Bind {
                source: socket,
                readonly: mount.read_only,
            },
        });
        Ok(())
    }

    /// Adds the mounts and variables to `spec`: a secret's variable replaces one of the same name,
    /// `SSH_AUTH_SOCK` is set unless the step's environment has it.
    pub(crate) fn apply(&self, spec: &mut exec::ProcessSpec) {
        spec.mounts.extend(self.mounts.iter().cloned());
        if let Some(socket) = &self.ssh_auth_sock {
            if !spec.env.iter().any(|(name, _)| name == "SSH_AUTH_SOCK") {
                spec.env.push(("SSH_AUTH_SOCK".to_owned(), socket.clone()));
            }
        }
        for (name, value) in &self.env {
            spec.env.retain(|(n, _)| n != name);
            spec.env.push((name.clone(), value.clone()));
        }
    }

    /// A fresh path in the step's private directory, made on first use.
    fn private_path(&mut self, kind: &str) -> io::Result<PathBuf> {
        let dir = match self.dir.take() {
            Some(dir) => dir,
            None => tempfile::Builder::new()
                .prefix("kiln-secrets-")
                .permissions(fs::Permissions::from_mode(0o700))
                .tempdir_in(private_base())?,
        };
        let path = dir.path().join(format!("{kind}-{}", self.mounts.len()));
        self.dir = Some(dir);
        Ok(path)
    }
}

/// `/dev/shm` when it is a tmpfs (secrets then never reach a disk), the temp directory otherwise.
fn private_base() -> PathBuf {
    let shm = Path::new("/dev/shm");
    match rustix::fs::statfs(shm) {
        Ok(fs) if i128::from(fs.f_type) == i128::from(libc::TMPFS_MAGIC) => shm.to_owned(),
        _ => std::env::temp_dir(),
    }
}

/// Writes a secret file with the mount's owner and mode (BuildKit's defaults: root, 0400).
fn write_secret(path: &Path, value: &[u8], mount: &Mount) -> io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(value)?;
    std::os::unix::fs::fchown(&file, Some(mount.uid.unwrap_or(0)), Some(mount.gid.unwrap_or(0)))?;
    // After chown, which clears set-id bits.
    file.set_permissions(fs::Permissions::from_mode(mount.mode.unwrap_or(0o400) & 0o7777))
}

/// The last component of a slash path (`a/b` gives `b`).
fn base_name(path: &str) -> &str {
    path.trim_end_matches('/').rsplit('/').next().unwrap_or(path)
}

/// `target` made absolute against the working directory, as BuildKit resolves mount targets.
fn absolute(target: &str, cwd: &str) -> String {
    if target.starts_with('/') {
        target.to_owned()
    } else {
        format!("{}/{target}", cwd.trim_end_matches('/'))
    }
}

/// Fails unless `path` is a Unix socket (key files are not agents).
fn check_socket(path: &Path) -> io::Result<()> {
    if fs::metadata(path)?.file_type().is_socket() {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidInput, "not a socket"))
    }
}

/// A socket that forwards every connection to an SSH agent's socket, until dropped.
struct AgentForwarder {
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AgentForwarder {
    /// Listens on `socket` (owned by `owner`, with `mode`) and forwards to `agent`.
    fn start(agent: &Path, socket: &Path, owner: (u32, u32), mode: u32) -> io::Result<AgentForwarder> {
        let listener = UnixListener::bind(socket)?;
        std::os::unix::fs::chown(socket, Some(owner.0), Some(owner.1))?;
        fs::set_permissions(socket, fs::Permissions::from_mode(mode & 0o777))?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("kiln-ssh-forward".into())
            .spawn({
                let (agent, stop) = (agent.to_owned(), Arc::clone(&stop));
                move || accept_loop(&listener, &agent, &stop)
            })?;
        Ok(AgentForwarder {
            socket: socket.to_owned(),
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for AgentForwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // A connection wakes the accept loop, which then sees the flag. If none can be made, the
        // thread is left to end with the process rather than waited for forever.
        if UnixStream::connect(&self.socket).is_ok() {
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

fn accept_loop(listener: &UnixListener, agent: &Path, stop: &AtomicBool) {
    for client in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match client {
            Ok(client) => {
                // An agent that cannot be reached closes the step's connection: ssh reports it.
                if let Ok(upstream) = UnixStream::connect(agent) {
                    forward(client, upstream);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Copies both ways between two connections, each direction on its own thread; a side that ends
/// its writes has that passed on, so both threads end when the step's processes are gone.
fn forward(client: UnixStream, upstream: UnixStream) {
    let (Ok(client_write), Ok(upstream_write)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let pipe = |mut from: UnixStream, mut to: UnixStream| {
        move || {
            let _ = io::copy(&mut from, &mut to);
            let _ = to.shutdown(std::net::Shutdown::Write);
        }
    };
    let _ = std::thread::Builder::new()
        .name("kiln-ssh-forward".into())
        .spawn(pipe(client, upstream_write));
    let _ = std::thread::Builder::new()
        .name("kiln-ssh-forward".into())
        .spawn(pipe(upstream, client_write));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(fields: &str) -> Mount {
        Mount::parse(fields, &|_| true).unwrap()
    }

    fn given(id: &str, value: &str) -> (Secrets, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("value");
        fs::write(&file, value).unwrap();
        let mut secrets = Secrets::default();
        secrets.secrets.insert(id.to_owned(), SecretSource::File(file));
        (secrets, dir)
    }

    fn targets(step: &StepSecrets) -> Vec<&str> {
        step.mounts.iter().map(|m| m.target.as_str()).collect()
    }

    #[test]
    fn secret_file_defaults_to_run_secrets_id_mode_0400() {
        let (secrets, _dir) = given("token", "s3cr3t");
        let mut step = StepSecrets::new();
        step.add_secret(&secrets, &mount("type=secret,id=token"), "/")
            .unwrap();
        assert_eq!(targets(&step), ["/run/secrets/token"]);
        let exec::MountKind::Bind { source, readonly } = &step.mounts[0].kind else {
            panic!("a bind")
        };
        assert!(readonly);
        assert_eq!(fs::read_to_string(source).unwrap(), "s3cr3t");
        let meta = fs::metadata(source).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o400);
        let dir = fs::metadata(source.parent().unwrap()).unwrap();
        assert_eq!(dir.permissions().mode() & 0o777, 0o700);
        let private = source.parent().unwrap().to_owned();
        drop(step);
        assert!(!private.exists(), "the private directory goes with the step");
    }

    #[test]
    fn secret_id_comes_from_source_or_target() {
        let (secrets, _dir) = given("token", "x");
        let mut step = StepSecrets::new();
        step.add_secret(&secrets, &mount("type=secret,source=token"), "/")
            .unwrap();
        step.add_secret(&secrets, &mount("type=secret,target=/etc/token"), "/")
            .unwrap();
        step.add_secret(&secrets, &mount("type=secret,id=token,target=rel"), "/work/")
            .unwrap();
        assert_eq!(targets(&step), ["/run/secrets/token", "/etc/token", "/work/rel"]);
    }

    #[test]
    fn secret_env_without_target_is_only_a_variable() {
        let (secrets, _dir) = given("token", "value");
        let mut step = StepSecrets::new();
        step.add_secret(&secrets, &mount("type=secret,id=token,env=TOKEN"), "/")
            .unwrap();
        assert!(step.mounts.is_empty());
        step.add_secret(&secrets, &mount("type=secret,id=token,env=ALSO,target=/t"), "/")
            .unwrap();
        assert_eq!(targets(&step), ["/t"]);
        let mut spec = exec::ProcessSpec::new(["true"]);
        spec.env.push(("TOKEN".into(), "old".into()));
        step.apply(&mut spec);
        assert_eq!(
            spec.env,
            [
                ("TOKEN".to_owned(), "value".to_owned()),
                ("ALSO".to_owned(), "value".to_owned())
            ]
        );
    }

    #[test]
    fn missing_secret_fails_only_when_required() {
        let secrets = Secrets::default();
        let mut step = StepSecrets::new();
        step.add_secret(&secrets, &mount("type=secret,id=nope"), "/")
            .unwrap();
        assert!(step.mounts.is_empty() && step.env.is_empty());
        let err = step
            .add_secret(&secrets, &mount("type=secret,id=nope,required"), "/")
            .unwrap_err();
        assert_eq!(err.chain(), "secret nope: not found");
    }

    #[test]
    fn unreadable_and_oversized_secrets_say_which() {
        let mut secrets = Secrets::default();
        secrets.secrets.insert(
            "gone".into(),
            SecretSource::File("/nonexistent/kiln-secret".into()),
        );
        let mut step = StepSecrets::new();
        let err = step
            .add_secret(&secrets, &mount("type=secret,id=gone"), "/")
            .unwrap_err();
        assert_eq!(
            err.chain(),
            "secret gone: reading /nonexistent/kiln-secret: No such file or directory (os error 2)"
        );
        let (secrets, _dir) = given("big", &"x".repeat(500 * 1024 + 1));
        let err = step
            .add_secret(&secrets, &mount("type=secret,id=big"), "/")
            .unwrap_err();
        assert_eq!(err.to_string(), "secret big too big. max size 500KB");
    }

    #[test]
    fn ssh_defaults_and_forwarding() {
        let dir = tempfile::tempdir().unwrap();
        let agent_path = dir.path().join("agent.sock");
        let agent = UnixListener::bind(&agent_path).unwrap();
        let mut secrets = Secrets::default();
        secrets
            .ssh
            .insert("default".into(), SshSource::Agent(agent_path.clone()));
        let mut step = StepSecrets::new();
        step.add_ssh(&secrets, &mount("type=ssh"), "/").unwrap();
        step.add_ssh(&secrets, &mount("type=ssh,id=other"), "/").unwrap();
        let err = step
            .add_ssh(&secrets, &mount("type=ssh,id=other,required"), "/")
            .unwrap_err();
        assert_eq!(err.to_string(), r#"no SSH key "other" forwarded from the client"#);
        assert_eq!(targets(&step), ["/run/buildkit/ssh_agent.0"]);
        let mut spec = exec::ProcessSpec::new(["true"]);
        step.apply(&mut spec);
        assert_eq!(
            spec.env,
            [("SSH_AUTH_SOCK".to_owned(), "/run/buildkit/ssh_agent.0".to_owned())]
        );
        let exec::MountKind::Bind { source, .. } = &step.mounts[0].kind else {
            panic!("a bind")
        };
        let meta = fs::metadata(source).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        // A round trip through the forwarder.
        let mut client = UnixStream::connect(source).unwrap();
        client.write_all(b"ping").unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let (mut upstream, _) = agent.accept().unwrap();
        let mut got = String::new();
        upstream.read_to_string(&mut got).unwrap();
        assert_eq!(got, "ping");
        upstream.write_all(b"pong").unwrap();
        drop(upstream);
        let mut reply = String::new();
        client.read_to_string(&mut reply).unwrap();
        assert_eq!(reply, "pong");
        drop(step);
    }

    #[test]
    fn ssh_agent_must_be_a_socket() {
        let (_, dir) = given("unused", "");
        let mut secrets = Secrets::default();
        let key = dir.path().join("value");
        secrets
            .ssh
            .insert("default".into(), SshSource::Agent(key.clone()));
        let err = StepSecrets::new()
            .add_ssh(&secrets, &mount("type=ssh"), "/")
            .unwrap_err();
        assert_eq!(
            err.chain(),
            format!("ssh agent default: {}: not a socket", key.display())
        );
    }
}
