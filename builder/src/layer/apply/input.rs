//! The layer stream on its way to the tar parser: compression recognised by its magic bytes, and the
//! uncompressed bytes counted and hashed (the diff_id) as they pass.

use std::io::{self, BufReader, Read};

use sha2::{Digest as _, Sha256};

use crate::layer::{ApplyError, Compression};

/// Opens the decompressor `layer` needs, judging by its first bytes: gzip (`1f 8b`), zstd
/// (`28 b5 2f fd`), otherwise a plain tar. xz and bzip2 are recognised and refused.
pub(crate) fn decompress<'r, R: Read + 'r>(
    mut layer: R,
) -> Result<(Box<dyn Read + 'r>, Compression), ApplyError> {
    let mut head = [0u8; 6];
    let mut filled = 0;
    while filled < head.len() {
        match layer.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => return Err(ApplyError::Corrupt { after: None, source }),
        }
    }
    let head = &head[..filled];
    let stream = io::Cursor::new(head.to_vec()).chain(layer);
    if head.starts_with(&[0x1f, 0x8b]) {
        let decoder = flate2::bufread::MultiGzDecoder::new(BufReader::with_capacity(256 * 1024, stream));
        Ok((Box::new(decoder), Compression::GZIP))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let decoder = zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(256 * 1024, stream))
            .map_err(|source| ApplyError::Corrupt { after: None, source })?;
        Ok((Box::new(decoder), Compression::ZSTD))
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Err(ApplyError::UnsupportedCompression { format: "xz" })
    } else if head.starts_with(b"BZh") {
        Err(ApplyError::UnsupportedCompression { format: "bzip2" })
    } else {
        Ok((Box::new(stream), Compression::Uncompressed))
    }
}

/// Counts and hashes what is read through it.
pub(crate) struct Digesting<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> Digesting<R> {
    pub(crate) fn new(inner: R) -> Digesting<R> {
        Digesting {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Reads to the end (a tar's trailing padding belongs to the diff_id too) and returns the sha256.
    pub(crate) fn finish(mut self) -> io::Result<([u8; 32], u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((self.hasher.finalize().into(), self.count))
    }
}

impl<R: Read> Read for Digesting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}
