//! `kiln import` (`kiln image import`): a root filesystem tarball as a one-layer image.
//!
//! The image is then unpacked into the snapshot a build `FROM` it uses, before its ID is printed;
//! failing that is a warning, not an error (see [`unpack`](crate::unpack)).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use kiln_builder::archive::{self, ImportOptions};
use kiln_builder::reference::ImageRef;
use kiln_builder::solver::Builder;

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
    let builder = Builder::open(global.root())?;
    let store = builder.store();
    let names: Vec<_> = names.into_iter().collect();
    let image = if source == "-" {
        archive::import(store, std::io::stdin(), &names, &options)
    } else {
        let file = std::fs::File::open(&args.file).with_context(|| format!("open {source}"))?;
        archive::import(store, std::io::BufReader::new(file), &names, &options)
    }
    .context("failed to import")?;
    let label = names
        .first()
        .map_or_else(|| image.id.to_string(), ImageRef::familiar_string);
    crate::unpack::unpack_stored(&builder, &image, &label);
    writeln!(std::io::stdout().lock(), "{}", image.id)?;
    Ok(())
}
