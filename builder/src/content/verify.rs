//! A reader that hashes what passes through it and fails at the end if the bytes were not the blob.

use std::io::{self, Read};

use super::{ContentError, Digest, Digester};

/// Wraps a blob's byte stream and verifies it against the blob's digest (and size, when known).
///
/// Bytes are handed on as they arrive, so a consumer may already have used some when the check
/// fails; what it gets is an error where a clean EOF would have been, and it must discard its work.
/// The error is an [`io::Error`] of kind [`InvalidData`](io::ErrorKind::InvalidData) whose inner
/// error is the [`ContentError`] (`DigestMismatch` or `SizeMismatch`), so it survives `io::copy`.
///
/// ```
/// use std::io::Read;
/// use kiln_builder::content::{Digest, VerifiedReader};
///
/// let mut ok = VerifiedReader::new(&b"hello"[..], Digest::of(b"hello"), Some(5));
/// let mut out = String::new();
/// ok.read_to_string(&mut out)?;
///
/// let mut bad = VerifiedReader::new(&b"jello"[..], Digest::of(b"hello"), None);
/// assert!(bad.read_to_string(&mut String::new()).is_err());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct VerifiedReader<R> {
    inner: R,
    digester: Digester,
    expected: Digest,
    expected_size: Option<u64>,
    verified: bool,
}

impl<R: Read> VerifiedReader<R> {
    /// Verifies `inner` against `expected` and, if given, `expected_size`.
    pub fn new(inner: R, expected: Digest, expected_size: Option<u64>) -> VerifiedReader<R> {
        VerifiedReader {
            inner,
            digester: Digester::new(),
            expected,
            expected_size,
            verified: false,
        }
    }

    /// The digest the stream must have.
    pub fn expected(&self) -> &Digest {
        &self.expected
    }

    fn size_error(&self, actual: u64) -> io::Error {
        let expected = self.expected_size.unwrap_or_default();
        invalid(ContentError::SizeMismatch {
            digest: self.expected.clone(),
            expected,
            actual,
        })
    }

    /// Called at EOF: the whole stream has been seen.
    fn verify(&mut self) -> io::Result<()> {
        if self
            .expected_size
            .is_some_and(|expected| self.digester.len() != expected)
        {
            return Err(self.size_error(self.digester.len()));
        }
        let actual = self.digester.peek();
        if actual != self.expected {
            return Err(invalid(ContentError::DigestMismatch {
                expected: self.expected.clone(),
                actual,
            }));
        }
        self.verified = true;
        Ok(())
    }
}

fn invalid(error: ContentError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

impl<R: Read> Read for VerifiedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            if !self.verified {
                self.verify()?;
            }
            return Ok(0);
        }
        self.digester.update(&buf[..n]);
        // Fail as soon as a stream overruns its size instead of reading an endless body to the end.
        if self
            .expected_size
            .is_some_and(|expected| self.digester.len() > expected)
        {
            return Err(self.size_error(self.digester.len()));
        }
        Ok(n)
    }
}
