//! Typed instructions: each syntax [`Node`](crate::syntax::Node) becomes one [`Instruction`], as BuildKit's
//! `frontend/dockerfile/instructions` package reads it.
//!
//! A [`Step`] is an instruction with where it stands in the file. There is one [`Instruction`]
//! variant per keyword, holding a typed payload: flags are parsed and validated (`--mount`,
//! `--network`, `--from`, `--chmod`, HEALTHCHECK durations...), shell form and exec form are told
//! apart ([`CommandLine`]), heredocs are carried through. Words stay *unexpanded*: `$VAR` is
//! resolved later, against the image's environment, by the builder. Only what BuildKit checks
//! statically is checked here, such as `COPY --from` being free of variables. Errors carry the
//! line and BuildKit's message ([`Error`]), with "did you mean" suggestions for misspelt
//! instructions, flags, mount types and mount keys.
//!
//! ```
//! use kiln_frontend::instruction::{self, CommandLine, Instruction, MountType};
//! use kiln_frontend::syntax;
//!
//! let dockerfile = syntax::parse(b"FROM golang\nRUN --mount=type=cache,target=/root/.cache go build ./...\n").unwrap();
//! let steps = instruction::parse_all(&dockerfile).unwrap();
//! let Instruction::Run(run) = &steps[1].instruction else { unreachable!() };
//! assert_eq!(run.command, CommandLine::Shell("go build ./...".into()));
//! assert_eq!(run.mounts[0].kind, MountType::Cache);
//! assert_eq!(run.mounts[0].target.as_deref(), Some("/root/.cache"));
//!
//! let typo = syntax::parse(b"FROM golang\nRUN --mout=type=cache true\n").unwrap();
//! let err = instruction::parse_all(&typo).unwrap_err();
//! assert_eq!(err.to_string(), "unknown flag: --mout (did you mean mount?)");
//! assert_eq!(err.line(), Some(2));
//! ```

mod chmod;
mod csv;
mod duration;
mod error;
mod flags;
mod mount;
mod parse;
pub(crate) mod suggest;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use duration::{DurationError, parse_go_duration};
pub(crate) use error::go_quote;
pub use error::{Error, ErrorKind};

pub use chmod::Chmod;
pub use csv::{CsvError, csv_record};
pub use mount::{Mount, MountError, MountType, Sharing};
pub use parse::{parse, parse_all};

use crate::syntax::{Heredoc, Span};

/// An instruction and where it stands in the Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The typed instruction.
    pub instruction: Instruction,
    /// The lines it spans, continuation and heredoc lines included.
    pub span: Span,
    /// The instruction as written (continuations joined, surrounding blanks trimmed), which is what
    /// image history and progress show.
    pub original: String,
}

/// One Dockerfile instruction, one variant per keyword.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    /// `FROM [--platform=p] image [AS name]`: starts a stage.
    From(From),
    /// `RUN`: runs a command in the stage's filesystem.
    Run(Run),
    /// `CMD`: the image's default command.
    Cmd(CommandLine),
    /// `LABEL k=v ...`: image labels.
    Label(Vec<KeyValue>),
    /// `MAINTAINER name`: the image's author (deprecated by Docker, still honoured).
    Maintainer(String),
    /// `EXPOSE 80/tcp ...`: ports, sorted as BuildKit sorts them, unexpanded.
    Expose(Vec<String>),
    /// `ENV k=v ...`: environment for later steps and the image.
    Env(Vec<KeyValue>),
    /// `ADD`: copies from the context, URLs or git, with archive extraction.
    Add(Add),
    /// `COPY`: copies from the context, a stage or an image.
    Copy(Copy),
    /// `ENTRYPOINT`: the image's entrypoint.
    Entrypoint(CommandLine),
    /// `VOLUME`: mount points recorded in the image.
    Volume(Vec<String>),
    /// `USER user[:group]`.
    User(String),
    /// `WORKDIR path`.
    Workdir(String),
    /// `ARG name[=default] ...`: build arguments.
    Arg(Vec<ArgDef>),
    /// `ONBUILD instruction`: a trigger stored in the image for its children.
    Onbuild(Onbuild),
    /// `STOPSIGNAL signal`.
    Stopsignal(String),
    /// `HEALTHCHECK`: the container health check, or `NONE` to disable the base image's.
    Healthcheck(Healthcheck),
    /// `SHELL ["executable", "params"...]`: the shell for shell-form commands.
    Shell(Vec<String>),
}

impl Instruction {
    /// The keyword, upper case (`FROM`, `RUN`...).
    pub fn keyword(&self) -> &'static str {
        match self {
            Instruction::From(_) => "FROM",
            Instruction::Run(_) => "RUN",
            Instruction::Cmd(_) => "CMD",
            Instruction::Label(_) => "LABEL",
            Instruction::Maintainer(_) => "MAINTAINER",
            Instruction::Expose(_) => "EXPOSE",
            Instruction::Env(_) => "ENV",
            Instruction::Add(_) => "ADD",
            Instruction::Copy(_) => "COPY",
            Instruction::Entrypoint(_) => "ENTRYPOINT",
            Instruction::Volume(_) => "VOLUME",
            Instruction::User(_) => "USER",
            Instruction::Workdir(_) => "WORKDIR",
            Instruction::Arg(_) => "ARG",
            Instruction::Onbuild(_) => "ONBUILD",
            Instruction::Stopsignal(_) => "STOPSIGNAL",
            Instruction::Healthcheck(_) => "HEALTHCHECK",
            Instruction::Shell(_) => "SHELL",
        }
    }
}

/// Every instruction keyword, upper case, in the order "did you mean" considers them.
pub const KEYWORDS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// A command as written: shell form (run through the stage's SHELL) or exec form (a JSON array).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandLine {
    /// `RUN make all`: one string handed to the shell.
    Shell(String),
    /// `RUN ["make", "all"]`: the argument vector itself.
    Exec(Vec<String>),
}

impl CommandLine {
    /// Whether this is the exec (JSON) form.
    pub fn is_exec(&self) -> bool {
        matches!(self, CommandLine::Exec(_))
    }
}

/// `FROM [--platform=p] image [AS name]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct From {
    /// The base: an image reference, `scratch` or an earlier stage's name; unexpanded (global ARGs
    /// apply).
    pub image: String,
    /// The stage name after `AS`, lower-cased and validated.
    pub name: Option<String>,
    /// The `--platform` value, unexpanded.
    pub platform: Option<String>,
    /// The stage's description: a comment line right above FROM that starts with the stage name
    /// (`# build compiles the binary`), without the name.
    pub description: Option<String>,
}

/// `RUN [--mount=...] [--network=...] [--security=...] command`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The command.
    pub command: CommandLine,
    /// Heredocs attached to the command (`RUN <<EOF`), bodies as written.
    pub heredocs: Vec<Heredoc>,
    /// The `--mount` flags, in order.
    pub mounts: Vec<Mount>,
    /// The `--network` mode.
    pub network: Network,
    /// The `--security` mode.
    pub security: Security,
}

/// `RUN --network=...`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Network {
    /// The build's default network.
    #[default]
    Default,
    /// No network: loopback only.
    None,
    /// The host's network namespace.
    Host,
}

/// `RUN --security=...`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Security {
    /// The default confinement.
    #[default]
    Sandbox,
    /// Full privileges (needs the `security.insecure` entitlement).
    Insecure,
}

/// One `key=value` of ENV or LABEL, unexpanded (quotes still in the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The name.
    pub key: String,
    /// The value as written.
    pub value: String,
    /// Whether it came from the legacy `ENV key value` form (no `=`).
    pub legacy: bool,
}

/// One name of an ARG instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDef {
    /// The name.
    pub name: String,
    /// The default after `=`, unexpanded; `None` when there is no `=`.
    pub default: Option<String>,
    /// A comment line right above the ARG that starts with the name, without the name.
    pub description: Option<String>,
}

/// `ONBUILD instruction`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Onbuild {
    /// The trigger keyword, upper case (`RUN`, `COPY`...).
    pub trigger: String,
    /// The trigger as stored in the image config: the text after `ONBUILD`, heredocs appended.
    /// It is parsed again when a child image builds FROM this one.
    pub expression: String,
}

/// `HEALTHCHECK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable the base image's check.
    None,
    /// `HEALTHCHECK [options] CMD command`.
    Check(HealthcheckCmd),
}

/// `HEALTHCHECK [--interval] [--timeout] [--start-period] [--start-interval] [--retries] CMD ...`.
///
/// A zero duration or zero retries means "not set": the image inherits its base's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthcheckCmd {
    /// The command: shell form becomes `CMD-SHELL`, exec form `CMD` in the image config.
    pub command: CommandLine,
    /// `--interval`.
    pub interval: Duration,
    /// `--timeout`.
    pub timeout: Duration,
    /// `--start-period`.
    pub start_period: Duration,
    /// `--start-interval`.
    pub start_interval: Duration,
    /// `--retries`.
    pub retries: u32,
}

impl HealthcheckCmd {
    /// The image config's `Test` array: `["CMD-SHELL", cmd]` or `["CMD", args...]`.
    pub fn test(&self) -> Vec<String> {
        match &self.command {
            CommandLine::Shell(s) => vec!["CMD-SHELL".to_owned(), s.clone()],
            CommandLine::Exec(args) => std::iter::once("CMD".to_owned())
                .chain(args.iter().cloned())
                .collect(),
        }
    }
}

/// The sources of COPY or ADD: paths (or URLs) and inline heredoc files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    /// Paths, globs, URLs or git references, unexpanded.
    pub paths: Vec<String>,
    /// Heredocs used as files (`COPY <<EOF /dest`).
    pub inline: Vec<InlineFile>,
}

/// A file whose content is a heredoc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineFile {
    /// The file name (the heredoc delimiter).
    pub name: String,
    /// The content, leading tabs already removed for `<<-`.
    pub content: String,
    /// Whether variables in the content are expanded (the delimiter was not quoted).
    pub expand: bool,
}

/// `COPY [--from] [--chown] [--chmod] [--link] [--parents] [--exclude]... src... dest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// What to copy.
    pub sources: Sources,
    /// Where to, unexpanded.
    pub dest: String,
    /// `--from`: a stage name, a stage index or an image; free of variables.
    pub from: Option<String>,
    /// `--chown`, unexpanded.
    pub chown: Option<String>,
    /// `--chmod`, unexpanded; checked by [`Chmod::parse`] here when it holds no variable.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--parents`.
    pub parents: bool,
    /// `--exclude` patterns, in order.
    pub excludes: Vec<String>,
}

/// `ADD [--chown] [--chmod] [--link] [--keep-git-dir] [--checksum] [--unpack] [--exclude]... src... dest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Add {
    /// What to add.
    pub sources: Sources,
    /// Where to, unexpanded.
    pub dest: String,
    /// `--chown`, unexpanded.
    pub chown: Option<String>,
    /// `--chmod`, unexpanded; checked by [`Chmod::parse`] here when it holds no variable.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--keep-git-dir`, when given.
    pub keep_git_dir: Option<bool>,
    /// `--checksum`, unexpanded.
    pub checksum: Option<String>,
    /// `--unpack`, when given (the default extracts local archives only).
    pub unpack: Option<bool>,
    /// `--exclude` patterns, in order.
    pub excludes: Vec<String>,
}
