//! The writer a layer's tar stream goes through: it compresses, and digests both the tar (the diff_id)
//! and the compressed blob (the digest) in the same pass, so a layer is read from disk exactly once and
//! never held in memory.

use std::io::{self, Write};

use sha2::{Digest as _, Sha256};

use super::Digest;
use super::pgzip::BlockGzip;

const ZSTD_JOB_SIZE: u32 = 1 << 20;

/// OCI media type of an uncompressed layer.
pub const MEDIA_TYPE_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI media type of a gzip-compressed layer.
pub const MEDIA_TYPE_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI media type of a zstd-compressed layer.
pub const MEDIA_TYPE_TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// How a layer's tar stream is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar: its digest is its diff_id.
    Uncompressed,
    /// gzip, the format every registry and runtime reads. Levels 0-9.
    Gzip {
        /// Deflate level: 1 is fastest, 9 smallest.
        level: u32,
    },
    /// zstd: faster and smaller, read by containerd 1.5+, Docker 23+ and podman. Levels 1-19.
    Zstd {
        /// zstd level: 1 is fastest, 19 smallest.
        level: i32,
    },
}

impl Compression {
    /// gzip at kiln's default level, 4: on the layer benchmark (`bench/layer.sh`) it keeps two cores
    /// above 100 MB/s of input where level 6 (gzip's own default) falls to about half that, for a blob
    /// about 3% larger.
    pub const GZIP: Compression = Compression::Gzip { level: 4 };
    /// zstd at kiln's default level, 1: on the layer benchmark it compresses as well as level 3 (the
    /// usual default) at 1.7 times the speed, which keeps two cores above 400 MB/s of input.
    pub const ZSTD: Compression = Compression::Zstd { level: 1 };

    /// The OCI media type of a layer compressed this way.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Uncompressed => MEDIA_TYPE_TAR,
            Compression::Gzip { .. } => MEDIA_TYPE_TAR_GZIP,
            Compression::Zstd { .. } => MEDIA_TYPE_TAR_ZSTD,
        }
    }
}

impl Default for Compression {
    fn default() -> Compression {
        Compression::GZIP
    }
}

/// What an image manifest and config need to know about a layer blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerDescriptor {
    /// The blob's OCI media type, per its compression.
    pub media_type: &'static str,
    /// sha256 of the blob as stored and pushed (compressed).
    pub digest: Digest,
    /// Size of the blob in bytes (compressed).
    pub size: u64,
    /// sha256 of the uncompressed tar: the image config's `rootfs.diff_ids` entry.
    pub diff_id: Digest,
    /// Size of the uncompressed tar in bytes.
    pub uncompressed_size: u64,
}

/// Takes a layer's uncompressed tar stream, writes it compressed into `W` and digests both forms.
///
/// ```
/// use std::io::Write;
/// use kiln_builder::layer::{Compression, LayerWriter};
///
/// let mut writer = LayerWriter::new(Vec::new(), Compression::GZIP, 2)?;
/// writer.write_all(&[0; 1024])?; // an empty tar
/// let (descriptor, blob) = writer.finish()?;
/// assert_eq!(descriptor.uncompressed_size, 1024);
/// assert_eq!(descriptor.size, blob.len() as u64);
/// assert_eq!(descriptor.media_type, "application/vnd.oci.image.layer.v1.tar+gzip");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct LayerWriter<W: Write> {
    compression: Compression,
    diff_id: Sha256,
    uncompressed: u64,
    encoder: Encoder<Counted<W>>,
}

enum Encoder<W: Write> {
    Plain(W),
    Gzip(BlockGzip<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

/// Counts (and, for compressed layers, hashes) the bytes that reach the output.
struct Counted<W> {
    inner: W,
    hasher: Option<Sha256>,
    count: u64,
}

impl<W: Write> LayerWriter<W> {
    /// Starts a layer written into `out`. `threads` is how many threads may compress (1 compresses on
    /// the caller's thread); the bytes written do not depend on it.
    pub fn new(out: W, compression: Compression, threads: usize) -> io::Result<LayerWriter<W>> {
        let counted = Counted {
            inner: out,
            hasher: (compression != Compression::Uncompressed).then(Sha256::new),
            count: 0,
        };
        let encoder = match compression {
            Compression::Uncompressed => Encoder::Plain(counted),
            Compression::Gzip { level } => Encoder::Gzip(BlockGzip::new(counted, level, threads)?),
            Compression::Zstd { level } => {
                let mut encoder = zstd::stream::write::Encoder::new(counted, level)?;
                // Always at least one worker: zstd's multithreaded format is the same for any number
                // of workers but differs from its single-threaded one, and digests must not depend on
                // the machine.
                encoder.multithread(u32::try_from(threads.max(1)).unwrap_or(u32::MAX))?;
                // 1 MiB jobs bound the workers' buffers (about 25 MB at level 3 instead of 70 MB with
                // zstd's default of four windows) for no measurable loss of ratio. Fixed, so the output
                // is too.
                encoder.set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB_SIZE))?;
                Encoder::Zstd(encoder)
            }
        };
        Ok(LayerWriter {
            compression,
            diff_id: Sha256::new(),
            uncompressed: 0,
            encoder,
        })
    }

    /// Ends the compressed stream, flushes `out` and returns the layer's descriptor with `out`.
    pub fn finish(self) -> io::Result<(LayerDescriptor, W)> {
        let mut counted = match self.encoder {
            Encoder::Plain(counted) => counted,
            Encoder::Gzip(gzip) => gzip.finish()?,
            Encoder::Zstd(zstd) => zstd.finish()?,
        };
        counted.inner.flush()?;
        let diff_id = Digest::from_sha256(self.diff_id.finalize().into());
        let digest = match counted.hasher {
            Some(hasher) => Digest::from_sha256(hasher.finalize().into()),
            None => diff_id.clone(),
        };
        let descriptor = LayerDescriptor {
            media_type: self.compression.media_type(),
            digest,
            size: counted.count,
            diff_id,
            uncompressed_size: self.uncompressed,
        };
        Ok((descriptor, counted.inner))
    }
}

impl<W: Write> Write for LayerWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match &mut self.encoder {
            Encoder::Plain(w) => w.write(buf)?,
            Encoder::Gzip(w) => w.write(buf)?,
            Encoder::Zstd(w) => w.write(buf)?,
        };
        self.diff_id.update(&buf[..n]);
        self.uncompressed += n as u64;
        Ok(n)
    }

    /// Flushes what the compressor already produced. It never forces the compressor to cut its current
    /// block: that would make the blob (and its digest) depend on when callers flush.
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.encoder {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gzip(w) => w.flush(),
            Encoder::Zstd(w) => w.get_mut().flush(),
        }
    }
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
