//! `kiln push`: a stored image to a registry, saying what it does as `docker push`.
//!
//! ```text
//! $ kiln push localhost:5000/app:1
//! The push refers to repository [localhost:5000/app]
//! 5f70bf18a086: Pushed
//! 1: digest: sha256:… size: 528
//! ```
//!
//! The last line goes to stdout (it is the data: the digest the tag now names), the rest to
//! stderr (see [`progress`](crate::progress)); `-q` prints the full name alone, as Docker's does.
//! Blobs the repository has are skipped (`Layer already exists`); blobs of an image also named in
//! another repository of the same registry are mounted from it (`Mounted from app`).

use std::io::Write;

use anyhow::{Result, bail};
use kiln_builder::distribution::push_image;
use kiln_builder::reference::{DEFAULT_TAG, ImageRef};
use kiln_builder::store::{ImageStore, StoreError};

use crate::Global;
use crate::progress::{Blobs, Messages, Mode, Transfer};
use crate::pull::is_name_only;
use crate::remote::{RegistryArgs, block_on};

/// `kiln push [OPTIONS] NAME[:TAG]`
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The image's name, with an optional tag (default `latest`).
    name: String,
    /// Print only the image's full name.
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub(crate) fn run(args: &Args, global: &Global) -> Result<()> {
    let destination: ImageRef = args.name.parse()?;
    if destination.digest().is_some() {
        bail!("cannot push a digest reference");
    }
    let name = destination.to_string();
    let client = args.registry.client()?;
    let store = ImageStore::open(&global.root())?;
    match store.resolve(&name) {
        Ok(image) if image.names.contains(&destination) => {}
        Ok(_) | Err(StoreError::ImageNotFound { .. }) => {
            bail!(
                "An image does not exist locally with the tag: {}",
                destination.familiar()
            );
        }
        Err(error) => return Err(error.into()),
    }
    let mut messages = Messages::new(args.quiet);
    if is_name_only(&args.name) {
        messages.say(&format!("Using default tag: {DEFAULT_TAG}"));
    }
    messages.say(&format!("The push refers to repository [{}]", destination.name()));

    let reporter = Blobs::new(Transfer::Push, Mode::detect(args.quiet));
    let pushed = block_on(push_image(&store, &client, &name, &destination, &reporter))??;
    drop(reporter);

    let mut out = std::io::stdout().lock();
    if args.quiet {
        writeln!(out, "{destination}")?;
    } else {
        let tag = destination.tag().unwrap_or(DEFAULT_TAG);
        writeln!(out, "{tag}: digest: {} size: {}", pushed.digest, pushed.size)?;
    }
    Ok(())
}
