//! What a lowered instruction asks the executor to do to the stage's filesystem.
//!
//! Config-only instructions (ENV, LABEL, CMD...) lower to no op at all. The three ops that change the
//! filesystem, and so make a layer, are a process run ([`RunOp`]), a copy ([`CopyOp`]) and the
//! directory WORKDIR creates ([`MkdirOp`]). Every word in them is already expanded; paths are
//! absolute in the stage's root. Cache keys are computed from these values (see `cachekey`).

use kiln_frontend::graph::Input;
use kiln_frontend::instruction::{Chmod, Mount, Network, Security};

/// A filesystem-changing step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// `RUN`.
    Run(RunOp),
    /// `COPY` or `ADD`.
    Copy(CopyOp),
    /// `WORKDIR` to a directory other than `/`.
    Mkdir(MkdirOp),
}

/// `RUN`: one process in the stage's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunOp {
    /// The argv, shell already prepended for the shell form.
    pub(crate) args: Vec<String>,
    /// The stage environment: the image's ENV and the ARGs in scope.
    pub(crate) env: Vec<(String, String)>,
    /// Proxy variables from `--build-arg` (`HTTP_PROXY`...): given to the process, never part of
    /// the cache key or the image, as BuildKit does.
    pub(crate) proxy_env: Vec<(String, String)>,
    /// The working directory.
    pub(crate) cwd: String,
    /// The user, as written in USER (resolved in the root at run time); empty means root.
    pub(crate) user: String,
    /// `--network`.
    pub(crate) network: Network,
    /// `--security`.
    pub(crate) security: Security,
    /// `--mount`s, their words expanded.
    pub(crate) mounts: Vec<RunMount>,
    /// A `#!` heredoc script: BuildKit mounts it read-only at `/dev/pipes/<name>` and runs it.
    pub(crate) script: Option<Script>,
}

/// One `RUN --mount`, with where its `from` resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunMount {
    /// The mount, words expanded.
    pub(crate) mount: Mount,
    /// `from=`, resolved: `None` for the build context.
    pub(crate) from: Option<Input>,
}

/// A heredoc script file for `RUN <<EOF` bodies that start with `#!`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Script {
    /// The file name (the heredoc's delimiter).
    pub(crate) name: String,
    /// The body.
    pub(crate) content: String,
}

/// Where COPY reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CopySource {
    /// The build context.
    Context,
    /// `--from`: another stage or an image.
    Input(Input),
}

/// `COPY` or `ADD`.
// The flags are the instruction's own, independent of each other.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CopyOp {
    /// `ADD` (archives extracted, URLs fetched) rather than `COPY`.
    pub(crate) add: bool,
    /// Where the sources are read.
    pub(crate) source: CopySource,
    /// Source paths, globs or URLs, expanded.
    pub(crate) sources: Vec<String>,
    /// Heredoc files: name and content (expanded when the delimiter was unquoted).
    pub(crate) inline: Vec<(String, String)>,
    /// Destination: absolute, cleaned, the trailing slash kept (it means "into this directory").
    pub(crate) dest: String,
    /// `--chown`, expanded.
    pub(crate) chown: Option<String>,
    /// `--chmod`, expanded and parsed.
    pub(crate) chmod: Option<Chmod>,
    /// `--link`.
    pub(crate) link: bool,
    /// `--parents`.
    pub(crate) parents: bool,
    /// `--exclude` patterns.
    pub(crate) excludes: Vec<String>,
    /// `ADD --checksum`.
    pub(crate) checksum: Option<String>,
    /// Whether local archives are extracted: ADD's default unless `--unpack` says otherwise.
    pub(crate) unpack: bool,
    /// `ADD --keep-git-dir`.
    pub(crate) keep_git_dir: bool,
}

/// WORKDIR's directory: created with its parents, mode 0755, owned by the stage's user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MkdirOp {
    /// The absolute path.
    pub(crate) path: String,
    /// The stage's USER at that point (empty: root).
    pub(crate) user: String,
}
