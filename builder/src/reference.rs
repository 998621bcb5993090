//! Image references as Docker reads them: `nginx` means `docker.io/library/nginx:latest`.
//!
//! A reference names an image in a registry: `[domain/]path[:tag][@digest]`. [`ImageRef::parse`]
//! follows Docker's `ParseNormalizedNamed` (distribution/reference) to the letter, including its
//! error messages, then adds the default tag `latest` when neither tag nor digest is given:
//!
//! - the first `/`-separated part is a *domain* when it contains `.` or `:`, is `localhost`, or has
//!   uppercase letters; otherwise the reference is on Docker Hub (`docker.io`), and a one-part Hub
//!   path gets the `library/` prefix of official images. `index.docker.io` becomes `docker.io`.
//! - the *path* is lowercase components (`[a-z0-9]+` joined by `.`, `_`, `__` or dashes), split by
//!   `/`, at most 255 characters.
//! - a *tag* is `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`; a *digest* is `sha256:<64 lowercase hex>`.
//!   Both may be given (`name:tag@digest`): the digest identifies the image, the tag is kept
//!   for display.
//!
//! A reference always has a domain and a path; [`ImageRef::familiar`] gives the short form
//! `docker images` shows, and [`Display`](fmt::Display) the full, canonical one.
//!
//! This module depends on nothing in kiln but [`Digest`].
//!
//! ```
//! use kiln_builder::reference::ImageRef;
//!
//! let r: ImageRef = "nginx".parse()?;
//! assert_eq!(r.to_string(), "docker.io/library/nginx:latest");
//! assert_eq!((r.domain(), r.path(), r.tag()), ("docker.io", "library/nginx", Some("latest")));
//! assert_eq!(r.familiar(), "nginx");
//!
//! let r: ImageRef = "localhost:5000/app:1".parse()?;
//! assert_eq!(r.familiar_string(), "localhost:5000/app:1");
//!
//! let e = "Nginx".parse::<ImageRef>().unwrap_err();
//! assert_eq!(e.to_string(), "invalid reference format: repository name (library/Nginx) must be lowercase");
//! # Ok::<(), kiln_builder::reference::ReferenceError>(())
//! ```

use std::fmt;
use std::str::FromStr;

use crate::content::{Digest, DigestError};

/// Docker Hub's domain in references.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The legacy Hub domain, normalised to [`DEFAULT_DOMAIN`].
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// The namespace of Docker Hub's official images.
const OFFICIAL_REPO_PREFIX: &str = "library/";
/// The tag a reference without tag or digest gets.
pub const DEFAULT_TAG: &str = "latest";
/// The longest repository path accepted, in bytes.
pub const PATH_MAX_LEN: usize = 255;
/// The longest tag accepted, in bytes.
const TAG_MAX_LEN: usize = 128;

/// A parsed, normalised image reference: domain, path, and a tag and/or a digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why a string is not an image reference. Messages are Docker's, word for word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The string does not follow the reference grammar.
    #[error("invalid reference format")]
    InvalidFormat {
        /// The rejected input.
        reference: String,
    },
    /// The repository part (after domain normalisation) has uppercase letters.
    #[error("invalid reference format: repository name ({repository}) must be lowercase")]
    RepositoryNotLowercase {
        /// The rejected input.
        reference: String,
        /// The repository as Docker reports it, such as `library/Nginx`.
        repository: String,
    },
    /// The reference would be valid lowercased (uppercase in a place the first check missed).
    #[error("repository name must be lowercase")]
    NameContainsUppercase {
        /// The rejected input.
        reference: String,
    },
    /// 64 hex digits look like an image ID, so Docker refuses them as a name.
    #[error("invalid repository name ({reference}), cannot specify 64-byte hexadecimal strings")]
    IdentifierAsName {
        /// The rejected input.
        reference: String,
    },
    /// The repository path is longer than [`PATH_MAX_LEN`].
    #[error("repository name must not be more than 255 characters")]
    NameTooLong {
        /// The rejected input.
        reference: String,
    },
    /// A tag given on its own (as to [`ImageRef::with_tag`]) is not a valid tag.
    #[error("invalid tag format")]
    InvalidTag {
        /// The rejected tag.
        tag: String,
    },
    /// The digest after `@` is malformed or of an unsupported algorithm.
    #[error(transparent)]
    Digest(#[from] DigestError),
}

impl ImageRef {
    /// Parses and normalises a reference the way `docker pull` and `docker build -t` do.
    pub fn parse(input: &str) -> Result<ImageRef, ReferenceError> {
        if input.len() == 64 && input.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(ReferenceError::IdentifierAsName {
                reference: input.to_owned(),
            });
        }
        let (domain, remainder) = split_docker_domain(input);
        let repository = remainder
            .split_once(':')
            .map_or(remainder.as_str(), |(remote, _)| remote);
        if repository.to_lowercase() != repository {
            return Err(ReferenceError::RepositoryNotLowercase {
                reference: input.to_owned(),
                repository: repository.to_owned(),
            });
        }
        let full = format!("{domain}/{remainder}");
        let Some(parts) = split_reference(&full) else {
            let lower = full.to_lowercase();
            return Err(if lower != full && split_reference(&lower).is_some() {
                ReferenceError::NameContainsUppercase {
                    reference: input.to_owned(),
                }
            } else {
                ReferenceError::InvalidFormat {
                    reference: input.to_owned(),
                }
            });
        };
        if parts.path.len() > PATH_MAX_LEN {
            return Err(ReferenceError::NameTooLong {
                reference: input.to_owned(),
            });
        }
        let digest = parts.digest.map(Digest::parse).transpose()?;
        // Docker would accept a first part that is no valid host but a valid path component
        // (`a_b.c/app`) as a domain-less name that no registry can serve; kiln refuses it.
        if parts.domain != Some(domain) {
            return Err(ReferenceError::InvalidFormat {
                reference: input.to_owned(),
            });
        }
        let tag = match (parts.tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            (tag, _) => tag.map(str::to_owned),
        };
        Ok(ImageRef {
            domain: domain.to_owned(),
            path: parts.path.to_owned(),
            tag,
            digest,
        })
    }

    /// The registry host, with port if any: `docker.io`, `localhost:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path within the registry: `library/nginx`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if any (always `Some` unless the reference has a digest and no tag).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the reference pins one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The full repository name: `docker.io/library/nginx`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The short repository name `docker images` shows: `nginx`, `user/app`, `localhost:5000/app`.
    pub fn familiar(&self) -> String {
        if self.domain != DEFAULT_DOMAIN {
            return self.name();
        }
        match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
            Some(official) if !official.contains('/') => official.to_owned(),
            _ => self.path.clone(),
        }
    }

    /// The short form with tag and digest: `nginx:latest`, `localhost:5000/app@sha256:…`.
    pub fn familiar_string(&self) -> String {
        let mut text = self.familiar();
        self.push_suffix(&mut text);
        text
    }

    /// This reference with another tag (the digest, if any, is kept).
    pub fn with_tag(&self, tag: &str) -> Result<ImageRef, ReferenceError> {
        if !is_tag(tag) {
            return Err(ReferenceError::InvalidTag { tag: tag.to_owned() });
        }
        Ok(ImageRef {
            tag: Some(tag.to_owned()),
            ..self.clone()
        })
    }

    /// This reference pinned to `digest` (the tag, if any, is kept).
    #[must_use]
    pub fn with_digest(&self, digest: Digest) -> ImageRef {
        ImageRef {
            digest: Some(digest),
            ..self.clone()
        }
    }

    fn push_suffix(&self, text: &mut String) {
        if let Some(tag) = &self.tag {
            text.push(':');
            text.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            text.push('@');
            text.push_str(digest.as_str());
        }
    }
}

/// Docker's `splitDockerDomain`: decides whether the first path part is a registry host.
fn split_docker_domain(name: &str) -> (&str, String) {
    let Some((first, rest)) = name.split_once('/') else {
        // One part is always a Hub official image, even `localhost` or `example.com` (as Docker).
        return (DEFAULT_DOMAIN, format!("{OFFICIAL_REPO_PREFIX}{name}"));
    };
    let (domain, remote) =
        if first == "localhost" || first.contains(['.', ':']) || first.to_lowercase() != first {
            (
                if first == LEGACY_DEFAULT_DOMAIN {
                    DEFAULT_DOMAIN
                } else {
                    first
                },
                rest,
            )
        } else {
            (DEFAULT_DOMAIN, name)
        };
    if domain == DEFAULT_DOMAIN && !remote.contains('/') {
        return (domain, format!("{OFFICIAL_REPO_PREFIX}{remote}"));
    }
    (domain, remote.to_owned())
}

/// The pieces of a reference string that matched the grammar.
struct Parts<'a> {
    domain: Option<&'a str>,
    path: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

/// Matches `[domain/]path[:tag][@digest]` exactly as distribution/reference's anchored
/// `ReferenceRegexp` does (a domain is preferred when the first part can be one).
fn split_reference(s: &str) -> Option<Parts<'_>> {
    let (rest, digest) = match s.split_once('@') {
        Some((rest, digest)) if is_digest_shaped(digest) => (rest, Some(digest)),
        Some(_) => return None,
        None => (s, None),
    };
    // A name holds `:` only in a domain's port, which a `/` follows; so the first `:` after the
    // last `/` starts the tag.
    let last_part = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_part..].find(':') {
        Some(i) => (&rest[..last_part + i], Some(&rest[last_part + i + 1..])),
        None => (rest, None),
    };
    if tag.is_some_and(|tag| !is_tag(tag)) {
        return None;
    }
    let (domain, path) = match name.split_once('/') {
        Some((domain, path)) if is_domain(domain) && is_path(path) => (Some(domain), path),
        _ if is_path(name) => (None, name),
        _ => return None,
    };
    Some(Parts {
        domain,
        path,
        tag,
        digest,
    })
}

/// `host[:port]`, host being a DNS-like name (any case) or a bracketed IPv6 address.
fn is_domain(s: &str) -> bool {
    let (host, port) = if let Some(inner) = s.strip_prefix('[') {
        let Some((address, after)) = inner.split_once(']') else {
            return false;
        };
        if address.is_empty() || !address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        (None, after)
    } else {
        let end = s.find(':').unwrap_or(s.len());
        (Some(&s[..end]), &s[end..])
    };
    let host_ok = host.is_none_or(|host| host.split('.').all(is_domain_component));
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

/// `[a-zA-Z0-9]` or `[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`.
fn is_domain_component(s: &str) -> bool {
    let bytes = s.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        }
        _ => false,
    }
}

/// One or more path components joined by `/`.
fn is_path(s: &str) -> bool {
    s.split('/').all(is_path_component)
}

/// `[a-z0-9]+` runs joined by exactly one separator: `.`, `_`, `__`, or any number of `-`.
fn is_path_component(s: &str) -> bool {
    let is_alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = s.as_bytes();
    if !bytes.first().is_some_and(is_alnum) || !bytes.last().is_some_and(is_alnum) {
        return false;
    }
    // Between alphanumeric runs, each maximal run of other bytes must be one separator.
    bytes
        .split(is_alnum)
        .filter(|run| !run.is_empty())
        .all(|separator| matches!(separator, b"." | b"_" | b"__") || separator.iter().all(|b| *b == b'-'))
}

/// `[\w][\w.-]{0,127}` with `\w` = `[A-Za-z0-9_]`.
fn is_tag(s: &str) -> bool {
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    let bytes = s.as_bytes();
    bytes.len() <= TAG_MAX_LEN
        && bytes.first().is_some_and(word)
        && bytes.iter().all(|b| word(b) || matches!(b, b'.' | b'-'))
}

/// The reference grammar's digest shape (`alg[+._-alg]*:` then 32+ hex digits of any case);
/// [`Digest::parse`] then decides whether it is a digest kiln accepts.
fn is_digest_shaped(s: &str) -> bool {
    let Some((algorithm, hex)) = s.split_once(':') else {
        return false;
    };
    let algorithm_ok = algorithm.split(['-', '_', '+', '.']).all(|part| {
        part.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
            && part.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    algorithm_ok && hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = self.name();
        self.push_suffix(&mut text);
        f.write_str(&text)
    }
}

impl fmt::Debug for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageRef({self})")
    }
}

impl FromStr for ImageRef {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<ImageRef, ReferenceError> {
        ImageRef::parse(s)
    }
}

impl serde::Serialize for ImageRef {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ImageRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<ImageRef, D::Error> {
        let text = String::deserialize(deserializer)?;
        ImageRef::parse(&text).map_err(serde::de::Error::custom)
    }
}
