//! Compression at the edges of an archive: reading a tar that may be gzip or zstd compressed, and
//! gzip-compressing an uncompressed layer on its way into the content store. Both are the layer
//! module's, so an archive's layers are recognised and written exactly as a build's are.

use std::io::{Read, Write};

use super::ArchiveError;
use crate::layer::{self, ApplyError, Compression, LayerWriter};

/// Returns a reader of `input`'s tar bytes, decompressing gzip or zstd as its magic bytes say.
pub(crate) fn decompress<'a>(
    input: impl Read + Send + 'a,
) -> Result<Box<dyn Read + Send + 'a>, ArchiveError> {
    match layer::decompress(input) {
        Ok((stream, _)) => Ok(stream),
        Err(ApplyError::UnsupportedCompression { format }) => {
            Err(ArchiveError::UnsupportedCompression { format })
        }
        Err(ApplyError::Corrupt { source, .. }) => Err(ArchiveError::read(source)),
        Err(other) => Err(ArchiveError::read(std::io::Error::other(other))),
    }
}

/// A gzip layer writer into `out` (an ingest), digesting the tar (its diff_id) on the way.
pub(crate) fn gzip_layer<W: Write>(out: W) -> std::io::Result<LayerWriter<W>> {
    LayerWriter::new(out, Compression::GZIP, 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::Digest;

    fn read_all(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        decompress(input).unwrap().read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn plain_gzip_and_zstd_read_the_same_bytes() {
        let plain = b"not much of a tar, but bytes".repeat(100);
        let mut gzip = gzip_layer(Vec::new()).unwrap();
        gzip.write_all(&plain).unwrap();
        let (descriptor, gz) = gzip.finish().unwrap();
        assert_eq!(descriptor.diff_id, Digest::of(&plain));
        assert_eq!(descriptor.uncompressed_size, plain.len() as u64);
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
