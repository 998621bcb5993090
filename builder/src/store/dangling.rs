//! Dangling images: images with no name of their own, which Docker lists as `<none>:<none>`.
//!
//! The store keeps an image only while a name points at it. An image that arrives without a name
//! (`kiln import FILE`, or an archive that names none of its images) must still outlive the
//! command that made it, until the user tags it or prunes it, as Docker's dangling images do. It
//! gets a *dangling name*: `kiln.invalid/dangling@<target digest>`. The `.invalid` top-level
//! domain is reserved (RFC 2606), so the name cannot collide with a real one, and a registry
//! client refuses to contact it. Commands show such a name as `<none>`; `image prune` removes
//! exactly these; and an image that is given a real name loses its dangling one
//! ([`ImageStore::put_image_or_dangling`], [`ImageStore::drop_dangling_names`]).
//!
//! ```
//! use kiln_builder::content::Digest;
//! use kiln_builder::store::{dangling_name, is_dangling};
//!
//! let name = dangling_name(&Digest::of(b"manifest"));
//! assert!(is_dangling(&name));
//! assert!(!is_dangling(&"busybox".parse()?));
//! # Ok::<(), kiln_builder::reference::ReferenceError>(())
//! ```

use super::{Image, ImageStore, StoreError};
use crate::content::Digest;
use crate::reference::ImageRef;

/// The registry domain of dangling names: reserved, so no real image lives there.
const DANGLING_DOMAIN: &str = "kiln.invalid";
/// The repository path of dangling names.
const DANGLING_PATH: &str = "dangling";

/// The dangling name of the image whose manifest or index is `target`.
pub fn dangling_name(target: &Digest) -> ImageRef {
    ImageRef::parse(&format!("{DANGLING_DOMAIN}/{DANGLING_PATH}@{target}"))
        .expect("a reserved domain, a lowercase path and a valid digest make a reference")
}

/// Whether `name` is a dangling name rather than one a user gave (a user may tag into the
/// reserved domain, but never by digest alone: `tag` refuses digest names).
pub fn is_dangling(name: &ImageRef) -> bool {
    name.domain() == DANGLING_DOMAIN
        && name.path() == DANGLING_PATH
        && name.tag().is_none()
        && name.digest().is_some()
}

impl ImageStore {
    /// Stores an image like [`put_image`](ImageStore::put_image), under `names`, or under its
    /// dangling name when `names` is empty. Given real names, the image loses any dangling name
    /// it had; the returned image lists the names it has afterwards.
    pub fn put_image_or_dangling(&self, names: &[ImageRef], manifest: &[u8]) -> Result<Image, StoreError> {
        if names.is_empty() {
            let name = dangling_name(&Digest::of(manifest));
            return self.put_image(&[name], manifest);
        }
        let image = self.put_image(names, manifest)?;
        self.drop_dangling_names(image)
    }

    /// Removes the dangling names of an image that also has a real one (after `tag`, say), and
    /// returns the image with the names it keeps. An image with only dangling names is left alone.
    pub fn drop_dangling_names(&self, mut image: Image) -> Result<Image, StoreError> {
        if image.names.iter().all(is_dangling) {
            return Ok(image);
        }
        for name in image.names.iter().filter(|name| is_dangling(name)) {
            match self.untag(name) {
                // Another process dropped it first: the outcome is the same.
                Ok(()) | Err(StoreError::ImageNotFound { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        image.names.retain(|name| !is_dangling(name));
        Ok(image)
    }
}
