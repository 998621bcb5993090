//! `kiln debug`: what kiln sees of the inputs of a build.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::Result;
use kiln_builder::context::{Context, IgnoreSource};
use kiln_builder::dockerfile::{self, DockerfileSource};

/// The `debug` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Print the Dockerfile's syntax tree in BuildKit's s-expression form.
    Ast {
        /// The Dockerfile (`-` for standard input).
        file: PathBuf,
    },
    /// Print the paths of the build context that COPY and ADD see, one per line.
    ///
    /// The order is the walk's (depth-first, names sorted bytewise, a directory's contents right
    /// after it); the paths are those of `find CONTEXT -mindepth 1` minus what the ignore file
    /// excludes.
    Context {
        /// The Dockerfile (default: CONTEXT/Dockerfile); its `<name>.dockerignore`, if present,
        /// replaces CONTEXT/.dockerignore. `-` (standard input) uses CONTEXT/.dockerignore.
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: Option<PathBuf>,
        /// The build context directory.
        context: PathBuf,
    },
}

pub(crate) fn run(cmd: &Command) -> Result<()> {
    match cmd {
        Command::Ast { file } => ast(file),
        Command::Context { file, context: dir } => context(file.as_deref(), dir),
    }
}

#[allow(clippy::print_stdout)]
fn ast(file: &std::path::Path) -> Result<()> {
    let source = DockerfileSource::from_flag(Some(file));
    let text = dockerfile::read(&source, std::path::Path::new("."))?;
    let tree = text.parse()?;
    println!("{}", tree.dump());
    Ok(())
}

fn context(file: Option<&Path>, dir: &Path) -> Result<()> {
    let dockerfile = DockerfileSource::from_flag(file).path_in(dir);
    let context = Context::builder(dir)
        .ignore(IgnoreSource::for_dockerfile(dockerfile.as_deref()))
        .open()?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = context.entries().iter().try_for_each(|entry| {
        out.write_all(entry.path().as_os_str().as_bytes())?;
        out.write_all(b"\n")
    });
    match written.and_then(|()| out.flush()) {
        // `kiln debug context . | head` is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
