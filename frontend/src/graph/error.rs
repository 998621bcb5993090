//! What can go wrong planning the stage graph, with BuildKit's wording.

use super::platform::PlatformError;
use crate::instruction;
use crate::instruction::suggest::did_you_mean;

/// A Dockerfile that cannot be planned into a build graph.
///
/// `Display` prints BuildKit's message only; [`Error::line`] says where, when there is a place.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An instruction that does not parse.
    #[error(transparent)]
    Instruction(#[from] instruction::Error),
    /// The Dockerfile has no instruction at all.
    #[error("file with no instructions")]
    NoInstructions,
    /// The Dockerfile has global ARGs but no FROM.
    #[error("dockerfile contains no stages to build")]
    NoStages,
    /// An instruction other than ARG before the first FROM.
    #[error("no build stage in current context")]
    NoBuildStage {
        /// Its line.
        line: usize,
    },
    /// A FROM word whose variables cannot be expanded (`${X:?unset}`, bad syntax).
    #[error("{error}")]
    Expand {
        /// The lexer's error.
        error: crate::shell::Error,
        /// The FROM's line.
        line: usize,
    },
    /// A FROM whose image expands to nothing.
    #[error("base name ({base}) should not be blank")]
    BlankBaseName {
        /// The image as written.
        base: String,
        /// The FROM's line.
        line: usize,
    },
    /// A `FROM --platform` that expands to nothing.
    #[error("empty platform value from expression {expression}")]
    EmptyPlatform {
        /// The platform as written.
        expression: String,
        /// The FROM's line.
        line: usize,
    },
    /// A `FROM --platform` that is not a platform.
    #[error("failed to parse platform {expression}: {reason}")]
    InvalidPlatform {
        /// The platform as written.
        expression: String,
        /// Why it does not parse.
        reason: PlatformError,
        /// The FROM's line.
        line: usize,
    },
    /// `--target` names no stage.
    #[error("target stage {} could not be found{}", instruction::go_quote(target), did_you_mean(suggestion.as_ref()))]
    UnknownTarget {
        /// The target asked for.
        target: String,
        /// The closest stage name, if any.
        suggestion: Option<String>,
    },
    /// `COPY --from=N` with no stage N.
    #[error("invalid stage index {index}")]
    InvalidStageIndex {
        /// The index given.
        index: i64,
        /// The COPY's line.
        line: usize,
    },
    /// Stages that depend on each other.
    #[error("circular dependency detected on stage: {stage}")]
    CircularDependency {
        /// The stage the cycle was found from.
        stage: String,
        /// The line of the first instruction on the cycle.
        line: usize,
    },
    /// `COPY --from` a stage defined later in the file.
    #[error(
        "cannot copy from stage {}, it needs to be defined before current stage {}",
        instruction::go_quote(from),
        instruction::go_quote(stage)
    )]
    CopyFromLaterStage {
        /// The `--from` value.
        from: String,
        /// The copying stage.
        stage: String,
        /// The COPY's line.
        line: usize,
    },
    /// `RUN --mount=from=` a stage defined later in the file.
    #[error(
        "cannot mount from stage {} to {}, stage needs to be defined before current command",
        instruction::go_quote(from),
        instruction::go_quote(target)
    )]
    MountFromLaterStage {
        /// The `from=` value.
        from: String,
        /// The mount target.
        target: String,
        /// The RUN's line.
        line: usize,
    },
}

impl Error {
    /// The 1-based line the error is about, when it is about one.
    pub fn line(&self) -> Option<usize> {
        match self {
            Error::Instruction(e) => e.line(),
            Error::NoInstructions | Error::NoStages | Error::UnknownTarget { .. } => None,
            Error::NoBuildStage { line }
            | Error::Expand { line, .. }
            | Error::BlankBaseName { line, .. }
            | Error::EmptyPlatform { line, .. }
            | Error::InvalidPlatform { line, .. }
            | Error::InvalidStageIndex { line, .. }
            | Error::CircularDependency { line, .. }
            | Error::CopyFromLaterStage { line, .. }
            | Error::MountFromLaterStage { line, .. } => Some(*line),
        }
    }
}
