//! [`BuildError`]: why a build failed, with the file, line and step it concerns.

use std::path::PathBuf;

use kiln_frontend::{graph, syntax};

use super::lower::LowerError;
use crate::dockerfile::{Located, ReadError};
use crate::store::StoreError;

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The Dockerfile could not be read.
    #[error(transparent)]
    Dockerfile(#[from] ReadError),
    /// The Dockerfile does not parse.
    #[error(transparent)]
    Syntax(#[from] Located<syntax::Error>),
    /// The build cannot be planned (unknown target, bad `--platform`, a cycle...).
    #[error(transparent)]
    Plan(#[from] Located<graph::Error>),
    /// An instruction BuildKit would reject while dispatching it.
    #[error("{file}:{line}: {source}")]
    Instruction {
        /// The Dockerfile's display name.
        file: String,
        /// The instruction's first line.
        line: usize,
        /// What is wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A step ran and failed; `message` is BuildKit's (`process "/bin/sh -c exit 3" did not complete
    /// successfully: exit code: 3`).
    #[error("{message}")]
    StepFailed {
        /// The vertex name (`[build 2/4] RUN make`).
        vertex: String,
        /// The Dockerfile's display name.
        file: String,
        /// The instruction's lines (first, last).
        lines: (usize, usize),
        /// The last lines the step printed, oldest first.
        logs: Vec<String>,
        /// What went wrong.
        message: String,
    },
    /// A base image could not be found or loaded.
    #[error("{reference}: {source}")]
    BaseImage {
        /// The image as the Dockerfile names it.
        reference: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The build context could not be read.
    #[error(transparent)]
    Context(Box<dyn std::error::Error + Send + Sync>),
    /// A layer could not be made.
    #[error("computing the layer diff")]
    Layer(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The image or cache store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The snapshotter failed.
    #[error(transparent)]
    Snapshot(#[from] kiln_snapshotter::Error),
    /// A file kiln itself reads or writes failed.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// An output could not be written.
    #[error("exporting to {target}")]
    Export {
        /// The output (`docker tarball app.tar`...).
        target: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The build was interrupted (Ctrl-C); nothing was stored.
    #[error("interrupted")]
    Interrupted,
    /// What the request asks is not supported by this version of kiln.
    #[error("{what} is not supported yet")]
    Unsupported {
        /// The feature.
        what: String,
    },
}

impl BuildError {
    /// An instruction error located at `line` of `file`.
    pub(crate) fn instruction(file: &str, line: usize, source: LowerError) -> BuildError {
        BuildError::Instruction {
            file: file.to_owned(),
            line,
            source: Box::new(source),
        }
    }
}
