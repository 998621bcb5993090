//! What can go wrong turning a node into an instruction, with BuildKit's wording.

use super::mount::MountError;
use super::suggest::did_you_mean;
pub(crate) use crate::go::go_quote;

/// An instruction that could not be read, and the line it starts on.
///
/// `Display` prints BuildKit's message only; callers add the location (`dockerfile parse error on
/// line 3: ...`) as they see fit.
#[derive(Debug)]
pub struct Error {
    line: usize,
    kind: ErrorKind,
}

impl Error {
    pub(crate) fn new(line: usize, kind: ErrorKind) -> Error {
        Error { line, kind }
    }

    /// The 1-based line the offending instruction starts on.
    pub fn line(&self) -> Option<usize> {
        Some(self.line)
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.kind.fmt(f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // The kind is this error's message, not a cause; its own cause (if any) is ours.
        std::error::Error::source(&self.kind)
    }
}

/// The kinds of [`Error`], one per BuildKit message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The keyword is not a Dockerfile instruction.
    #[error("unknown instruction: {keyword}{}", did_you_mean(suggestion.as_ref()))]
    UnknownInstruction {
        /// The keyword as written.
        keyword: String,
        /// The closest instruction name, if any is close.
        suggestion: Option<String>,
    },
    /// A flag this instruction does not take.
    #[error("unknown flag: {flag}{}", did_you_mean(suggestion.as_ref()))]
    UnknownFlag {
        /// The flag name with its `--`.
        flag: String,
        /// The closest flag this instruction takes, without `--`.
        suggestion: Option<String>,
    },
    /// A single-valued flag given twice.
    #[error("duplicate flag specified: {flag}")]
    DuplicateFlag {
        /// The flag name with its `--`.
        flag: String,
    },
    /// A flag that needs `=value` has none (or a boolean flag has an empty one).
    #[error("missing a value on flag: {flag}")]
    MissingFlagValue {
        /// The flag name with its `--`.
        flag: String,
    },
    /// A boolean flag with a value other than true or false.
    #[error("expecting boolean value for flag {flag}, not: {value}")]
    InvalidBoolFlag {
        /// The flag name with its `--`.
        flag: String,
        /// The value given.
        value: String,
    },
    /// The instruction needs arguments and has none.
    #[error("{instruction} requires at least one argument")]
    AtLeastOneArgument {
        /// The instruction, upper case.
        instruction: &'static str,
    },
    /// The instruction takes exactly one argument.
    #[error("{instruction} requires exactly one argument")]
    ExactlyOneArgument {
        /// The instruction, upper case.
        instruction: &'static str,
    },
    /// COPY or ADD with a single argument.
    #[error(
        "{instruction} requires at least two arguments, but only one was provided. Destination could not be determined"
    )]
    NoDestination {
        /// `COPY` or `ADD`.
        instruction: &'static str,
    },
    /// `FROM` with other than `image` or `image AS name`.
    #[error("FROM requires either one or three arguments")]
    FromArguments,
    /// A stage name that does not match `^[a-z][a-z0-9-_.]*$` (after lowercasing).
    #[error(
        "invalid name for build stage: {}, name can't start with a number or contain symbols",
        go_quote(name)
    )]
    InvalidStageName {
        /// The name as written.
        name: String,
    },
    /// `ONBUILD ONBUILD ...`.
    #[error("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")]
    OnbuildChain,
    /// `ONBUILD FROM` or `ONBUILD MAINTAINER`.
    #[error("{trigger} isn't allowed as an ONBUILD trigger")]
    OnbuildTrigger {
        /// The trigger instruction, upper case.
        trigger: String,
    },
    /// An ENV, LABEL or ARG with an empty name.
    #[error("{instruction} names can not be blank")]
    BlankName {
        /// The instruction, upper case.
        instruction: &'static str,
    },
    /// ENV or LABEL arguments that are not name/value/separator triples.
    #[error("Bad input to {instruction}, too many arguments")]
    TooManyArguments {
        /// The instruction, upper case.
        instruction: &'static str,
    },
    /// COPY or ADD whose destination is a heredoc.
    #[error("{instruction} cannot accept a heredoc as a destination")]
    HeredocDestination {
        /// `COPY` or `ADD`.
        instruction: &'static str,
    },
    /// `HEALTHCHECK NONE something`.
    #[error("HEALTHCHECK NONE takes no arguments")]
    HealthcheckNoneArguments,
    /// `HEALTHCHECK CMD` with no command.
    #[error("Missing command after HEALTHCHECK CMD")]
    HealthcheckMissingCommand,
    /// `HEALTHCHECK` followed by neither `CMD` nor `NONE`.
    #[error("Unknown type {} in HEALTHCHECK (try CMD)", go_quote(kind))]
    HealthcheckType {
        /// The word given, upper-cased.
        kind: String,
    },
    /// A HEALTHCHECK duration that Go's `time.ParseDuration` rejects.
    #[error(transparent)]
    Duration(#[from] super::duration::DurationError),
    /// A HEALTHCHECK duration above zero but below one millisecond.
    #[error("Interval {} cannot be less than 1ms", go_quote(flag))]
    IntervalTooShort {
        /// The flag name without `--`.
        flag: String,
    },
    /// A `--retries` value that is not a 32-bit integer.
    #[error("strconv.ParseInt: parsing {}: {}", go_quote(value), if *out_of_range { "value out of range" } else { "invalid syntax" })]
    InvalidRetries {
        /// The value given.
        value: String,
        /// Whether it was a number too large rather than no number.
        out_of_range: bool,
    },
    /// A negative `--retries`.
    #[error("--retries cannot be negative ({value})")]
    NegativeRetries {
        /// The value given.
        value: i64,
    },
    /// `VOLUME ""` or a blank JSON element.
    #[error("VOLUME specified can not be an empty string")]
    EmptyVolume,
    /// An instruction that only takes the JSON (exec) form, such as SHELL.
    #[error("{instruction} requires the arguments to be in JSON form")]
    NotJson {
        /// The instruction, upper case.
        instruction: &'static str,
    },
    /// `RUN --network` other than default, none or host.
    #[error("invalid network mode {}", go_quote(value))]
    InvalidNetwork {
        /// The value given.
        value: String,
    },
    /// `RUN --security` other than sandbox or insecure.
    #[error("security {} is not valid", go_quote(value))]
    InvalidSecurity {
        /// The value given.
        value: String,
    },
    /// A `RUN --mount` that does not parse.
    #[error(transparent)]
    Mount(#[from] MountError),
    /// A word the shell lexer rejects (`COPY --from='unterminated`).
    #[error(transparent)]
    Expand(#[from] crate::shell::Error),
    /// `COPY --from=$VAR`: the stage graph is static.
    #[error(
        "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround"
    )]
    FromVariable,
    /// A `--chmod` that is neither octal up to 07777 nor a symbolic mode.
    #[error("invalid chmod parameter: '{value}'. it should be octal string and between 0 and 07777")]
    InvalidChmod {
        /// The value given.
        value: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_buildkit() {
        let e = ErrorKind::UnknownInstruction {
            keyword: "RUNN".into(),
            suggestion: Some("RUN".into()),
        };
        assert_eq!(e.to_string(), "unknown instruction: RUNN (did you mean RUN?)");
        let e = ErrorKind::InvalidRetries {
            value: "x".into(),
            out_of_range: false,
        };
        assert_eq!(e.to_string(), r#"strconv.ParseInt: parsing "x": invalid syntax"#);
        let e = Error::new(4, ErrorKind::FromArguments);
        assert_eq!(e.to_string(), "FROM requires either one or three arguments");
        assert_eq!(e.line(), Some(4));
    }
}
