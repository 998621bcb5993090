//! `kiln debug`: what kiln sees of the inputs of a build.

use std::path::PathBuf;

use anyhow::Result;
use kiln_builder::dockerfile::{self, DockerfileSource};

/// The `debug` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Print the Dockerfile's syntax tree in BuildKit's s-expression form.
    Ast {
        /// The Dockerfile (`-` for standard input).
        file: PathBuf,
    },
}

pub(crate) fn run(cmd: &Command) -> Result<()> {
    match cmd {
        Command::Ast { file } => ast(file),
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
