//! Finding and reading the Dockerfile of a build, as `docker build` does.
//!
//! `-f FILE` names it relative to the working directory, `-f -` reads it from standard input, and
//! without `-f` it is `Dockerfile` (or, failing that, `dockerfile`) at the root of the context. Errors
//! it reports carry the file's display name so a user sees which file was meant; [`Located`] pairs a
//! frontend error with that name and its line, and prints `<file>:<line>: <message>`.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where the Dockerfile comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerfileSource {
    /// `Dockerfile` (or `dockerfile`) at the root of the context.
    Default,
    /// A file, relative to the working directory.
    Path(PathBuf),
    /// Standard input (`-f -`).
    Stdin,
}

impl DockerfileSource {
    /// The source `docker build -f` means by `arg`: `-` is stdin, anything else a path.
    pub fn from_flag(arg: Option<&Path>) -> Self {
        match arg {
            None => DockerfileSource::Default,
            Some(p) if p.as_os_str() == "-" => DockerfileSource::Stdin,
            Some(p) => DockerfileSource::Path(p.to_path_buf()),
        }
    }
}

impl DockerfileSource {
    /// The file this source names for a build of `context`, without reading it (`None` for stdin).
    /// Its `<path>.dockerignore` is the ignore file that replaces the context's `.dockerignore`.
    pub fn path_in(&self, context: &Path) -> Option<PathBuf> {
        match self {
            DockerfileSource::Default => Some(default_path(context)),
            DockerfileSource::Path(path) => Some(path.clone()),
            DockerfileSource::Stdin => None,
        }
    }
}

/// `Dockerfile` in `context`, or `dockerfile`: Docker's CLI falls back to the lower-case name only
/// when the usual one is missing.
fn default_path(context: &Path) -> PathBuf {
    let upper = context.join("Dockerfile");
    let lower = context.join("dockerfile");
    if !upper.exists() && lower.exists() {
        lower
    } else {
        upper
    }
}

/// The Dockerfile's text and the name users know it by.
#[derive(Debug, Clone)]
pub struct DockerfileText {
    /// How errors name the file: the path as given, or `Dockerfile` for stdin.
    pub name: String,
    /// The file on disk, if it came from one (its `<name>.dockerignore` sits beside it).
    pub path: Option<PathBuf>,
    /// The raw bytes.
    pub bytes: Vec<u8>,
}

/// Why the Dockerfile could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file does not exist or cannot be read.
    #[error("failed to read dockerfile {}", path.display())]
    Io {
        /// The path tried.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Standard input could not be read.
    #[error("failed to read dockerfile from stdin")]
    Stdin(#[source] std::io::Error),
    /// The file exists but has no bytes at all (Docker: "the Dockerfile cannot be empty").
    #[error("{name}: the Dockerfile cannot be empty")]
    Empty {
        /// The file's display name.
        name: String,
    },
}

/// Read the Dockerfile `source` names, for a build whose context is `context`.
pub fn read(source: &DockerfileSource, context: &Path) -> Result<DockerfileText, ReadError> {
    let (name, path, bytes) = match source {
        DockerfileSource::Stdin => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(ReadError::Stdin)?;
            ("Dockerfile".to_owned(), None, bytes)
        }
        DockerfileSource::Path(path) => {
            let bytes = std::fs::read(path).map_err(|source| ReadError::Io {
                path: path.clone(),
                source,
            })?;
            (path.display().to_string(), Some(path.clone()), bytes)
        }
        DockerfileSource::Default => {
            let path = default_path(context);
            let bytes = std::fs::read(&path).map_err(|source| ReadError::Io {
                path: path.clone(),
                source,
            })?;
            (path.display().to_string(), Some(path), bytes)
        }
    };
    if bytes.is_empty() {
        return Err(ReadError::Empty { name });
    }
    Ok(DockerfileText { name, path, bytes })
}

/// A frontend error with the file and line it concerns; displays as `<file>:<line>: <message>`.
#[derive(Debug)]
pub struct Located<E> {
    /// The Dockerfile's display name.
    pub file: String,
    /// The 1-based line, when the error has one.
    pub line: Option<usize>,
    /// The error itself.
    pub error: E,
}

impl<E: fmt::Display> fmt::Display for Located<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.error),
            None => write!(f, "{}: {}", self.file, self.error),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for Located<E> {}

impl DockerfileText {
    /// Parse the text into a syntax tree, locating any error in this file.
    pub fn parse(&self) -> Result<kiln_frontend::syntax::Dockerfile, Located<kiln_frontend::syntax::Error>> {
        kiln_frontend::syntax::parse(&self.bytes).map_err(|error| Located {
            file: self.name.clone(),
            line: error.line(),
            error,
        })
    }
}
