//! Why an instruction could not be lowered, in BuildKit's words.

use kiln_frontend::{instruction, shell};

/// An instruction BuildKit would reject while dispatching it. The caller adds the file and line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum LowerError {
    /// A word did not expand (`${X:?must be set}`, an unterminated quote...).
    #[error(transparent)]
    Expand(shell::Error),
    /// An EXPOSE entry without a port (`/tcp`).
    #[error("no port specified: {spec}<empty>")]
    NoPort {
        /// The entry.
        spec: String,
    },
    /// An EXPOSE protocol other than tcp, udp and sctp.
    #[error("invalid proto: {proto}")]
    InvalidProto {
        /// The protocol given.
        proto: String,
    },
    /// An EXPOSE entry with a host IP that does not parse.
    #[error("invalid IP address: {ip}")]
    InvalidIp {
        /// The address given.
        ip: String,
    },
    /// An EXPOSE port or range that does not parse.
    #[error("invalid containerPort: {port}")]
    InvalidContainerPort {
        /// The port given.
        port: String,
    },
    /// An EXPOSE host port or range that does not parse.
    #[error("invalid hostPort: {port}")]
    InvalidHostPort {
        /// The port given.
        port: String,
    },
    /// An EXPOSE host range whose length differs from the container range.
    #[error("invalid ranges specified for container and host Ports: {container} and {host}")]
    PortRanges {
        /// The container range.
        container: String,
        /// The host range.
        host: String,
    },
    /// `VOLUME ""`.
    #[error("VOLUME specified can not be an empty string")]
    EmptyVolume,
    /// A STOPSIGNAL that names no signal.
    #[error("invalid signal: {signal}")]
    InvalidSignal {
        /// The value given.
        signal: String,
    },
    /// A `--chmod` that is neither octal nor symbolic, after expansion.
    #[error(transparent)]
    Chmod(instruction::ErrorKind),
    /// `--checksum` with several sources.
    #[error("checksum can't be specified for multiple sources")]
    ChecksumMultipleSources,
    /// `--checksum` for a local source.
    #[error("checksum requires HTTP(S) or Git sources")]
    ChecksumNeedsRemote,
    /// A URL in COPY.
    #[error("source can't be a URL for COPY")]
    UrlInCopy,
    /// A git reference in COPY.
    #[error("source can't be a git ref for COPY")]
    GitInCopy,
    /// An ONBUILD trigger that does not parse.
    #[error("failed to parse ONBUILD trigger {expression:?}: {reason}")]
    Trigger {
        /// The trigger as stored in the base image.
        expression: String,
        /// The parser's message.
        reason: String,
    },
    /// FROM inside a stage (the planner splits stages at FROM, so only a malformed trigger gets here).
    #[error("FROM is not allowed here")]
    FromInStage,
}
