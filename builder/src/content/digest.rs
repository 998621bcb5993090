//! Content digests: the `sha256:<hex>` names every blob is stored and verified under.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// The one algorithm kiln computes and stores blobs under.
pub const SHA256: &str = "sha256";

/// Length of a sha256 digest's hex encoding.
const SHA256_HEX_LEN: usize = 64;

/// A content digest in OCI form, `sha256:<64 lowercase hex>`, valid by construction.
///
/// Parsing follows go-digest (which Docker and containerd use): the string is `algorithm:encoded`;
/// an algorithm kiln does not compute is [`DigestError::Unsupported`] when the string is otherwise
/// well formed, and anything else that is not exactly 64 lowercase hex digits after `sha256:` is
/// [`DigestError::InvalidFormat`]. kiln computes sha256 only: registries and Docker use nothing
/// else for images, so `sha384`/`sha512` are reported as unsupported rather than carried around
/// unverifiable.
///
/// ```
/// use kiln_builder::content::Digest;
///
/// let d = Digest::of(b"hello");
/// assert_eq!(d.hex(), "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
/// assert_eq!(d.to_string().parse::<Digest>()?, d);
/// assert!("sha256:ABC".parse::<Digest>().is_err());
/// # Ok::<(), kiln_builder::content::DigestError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

/// Why a string is not a [`Digest`]. The messages are go-digest's, which Docker prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// Not `algorithm:encoded`, or the encoded part is not the algorithm's lowercase hex.
    #[error("invalid checksum digest format")]
    InvalidFormat {
        /// The rejected input.
        input: String,
    },
    /// A well-formed digest whose algorithm kiln does not compute.
    #[error("unsupported digest algorithm")]
    Unsupported {
        /// The algorithm named by the input, such as `md5`.
        algorithm: String,
    },
}

impl Digest {
    /// Parses and validates `sha256:<64 lowercase hex>`.
    pub fn parse(input: &str) -> Result<Digest, DigestError> {
        let invalid = || DigestError::InvalidFormat {
            input: input.to_owned(),
        };
        let Some((algorithm, encoded)) = input.split_once(':') else {
            return Err(invalid());
        };
        if algorithm.is_empty() || encoded.is_empty() {
            return Err(invalid());
        }
        if algorithm != SHA256 {
            // go-digest tells "unknown algorithm" apart from "garbage" by the generic grammar.
            return if is_well_formed_generic(algorithm, encoded) {
                Err(DigestError::Unsupported {
                    algorithm: algorithm.to_owned(),
                })
            } else {
                Err(invalid())
            };
        }
        if encoded.len() != SHA256_HEX_LEN || !encoded.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(invalid());
        }
        Ok(Digest(input.to_owned()))
    }

    /// Builds a digest from a 64-character lowercase hex string (no algorithm prefix).
    pub fn from_hex(hex: &str) -> Result<Digest, DigestError> {
        Digest::parse(&format!("{SHA256}:{hex}"))
    }

    /// The digest whose raw sha256 value is `bytes` (what a hasher's `finalize` returns).
    pub fn from_sha256(bytes: [u8; 32]) -> Digest {
        Digest(format!("{SHA256}:{}", hex::encode(bytes)))
    }

    /// The sha256 digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        let mut digester = Digester::new();
        digester.update(bytes);
        digester.finish()
    }

    /// The algorithm, always `sha256`.
    pub fn algorithm(&self) -> &str {
        SHA256
    }

    /// The 64 lowercase hex digits after `sha256:`.
    pub fn hex(&self) -> &str {
        &self.0[SHA256.len() + 1..]
    }

    /// The first 12 hex digits: the short image ID Docker shows.
    pub fn short(&self) -> &str {
        &self.hex()[..12]
    }

    /// The full `sha256:<hex>` form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// go-digest's `DigestRegexpAnchored`: `[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+`.
fn is_well_formed_generic(algorithm: &str, encoded: &str) -> bool {
    let algorithm_ok = algorithm
        .split(['.', '+', '_', '-'])
        .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    let encoded_ok = encoded
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'));
    algorithm_ok && encoded_ok
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.0)
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Digest, DigestError> {
        Digest::parse(s)
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Digest, D::Error> {
        let text = String::deserialize(deserializer)?;
        Digest::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Computes a [`Digest`] over a stream: write the bytes (it is a [`Write`]r), then [`finish`].
///
/// It also counts the bytes, so one pass yields both halves of a descriptor.
///
/// ```
/// use std::io::Write;
/// use kiln_builder::content::{Digest, Digester};
///
/// let mut digester = Digester::new();
/// digester.write_all(b"hel")?;
/// digester.write_all(b"lo")?;
/// assert_eq!(digester.len(), 5);
/// assert_eq!(digester.finish(), Digest::of(b"hello"));
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// [`finish`]: Digester::finish
#[derive(Clone, Default)]
pub struct Digester {
    hasher: Sha256,
    len: u64,
}

impl Digester {
    /// A digester that has seen no bytes.
    pub fn new() -> Digester {
        Digester::default()
    }

    /// Feeds `bytes` into the hash.
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// How many bytes have been fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no byte has been fed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of everything fed so far, leaving the digester usable.
    pub fn peek(&self) -> Digest {
        self.clone().finish()
    }

    /// The digest of everything fed.
    pub fn finish(self) -> Digest {
        Digest::from_sha256(self.hasher.finalize().into())
    }
}

impl Write for Digester {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl fmt::Debug for Digester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Digester")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}
