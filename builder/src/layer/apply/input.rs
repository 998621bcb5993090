//! The layer stream on its way to the tar parser: compression recognised by its magic bytes, the
//! stream decompressed on a thread of its own ([`Pump`]), and the uncompressed bytes counted and hashed
//! (the diff_id) as the tar parser takes them ([`Pipe`]), so that decompressing, hashing and writing
//! files spread over the cores.

use std::io::{self, BufReader, Read};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};

use sha2::{Digest as _, Sha256};

use crate::layer::{ApplyError, Compression};

/// Opens the decompressor `layer` needs, judging by its first bytes: gzip (`1f 8b`), zstd
/// (`28 b5 2f fd`), otherwise a plain tar. xz and bzip2 are recognised and refused.
pub(crate) fn decompress<'r, R: Read + Send + 'r>(
    mut layer: R,
) -> Result<(Box<dyn Read + Send + 'r>, Compression), ApplyError> {
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

const CHUNK: usize = 256 * 1024;
/// Chunks in flight between the threads: bounds memory to about a megabyte.
const DEPTH: usize = 4;

/// The consuming end of [`Pump`]: reads the chunks the decoding thread produced, in order, counting and
/// hashing them.
pub(crate) struct Pipe {
    chunks: Receiver<io::Result<Vec<u8>>>,
    recycle: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
    hasher: Sha256,
    count: u64,
}

impl Pipe {
    /// Reads and drops everything left, so the producer reaches the end of the stream.
    pub(crate) fn drain(&mut self) -> io::Result<()> {
        io::copy(self, &mut io::sink()).map(|_| ())
    }

    /// The sha256 and size of every byte that came through. They cover the whole stream once a read
    /// returned 0 (after [`drain`](Self::drain), say) and the producer reported a clean end.
    pub(crate) fn digest(self) -> ([u8; 32], u64) {
        (self.hasher.finalize().into(), self.count)
    }
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            match self.chunks.recv() {
                Ok(Ok(chunk)) => {
                    self.hasher.update(&chunk);
                    self.count += chunk.len() as u64;
                    let used = std::mem::replace(&mut self.current, chunk);
                    let _ = self.recycle.try_send(used);
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Creates the channel between the decoding thread ([`pump`]) and the tar reader ([`Pipe`]).
pub(crate) fn pipe() -> (Pipe, Pump) {
    let (chunk_tx, chunk_rx) = mpsc::sync_channel(DEPTH);
    let (recycle_tx, recycle_rx) = mpsc::sync_channel(DEPTH + 2);
    (
        Pipe {
            chunks: chunk_rx,
            recycle: recycle_tx,
            current: Vec::new(),
            pos: 0,
            hasher: Sha256::new(),
            count: 0,
        },
        Pump {
            chunks: chunk_tx,
            recycle: recycle_rx,
        },
    )
}

/// The producing end: run on its own thread with [`Pump::run`].
pub(crate) struct Pump {
    chunks: SyncSender<io::Result<Vec<u8>>>,
    recycle: Receiver<Vec<u8>>,
}

impl Pump {
    /// Reads `stream` to its end, sending it on in chunks. Returns whether it got there: `false` if the
    /// stream failed or the reader hung up (the reader has the error then).
    pub(crate) fn run(self, mut stream: impl Read) -> bool {
        loop {
            let mut chunk = match self.recycle.try_recv() {
                Ok(chunk) => chunk,
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => Vec::with_capacity(CHUNK),
            };
            chunk.resize(CHUNK, 0);
            let (n, error) = read_full(&mut stream, &mut chunk);
            chunk.truncate(n);
            // What came before an error is delivered first, so the reader can say which entry broke.
            if n > 0 && self.chunks.send(Ok(chunk)).is_err() {
                return false;
            }
            if let Some(e) = error {
                let _ = self.chunks.send(Err(e));
                return false;
            }
            if n == 0 {
                return true;
            }
        }
    }
}

/// Fills `buf` as far as the stream goes; returns how much was read and the error that stopped it.
fn read_full(stream: &mut impl Read, buf: &mut [u8]) -> (usize, Option<io::Error>) {
    let mut filled = 0;
    while filled < buf.len() {
        match stream.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (filled, Some(e)),
        }
    }
    (filled, None)
}
