//! Unpacking the images `pull`, `load` and `import` store, as containerd unpacks on pull: each
//! layer goes into the snapshot a build `FROM` the image starts from (see
//! [`Builder::unpack`]), so that build has no unpacking left to do.
//!
//! The image is named in the store first; unpacking is work done ahead of time, since a build
//! unpacks at `FROM` whatever it finds missing. So an unpack that fails neither fails the command
//! nor loses the image: kiln says so on stderr and exits 0.
//!
//! ```text
//! warning: image app:1 could not be unpacked: <why>; it will be unpacked when a build uses it
//! ```
//!
//! The unpacked layers are build cache, as those a build unpacks: `kiln builder du` lists them
//! and `kiln system df` counts them in its Build Cache row (the Images row counts the compressed
//! blobs only, so that is where the unpacked bytes show); `kiln builder prune` keeps them while a
//! stored image refers to them, and `--all` removes them (a later build unpacks them again).

use std::io::Write;

use kiln_builder::solver::{BuildError, Builder};
use kiln_builder::store::Image;

/// Unpacks `image`, which `label` names for the user; a failure is a warning on stderr.
pub(crate) fn unpack_stored(builder: &Builder, image: &Image, label: &str) {
    let Err(error) = builder.unpack(image) else {
        return;
    };
    // The library's error about the image names it too: say the name once.
    let cause = match error {
        BuildError::BaseImage { source, .. } => anyhow::Error::from_boxed(source),
        other => anyhow::Error::from(other),
    };
    // Nothing better to do if stderr is gone.
    let _ = writeln!(
        std::io::stderr().lock(),
        "warning: image {label} could not be unpacked: {cause:#}; it will be unpacked when a build uses it"
    );
}
