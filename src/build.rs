//! `kiln build`.

use std::path::PathBuf;

use anyhow::Result;

/// `kiln build [OPTIONS] CONTEXT`
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The build context: a directory.
    context: PathBuf,
}

pub(crate) fn run(args: &Args) -> Result<()> {
    anyhow::bail!("building {} is not supported yet", args.context.display())
}
