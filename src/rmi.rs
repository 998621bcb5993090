//! `kiln rmi` (`kiln image rm`): remove names, and images with their last name.

use std::io::Write;
use std::time::Duration;

use anyhow::{Result, bail};
use kiln_builder::store::{GcOptions, ImageStore, Removal, is_dangling};

use crate::{Global, report};

/// `kiln rmi [OPTIONS] IMAGE [IMAGE...]`
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Images: names or IDs (prefixes).
    #[arg(required = true)]
    images: Vec<String>,
    /// Remove an image by ID even when it has names in several repositories.
    #[arg(short, long)]
    force: bool,
    /// Do not delete untagged parents (kiln images have none; accepted for compatibility).
    #[arg(long)]
    no_prune: bool,
}

pub(crate) fn run(args: &Args, global: &Global) -> Result<()> {
    let store = ImageStore::open(&global.root())?;
    let mut failed = 0;
    let mut changed = false;
    let mut out = std::io::stdout().lock();
    for name in &args.images {
        match store.remove(name, args.force) {
            Ok(removal) => {
                changed = true;
                print_removal(&mut out, &removal, "Untagged", "Deleted")?;
            }
            Err(error) => {
                failed += 1;
                report(&error.into());
            }
        }
    }
    if changed {
        collect(&store)?;
    }
    if failed > 0 {
        bail!("{failed} of {} images could not be removed", args.images.len());
    }
    Ok(())
}

/// Prints `Untagged: name` for each name a user gave, then `Deleted: id` if the image went.
pub(crate) fn print_removal(
    out: &mut impl Write,
    removal: &Removal,
    untagged: &str,
    deleted: &str,
) -> Result<()> {
    for name in removal.untagged.iter().filter(|name| !is_dangling(name)) {
        writeln!(out, "{untagged}: {}", name.familiar_string())?;
    }
    if let Some(id) = &removal.deleted {
        writeln!(out, "{deleted}: {id}")?;
    }
    Ok(())
}

/// Reclaims the blobs no image uses any more, right away.
///
/// No grace period: every kiln writer (build, pull, load, import) holds a lease on its blobs
/// until they are named, so nothing unnamed and unleased is on its way to becoming an image.
pub(crate) fn collect(store: &ImageStore) -> Result<u64> {
    let options = GcOptions {
        grace: Duration::ZERO,
        ..GcOptions::default()
    };
    Ok(store.gc(&options)?.bytes_reclaimed)
}
