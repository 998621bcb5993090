//! `kiln load` (`kiln image load`): images from a `docker save` tarball or an OCI archive.
//!
//! ```text
//! $ kiln load -i busybox.tar
//! 9ad63333ebc9: Load complete
//! Loaded image: busybox:latest
//! ```
//!
//! Layer lines go to stderr (bars on a terminal, a line per layer otherwise; see
//! [`progress`](crate::progress)), `Loaded image: …` to stdout; `-q` prints the IDs alone.
//!
//! Each image loaded is then unpacked into the snapshots a build `FROM` it uses, as containerd
//! does on load, before its `Loaded image:` lines; failing that is a warning, not an error (see
//! [`unpack`](crate::unpack)).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use kiln_builder::archive;
use kiln_builder::reference::ImageRef;
use kiln_builder::solver::Builder;

use crate::Global;
use crate::progress::{Direction, Layers, Mode};

/// `kiln load [OPTIONS]`
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Read from a tar archive file (plain, gzip or zstd), instead of standard input.
    #[arg(short, long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Print only the IDs of the loaded images.
    #[arg(short, long)]
    quiet: bool,
}

pub(crate) fn run(args: &Args, global: &Global) -> Result<()> {
    let builder = Builder::open(global.root())?;
    let store = builder.store();
    let reporter = Layers::new(Direction::Load, Mode::detect(args.quiet));
    let loaded = if let Some(path) = &args.input {
        let file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
        archive::load(store, std::io::BufReader::new(file), &reporter)
    } else {
        if std::io::stdin().is_terminal() {
            bail!("requested load from stdin, but stdin is empty");
        }
        archive::load(store, std::io::stdin(), &reporter)
    };
    // The bars settle into plain lines before anything else prints.
    drop(reporter);
    let loaded = loaded.context("failed to load images")?;
    let mut out = std::io::stdout().lock();
    for item in &loaded {
        let label = item
            .names
            .first()
            .map_or_else(|| item.image.id.to_string(), ImageRef::familiar_string);
        crate::unpack::unpack_stored(&builder, &item.image, &label);
        if args.quiet {
            writeln!(out, "{}", item.image.id)?;
        } else if item.names.is_empty() {
            writeln!(out, "Loaded image ID: {}", item.image.id)?;
        } else {
            for name in &item.names {
                writeln!(out, "Loaded image: {}", name.familiar_string())?;
            }
        }
    }
    Ok(())
}
