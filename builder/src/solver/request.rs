//! [`BuildRequest`]: everything `kiln build` is asked to do, as one immutable value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_frontend::graph::Platform;
pub use kiln_frontend::instruction::Network;

use crate::context::ContextStream;
use crate::dockerfile::{DockerfileSource, DockerfileText};
use crate::layer::Compression;
use crate::reference::ImageRef;

/// Where the built image goes (`-o`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The local image store, named by the request's tags (the default).
    Store,
    /// An OCI image layout as a tarball (`-o type=oci,dest=F.tar`).
    OciTar(ArchiveOutput),
    /// A tarball `docker load` reads (`-o type=docker,dest=F.tar`).
    DockerTar(ArchiveOutput),
    /// The final filesystem, unpacked into a directory (`-o type=local,dest=DIR`).
    Local(PathBuf),
}

/// An image archive a build writes (`-o type=oci|docker,dest=F.tar[,compression=…]`), with how its
/// layers are compressed. `"app.tar".into()` is one with BuildKit's defaults: gzip, layers already
/// compressed left as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveOutput {
    /// The tarball to write (atomically: it appears whole or not at all).
    pub dest: PathBuf,
    /// How its plain layers are compressed (`compression=` and `compression-level=`).
    pub compression: Compression,
    /// Whether layers compressed otherwise (a pulled base's gzip layers, for zstd) are compressed
    /// again the asked way (`force-compression=true`).
    pub force_compression: bool,
}

impl ArchiveOutput {
    /// An archive at `dest` with the default compression.
    pub fn new(dest: impl Into<PathBuf>) -> ArchiveOutput {
        ArchiveOutput {
            dest: dest.into(),
            compression: Compression::GZIP,
            force_compression: false,
        }
    }
}

impl From<&str> for ArchiveOutput {
    fn from(dest: &str) -> ArchiveOutput {
        ArchiveOutput::new(dest)
    }
}

impl From<PathBuf> for ArchiveOutput {
    fn from(dest: PathBuf) -> ArchiveOutput {
        ArchiveOutput::new(dest)
    }
}

/// Where the value of a build secret comes from (`--secret`).
///
/// The value is read when a step mounts the secret, not when the request is made, and never
/// becomes part of a cache key: a step whose secret changed is still a cache hit, as in BuildKit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// The content of a file (`--secret id=ID,src=PATH`).
    File(PathBuf),
    /// The value of an environment variable of this process (`--secret id=ID,env=NAME`); an unset
    /// variable gives an empty secret, as in BuildKit.
    Env(String),
}

/// Where an SSH agent for `RUN --mount=type=ssh` comes from (`--ssh`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshSource {
    /// A running agent's socket (`--ssh default=$SSH_AUTH_SOCK`). Steps reach it through a socket
    /// of their own that forwards each connection, so the mount's `uid`, `gid` and `mode` apply
    /// without touching the agent's socket.
    Agent(PathBuf),
}

/// Where the Dockerfile's text comes from.
#[derive(Debug, Clone)]
pub(crate) enum DockerfileInput {
    /// A file, stdin or the context's default, read when the build starts.
    Source(DockerfileSource),
    /// Text the caller already has.
    Text(DockerfileText),
}

/// One build: the context, the Dockerfile and every option of `docker build` kiln supports.
///
/// Made with [`BuildRequest::builder`]; immutable once built, so one request can be built twice.
///
/// ```
/// use kiln_builder::reference::ImageRef;
/// use kiln_builder::solver::{BuildRequest, Network, Output, SecretSource, SshSource};
///
/// let request = BuildRequest::builder("./app")
///     .dockerfile_text("Dockerfile", "FROM scratch\nCOPY . /\n")
///     .build_arg("VERSION", "1.2")
///     .target("release")
///     .tag("app:1".parse::<ImageRef>()?)
///     .label("org.opencontainers.image.source", "https://example.com/app")
///     .network(Network::None)
///     .output(Output::DockerTar("app.tar".into()))
///     .secret("npmrc", SecretSource::File("/home/me/.npmrc".into()))
///     .secret("token", SecretSource::Env("API_TOKEN".into()))
///     .ssh("default", SshSource::Agent("/run/user/1000/ssh-agent.sock".into()))
///     .build();
/// assert_eq!(request.target(), Some("release"));
/// assert_eq!(request.build_args()["VERSION"], "1.2");
/// assert_eq!(request.outputs(), [Output::DockerTar("app.tar".into())]);
/// assert_eq!(request.secrets()["token"], SecretSource::Env("API_TOKEN".into()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct BuildRequest {
    context: PathBuf,
    context_stream: Option<ContextStream>,
    dockerfile: DockerfileInput,
    build_args: BTreeMap<String, String>,
    target: Option<String>,
    platform: Option<Platform>,
    tags: Vec<ImageRef>,
    labels: BTreeMap<String, String>,
    no_cache: bool,
    pull: bool,
    network: Network,
    outputs: Vec<Output>,
    cancel_on_ctrl_c: bool,
    secrets: BTreeMap<String, SecretSource>,
    ssh: BTreeMap<String, SshSource>,
}

/// Builds a [`BuildRequest`]; every setting has `docker build`'s default.
#[derive(Debug, Clone)]
#[must_use]
pub struct BuildRequestBuilder {
    request: BuildRequest,
}

impl BuildRequest {
    /// Starts a request for the context directory `context`; the Dockerfile defaults to
    /// `context/Dockerfile`.
    pub fn builder(context: impl Into<PathBuf>) -> BuildRequestBuilder {
        BuildRequestBuilder {
            request: BuildRequest {
                context: context.into(),
                context_stream: None,
                dockerfile: DockerfileInput::Source(DockerfileSource::Default),
                build_args: BTreeMap::new(),
                target: None,
                platform: None,
                tags: Vec::new(),
                labels: BTreeMap::new(),
                no_cache: false,
                pull: false,
                network: Network::Default,
                outputs: Vec::new(),
                cancel_on_ctrl_c: false,
                secrets: BTreeMap::new(),
                ssh: BTreeMap::new(),
            },
        }
    }

    /// Starts a request whose context is read from `stream`, as `docker build -` reads standard
    /// input: a tar archive of the context (the Dockerfile is in it, at the
    /// [`dockerfile`](BuildRequestBuilder::dockerfile) path taken relative to the context root), or
    /// else the Dockerfile itself, with an empty context. See
    /// [`StreamedContext`](crate::context::StreamedContext). The stream is read once: building the
    /// request a second time fails.
    pub fn builder_from_stream(stream: ContextStream) -> BuildRequestBuilder {
        let mut builder = BuildRequest::builder(PathBuf::new());
        builder.request.context_stream = Some(stream);
        builder
    }

    /// The context directory (empty for a request made with [`BuildRequest::builder_from_stream`]).
    pub fn context(&self) -> &Path {
        &self.context
    }

    /// The stream the context comes from, if the request was made with
    /// [`BuildRequest::builder_from_stream`].
    pub fn context_stream(&self) -> Option<&ContextStream> {
        self.context_stream.as_ref()
    }

    /// `--build-arg` values.
    pub fn build_args(&self) -> &BTreeMap<String, String> {
        &self.build_args
    }

    /// `--target`.
    pub fn target(&self) -> Option<&str> {
        self.target.as_deref()
    }

    /// `--platform`; the host's when `None`.
    pub fn platform(&self) -> Option<&Platform> {
        self.platform.as_ref()
    }

    /// `-t` names.
    pub fn tags(&self) -> &[ImageRef] {
        &self.tags
    }

    /// `--label`s for the final image.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }

    /// `--no-cache`.
    pub fn no_cache(&self) -> bool {
        self.no_cache
    }

    /// `--pull`.
    pub fn pull(&self) -> bool {
        self.pull
    }

    /// `--network`: the default for every RUN.
    pub fn network(&self) -> Network {
        self.network
    }

    /// Where the image goes; the store alone when none was given.
    pub fn outputs(&self) -> &[Output] {
        &self.outputs
    }

    /// Whether Ctrl-C (SIGINT) stops the build.
    pub fn cancel_on_ctrl_c(&self) -> bool {
        self.cancel_on_ctrl_c
    }

    /// `--secret`s, by id.
    pub fn secrets(&self) -> &BTreeMap<String, SecretSource> {
        &self.secrets
    }

    /// `--ssh` agents, by id.
    pub fn ssh(&self) -> &BTreeMap<String, SshSource> {
        &self.ssh
    }

    pub(crate) fn dockerfile(&self) -> &DockerfileInput {
        &self.dockerfile
    }
}

impl BuildRequestBuilder {
    /// Reads the Dockerfile from `source` (a path, stdin, or the context's default).
    pub fn dockerfile(mut self, source: DockerfileSource) -> Self {
        self.request.dockerfile = DockerfileInput::Source(source);
        self
    }

    /// Uses `text` as the Dockerfile; `name` is how messages refer to it.
    pub fn dockerfile_text(mut self, name: impl Into<String>, text: impl Into<Vec<u8>>) -> Self {
        self.request.dockerfile = DockerfileInput::Text(DockerfileText {
            name: name.into(),
            path: None,
            bytes: text.into(),
        });
        self
    }

    /// Sets one `--build-arg`.
    pub fn build_arg(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.request.build_args.insert(name.into(), value.into());
        self
    }

    /// Builds the stage `target` instead of the last one.
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.request.target = Some(target.into());
        self
    }

    /// Builds for `platform`.
    pub fn platform(mut self, platform: Platform) -> Self {
        self.request.platform = Some(platform);
        self
    }

    /// Names the image (may be given several times).
    pub fn tag(mut self, tag: ImageRef) -> Self {
        self.request.tags.push(tag);
        self
    }

    /// Adds a label to the final image.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.request.labels.insert(key.into(), value.into());
        self
    }

    /// Ignores the build cache: every step runs.
    pub fn no_cache(mut self, yes: bool) -> Self {
        self.request.no_cache = yes;
        self
    }

    /// Pulls base images even when they are in the store.
    pub fn pull(mut self, yes: bool) -> Self {
        self.request.pull = yes;
        self
    }

    /// The network RUN steps get unless they say `--network` themselves.
    pub fn network(mut self, network: Network) -> Self {
        self.request.network = network;
        self
    }

    /// Adds an output (may be given several times).
    pub fn output(mut self, output: Output) -> Self {
        self.request.outputs.push(output);
        self
    }

    /// Stops the build cleanly on Ctrl-C (SIGINT): running steps are killed, their snapshots removed,
    /// nothing is stored, and the build returns [`BuildError::Interrupted`](super::BuildError).
    /// Meant for command-line tools: once asked for, tokio keeps handling SIGINT in this process
    /// (it no longer terminates it by default).
    pub fn cancel_on_ctrl_c(mut self, yes: bool) -> Self {
        self.request.cancel_on_ctrl_c = yes;
        self
    }

    /// Gives the build the secret `id` (`RUN --mount=type=secret,id=ID`); a later call with the same
    /// id replaces it. Nothing is read until a step mounts it.
    pub fn secret(mut self, id: impl Into<String>, source: SecretSource) -> Self {
        self.request.secrets.insert(id.into(), source);
        self
    }

    /// Gives the build the SSH agent `id` (`RUN --mount=type=ssh,id=ID`; `default` when the mount
    /// names none); a later call with the same id replaces it.
    pub fn ssh(mut self, id: impl Into<String>, source: SshSource) -> Self {
        self.request.ssh.insert(id.into(), source);
        self
    }

    /// The request.
    pub fn build(self) -> BuildRequest {
        self.request
    }
}
