//! `kiln import` (`kiln image import`): a root filesystem tarball as a one-layer image.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use kiln_builder::archive::{self, ImportOptions};
use kiln_builder::store::ImageStore;

use crate::Global;
use crate::images::parse_tag;

/// `kiln import [OPTIONS] FILE|- [REPOSITORY[:TAG]]`
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The tarball (plain, gzip or zstd), or `-` for standard input.
    file: PathBuf,
    /// The image's name.
    reference: Option<String>,
    /// Apply a Dockerfile instruction to the image's config (CMD, ENTRYPOINT, ENV, EXPOSE,
    /// LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR).
    #[arg(short, long, value_name = "INSTRUCTION")]
    change: Vec<String>,
    /// Set the commit message of the image.
    #[arg(short, long)]
    message: Option<String>,
    /// The image's platform, os[/arch[/variant]] (default: this machine's).
    #[arg(long)]
    platform: Option<String>,
}

pub(crate) fn run(args: &Args, global: &Global) -> Result<()> {
    let source = args.file.to_string_lossy().into_owned();
    if source.starts_with("http://") || source.starts_with("https://") {
        bail!("importing from a URL is not supported: download the file and import it");
    }
    let names = args.reference.as_deref().map(parse_tag).transpose()?;
    let options = ImportOptions {
        changes: args.change.clone(),
        message: args.message.clone(),
        platform: args.platform.clone(),
        source: source.clone(),
    };
    let store = ImageStore::open(&global.root())?;
    let names: Vec<_> = names.into_iter().collect();
    let image = if source == "-" {
        archive::import(&store, std::io::stdin(), &names, &options)
    } else {
        let file = std::fs::File::open(&args.file).with_context(|| format!("open {source}"))?;
        archive::import(&store, std::io::BufReader::new(file), &names, &options)
    }
    .context("failed to import")?;
    writeln!(std::io::stdout().lock(), "{}", image.id)?;
    Ok(())
}
