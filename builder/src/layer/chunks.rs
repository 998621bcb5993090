//! The diff side's hand-off between threads: the thread that reads the snapshot writes the tar into
//! fixed-size chunks ([`ChunkWriter`]), and the caller's thread takes them in order ([`Chunks`]) and
//! feeds them to the compressor. A bounded number of chunks is in flight, and used ones go back to the
//! writer, so memory stays at a few megabytes whatever the layer's size.

use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};

/// Size of one chunk: large enough that handing one over costs nothing next to filling it.
const CHUNK: usize = 512 * 1024;
/// Chunks queued between the threads (plus the one each side holds).
const DEPTH: usize = 4;

/// Creates the two ends.
pub(crate) fn channel() -> (ChunkWriter, Chunks) {
    let (full_tx, full_rx) = mpsc::sync_channel(DEPTH);
    let (spare_tx, spare_rx) = mpsc::sync_channel(DEPTH + 2);
    (
        ChunkWriter {
            current: vec![0; CHUNK],
            filled: 0,
            full: full_tx,
            spare: spare_rx,
        },
        Chunks {
            full: full_rx,
            spare: spare_tx,
        },
    )
}

/// The producing end. Bytes go in through [`Write`], or straight from a file with [`room`](Self::room)
/// and [`commit`](Self::commit), which saves a copy; [`finish`](Self::finish) sends the last chunk.
pub(crate) struct ChunkWriter {
    /// Always `CHUNK` bytes long; `filled` of them hold data.
    current: Vec<u8>,
    filled: usize,
    full: SyncSender<Vec<u8>>,
    spare: Receiver<Vec<u8>>,
}

impl ChunkWriter {
    /// The free part of the current chunk (never empty): fill a prefix of it, then
    /// [`commit`](Self::commit) that many bytes.
    pub(crate) fn room(&mut self) -> io::Result<&mut [u8]> {
        if self.filled == CHUNK {
            self.send()?;
        }
        Ok(&mut self.current[self.filled..])
    }

    /// Marks `n` bytes of the [`room`](Self::room) as written.
    pub(crate) fn commit(&mut self, n: usize) {
        self.filled += n;
        debug_assert!(self.filled <= CHUNK);
    }

    /// Sends what is buffered; the stream ends when the writer is dropped.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        if self.filled > 0 {
            self.send()?;
        }
        Ok(())
    }

    fn send(&mut self) -> io::Result<()> {
        let mut next = self.spare.try_recv().unwrap_or_default();
        next.resize(CHUNK, 0);
        let mut full = std::mem::replace(&mut self.current, next);
        full.truncate(self.filled);
        self.filled = 0;
        self.full
            .send(full)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the layer writer stopped taking data"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = self.room()?;
        let n = room.len().min(buf.len());
        room[..n].copy_from_slice(&buf[..n]);
        self.commit(n);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The consuming end: yields the chunks in order until the writer is dropped.
pub(crate) struct Chunks {
    full: Receiver<Vec<u8>>,
    spare: SyncSender<Vec<u8>>,
}

impl Chunks {
    /// Hands every chunk to `consume`, in order, until the writer is gone; stops at `consume`'s first
    /// error (the writer then fails on its next send).
    pub(crate) fn for_each(self, mut consume: impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        for chunk in &self.full {
            consume(&chunk)?;
            let _ = self.spare.try_send(chunk);
        }
        Ok(())
    }
}
