//! `kiln image`: the image commands under one group, as `docker image` has them.

use anyhow::Result;

use crate::{Global, history, images, import, inspect, load, prune, rmi, save, tag};

/// The `image` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// List images.
    #[command(alias = "list")]
    Ls(images::Args),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(tag::Args),
    /// Remove one or more images.
    #[command(alias = "remove")]
    Rm(rmi::Args),
    /// Remove unused images.
    Prune(prune::Args),
    /// Display detailed information on one or more images.
    Inspect(inspect::Args),
    /// Show the history of an image.
    History(history::Args),
    /// Save one or more images to a tar archive (streamed to STDOUT by default).
    Save(save::Args),
    /// Load images from a tar archive or STDIN.
    Load(load::Args),
    /// Import the contents from a tarball to create a filesystem image.
    Import(import::Args),
}

pub(crate) fn run(cmd: &Command, global: &Global) -> Result<()> {
    match cmd {
        Command::Ls(args) => images::run(args, global),
        Command::Tag(args) => tag::run(args, global),
        Command::Rm(args) => rmi::run(args, global),
        Command::Prune(args) => prune::run(args, global),
        Command::Inspect(args) => inspect::run(args, global),
        Command::History(args) => history::run(args, global),
        Command::Save(args) => save::run(args, global),
        Command::Load(args) => load::run(args, global),
        Command::Import(args) => import::run(args, global),
    }
}
