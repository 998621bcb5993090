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
    Syntax(Box<Located<syntax::Error>>),
    /// The build cannot be planned (unknown target, bad `--platform`, a cycle...).
    #[error(transparent)]
    Plan(Box<Located<graph::Error>>),
    /// An instruction BuildKit would reject while dispatching it: `Dockerfile:3: <what is wrong>`.
    /// The cause is part of this message (like [`Located`]), not a `source`, so it is said once.
    #[error("{file}:{line}: {cause}")]
    Instruction {
        /// The Dockerfile's display name.
        file: String,
        /// The instruction's first line.
        line: usize,
        /// What is wrong.
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A step ran and failed; the message is BuildKit's (`process "/bin/sh -c exit 3" did not
    /// complete successfully: exit code: 3`).
    #[error("{}", .0.message)]
    StepFailed(Box<StepFailure>),
    /// A base image could not be found or loaded (the cause is the source, said once).
    #[error("{reference}")]
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

/// A step that ran and failed, with what a user needs to see why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailure {
    /// The vertex name (`[build 2/4] RUN make`).
    pub vertex: String,
    /// The Dockerfile's display name.
    pub file: String,
    /// The instruction's lines (first, last).
    pub lines: (usize, usize),
    /// The last lines the step printed, oldest first.
    pub logs: Vec<String>,
    /// The Dockerfile around the instruction: its lines and two on each side, numbered from 1.
    pub excerpt: Vec<(usize, String)>,
    /// What went wrong.
    pub message: String,
}

impl From<Located<syntax::Error>> for BuildError {
    fn from(error: Located<syntax::Error>) -> BuildError {
        BuildError::Syntax(Box::new(error))
    }
}

impl From<Located<graph::Error>> for BuildError {
    fn from(error: Located<graph::Error>) -> BuildError {
        BuildError::Plan(Box::new(error))
    }
}

impl BuildError {
    /// A step failure whose vertex and lines the scheduler fills in.
    pub(crate) fn step(message: String, logs: Vec<String>) -> BuildError {
        BuildError::StepFailed(Box::new(StepFailure {
            vertex: String::new(),
            file: String::new(),
            lines: (0, 0),
            logs,
            excerpt: Vec::new(),
            message,
        }))
    }

    /// An instruction error located at `line` of `file`.
    pub(crate) fn instruction(file: &str, line: usize, source: LowerError) -> BuildError {
        BuildError::Instruction {
            file: file.to_owned(),
            line,
            cause: Box::new(source),
        }
    }
}

/// An error and its sources, joined by `: ` (as the CLI prints a chain), for a message that must
/// carry its causes in one string.
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The lines `first - 2 ..= last + 2` of a Dockerfile (clamped to the file), numbered from 1.
pub(crate) fn excerpt(text: &[u8], (first, last): (usize, usize)) -> Vec<(usize, String)> {
    if first == 0 {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(text);
    let from = first.saturating_sub(2).max(1);
    text.lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line))
        .skip(from - 1)
        .take_while(|(number, _)| *number <= last + 2)
        .map(|(number, line)| (number, line.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn excerpts_keep_two_lines_around_and_stay_in_the_file() {
        let text = b"FROM a\nRUN one\nRUN two \\\n  more\nCMD x\nUSER y\nENV z=1\n";
        let numbers = |lines| {
            super::excerpt(text, lines)
                .into_iter()
                .map(|(n, _)| n)
                .collect::<Vec<_>>()
        };
        assert_eq!(numbers((3, 4)), [1, 2, 3, 4, 5, 6]);
        assert_eq!(numbers((1, 1)), [1, 2, 3]);
        assert_eq!(numbers((7, 7)), [5, 6, 7]);
        assert_eq!(super::excerpt(text, (2, 2))[1], (2, "RUN one".to_owned()));
        assert!(super::excerpt(text, (0, 0)).is_empty());
    }
}
