//! `kiln pull`: an image from a registry into the store, saying what it does as `docker pull`.
//!
//! ```text
//! $ kiln pull busybox
//! Using default tag: latest
//! latest: Pulling from library/busybox
//! 9ad63333ebc9: Pull complete
//! Digest: sha256:…
//! Status: Downloaded newer image for busybox:latest
//! docker.io/library/busybox:latest
//! ```
//!
//! Only the last line (the full name) goes to stdout, the rest to stderr (see
//! [`progress`](crate::progress)); `-q` prints the name alone. A second pull of an unchanged image
//! lists no layers and says `Status: Image is up to date for busybox:latest`.
//!
//! Once stored, the image is unpacked into the snapshots a build `FROM` it uses, before the
//! `Digest:` line, as containerd does on pull; failing that is a warning, not an error (see
//! [`unpack`](crate::unpack)).

use std::io::Write;

use anyhow::Result;
use kiln_builder::distribution::pull_image;
use kiln_builder::platform;
use kiln_builder::reference::{DEFAULT_TAG, ImageRef};
use kiln_builder::registry::Platform;
use kiln_builder::solver::Builder;
use kiln_builder::store::ImageStore;

use crate::Global;
use crate::progress::{Blobs, Messages, Mode, Transfer};
use crate::remote::{RegistryArgs, block_on};

/// `kiln pull [OPTIONS] NAME[:TAG|@DIGEST]`
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The image: a name with an optional tag (default `latest`) or digest.
    name: String,
    /// Print only the image's full name.
    #[arg(short, long)]
    quiet: bool,
    /// The platform to pull from a multi-platform image, os[/arch[/variant]] (default: this
    /// machine's).
    #[arg(long)]
    platform: Option<String>,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub(crate) fn run(args: &Args, global: &Global) -> Result<()> {
    let reference: ImageRef = args.name.parse()?;
    let host = platform::host();
    let platform = match &args.platform {
        Some(text) => Platform::parse(text, &host)?,
        None => host,
    };
    let client = args.registry.client()?;
    let builder = Builder::open(global.root())?;
    let store = builder.store();
    let mut messages = Messages::new(args.quiet);
    if is_name_only(&args.name) {
        messages.say(&format!("Using default tag: {DEFAULT_TAG}"));
    }
    let wanted = reference.digest().map_or_else(
        || reference.tag().unwrap_or(DEFAULT_TAG).to_owned(),
        ToString::to_string,
    );
    messages.say(&format!("{wanted}: Pulling from {}", reference.path()));

    let before = target_of(store, &reference);
    let content = store.content();
    let reporter = Blobs::new(Transfer::Pull, Mode::detect(args.quiet))
        .skip_stored(|digest| content.exists(digest).unwrap_or(false));
    let image = block_on(pull_image(store, &client, &reference, &platform, &reporter))??;
    drop(reporter);
    crate::unpack::unpack_stored(&builder, &image, &reference.familiar_string());

    let after = image.target.digest().to_string();
    messages.say(&format!("Digest: {after}"));
    let status = if before.as_deref() == Some(after.as_str()) {
        "Image is up to date for"
    } else {
        "Downloaded newer image for"
    };
    messages.say(&format!("Status: {status} {}", reference.familiar_string()));
    writeln!(std::io::stdout().lock(), "{reference}")?;
    Ok(())
}

/// Whether the user named neither tag nor digest (Docker then says which tag it uses).
pub(crate) fn is_name_only(name: &str) -> bool {
    let last = name.rsplit('/').next().unwrap_or(name);
    !last.contains(':') && !name.contains('@')
}

/// The digest `reference` names in the store now (the manifest or index it was pulled as).
fn target_of(store: &ImageStore, reference: &ImageRef) -> Option<String> {
    let image = store.resolve(&reference.to_string()).ok()?;
    image
        .names
        .contains(reference)
        .then(|| image.target.digest().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_alone_has_no_tag_nor_digest() {
        assert!(is_name_only("busybox"));
        assert!(is_name_only("localhost:5000/team/app"));
        assert!(!is_name_only("localhost:5000/app:1"));
        assert!(!is_name_only("busybox@sha256:abc"));
    }
}
