//! Compression at the edges of an archive: reading a tar that may be gzip or zstd compressed, and
//! gzip-compressing an uncompressed layer on its way into the content store.

use std::io::{self, Chain, Cursor, Read, Write};

use flate2::write::GzEncoder;

use super::ArchiveError;
use crate::content::{Digest, Digester};

/// How many leading bytes tell the formats apart (xz's magic is the longest).
const MAGIC_LEN: usize = 6;

/// Returns a reader of `input`'s tar bytes, decompressing gzip or zstd as its magic bytes say.
pub(crate) fn decompress<'a>(mut input: impl Read + 'a) -> Result<Box<dyn Read + 'a>, ArchiveError> {
    let mut head = Vec::with_capacity(MAGIC_LEN);
    // A pipe may deliver the first bytes in pieces; read until the magic is complete or EOF.
    (&mut input)
        .take(MAGIC_LEN as u64)
        .read_to_end(&mut head)
        .map_err(ArchiveError::read)?;
    let format = sniff(&head);
    let stream: Chain<Cursor<Vec<u8>>, _> = Cursor::new(head).chain(input);
    match format {
        Format::Plain => Ok(Box::new(stream)),
        Format::Gzip => Ok(Box::new(flate2::read::MultiGzDecoder::new(stream))),
        Format::Zstd => Ok(Box::new(
            zstd::stream::read::Decoder::new(stream).map_err(ArchiveError::read)?,
        )),
        Format::Unsupported(format) => Err(ArchiveError::UnsupportedCompression { format }),
    }
}

enum Format {
    Plain,
    Gzip,
    Zstd,
    Unsupported(&'static str),
}

fn sniff(head: &[u8]) -> Format {
    match head {
        [0x1f, 0x8b, ..] => Format::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Format::Zstd,
        [b'B', b'Z', b'h', ..] => Format::Unsupported("bzip2"),
        [0xfd, b'7', b'z', b'X', b'Z', 0x00] => Format::Unsupported("xz"),
        _ => Format::Plain,
    }
}

/// Takes an uncompressed layer tar, writes it gzip-compressed into `W` and digests the tar (its
/// diff_id) on the way. The compressed digest is the business of `W` (an ingest computes it).
pub(crate) struct GzipLayer<W: Write> {
    encoder: GzEncoder<W>,
    diff_id: Digester,
}

impl<W: Write> GzipLayer<W> {
    /// Starts a layer written into `out`.
    pub(crate) fn new(out: W) -> GzipLayer<W> {
        GzipLayer {
            encoder: GzEncoder::new(out, flate2::Compression::default()),
            diff_id: Digester::new(),
        }
    }

    /// Ends the gzip stream; returns the diff_id, the uncompressed size and `out`.
    pub(crate) fn finish(self) -> io::Result<(Digest, u64, W)> {
        let size = self.diff_id.len();
        let out = self.encoder.finish()?;
        Ok((self.diff_id.finish(), size, out))
    }
}

impl<W: Write> Write for GzipLayer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.encoder.write(buf)?;
        self.diff_id.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.encoder.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        decompress(input).unwrap().read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn plain_gzip_and_zstd_read_the_same_bytes() {
        let plain = b"not much of a tar, but bytes".repeat(100);
        let mut gzip = GzipLayer::new(Vec::new());
        gzip.write_all(&plain).unwrap();
        let (diff_id, size, gz) = gzip.finish().unwrap();
        assert_eq!((diff_id, size), (Digest::of(&plain), plain.len() as u64));
        let zst = zstd::encode_all(&plain[..], 3).unwrap();
        assert_eq!(read_all(&plain), plain);
        assert_eq!(read_all(&gz), plain);
        assert_eq!(read_all(&zst), plain);
        assert_eq!(read_all(b"ab"), b"ab");
    }

    #[test]
    fn other_compressions_are_named() {
        let error = decompress(&b"BZh91AY&SY"[..]).err().unwrap();
        assert_eq!(
            error.to_string(),
            "unsupported compression bzip2 (plain tar, gzip and zstd are read)"
        );
    }
}
