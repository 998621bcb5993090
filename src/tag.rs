//! `kiln tag SOURCE TARGET`: another name for an image.

use anyhow::Result;
use kiln_builder::store::ImageStore;

use crate::Global;
use crate::images::parse_tag;

/// `kiln tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]`
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The image: a name or an ID (prefix).
    source: String,
    /// The new name.
    target: String,
}

pub(crate) fn run(args: &Args, global: &Global) -> Result<()> {
    let target = parse_tag(&args.target)?;
    let store = ImageStore::open(&global.root())?;
    let image = store.tag(&args.source, &target)?;
    store.drop_dangling_names(image)?;
    Ok(())
}
