//! Regular files' data and metadata, written on a thread of their own.
//!
//! Extraction creates each file itself (so every refusal and replacement stays on one thread, in tar
//! order), then hands the open file, its metadata and its data to [`FileWriter`]; a second thread
//! ([`run`]) writes the data, sets owner, attributes, mode and mtime, and closes it. For a layer of
//! small files, writing data into the page cache costs as much as creating the inodes, so the two
//! overlap on a machine with two cores.
//!
//! Nothing that extraction does later depends on a file's data or metadata being in place: a hardlink
//! shares the inode whenever its data arrives, and a later entry that replaces or whites out the file
//! unlinks it (the writes then land in an unlinked inode). Directory mtimes are set only once the
//! writing thread is done.
//!
//! Work goes over in batches (many small files, or up to a megabyte of one large file) so handing over
//! costs little, and at most [`DEPTH`] batches wait, which bounds both memory and open descriptors.

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::mpsc::{self, Receiver, SyncSender};

use super::extract::{Meta, io_error};
use crate::layer::ApplyError;

/// Data bytes one batch holds.
const BATCH_DATA: usize = 1 << 20;
/// Files one batch may open: with [`DEPTH`] this bounds the descriptors in flight.
const BATCH_FILES: usize = 16;
/// Largest single `write`. The page cache sizes its folios by the write, and on the layer benchmark
/// (`bench/layer.sh`) megabyte writes cost clearly more system time than 256 KiB ones.
const WRITE_MAX: usize = 256 * 1024;
/// Full batches waiting for the writing thread.
const DEPTH: usize = 2;

/// One step for the writing thread.
enum Op {
    /// A new file, open for writing: its `size` bytes of data come in the [`Op::Data`] that follow.
    File {
        file: OwnedFd,
        name: String,
        meta: Meta,
        size: u64,
    },
    /// The next `n` bytes of the batch's data, for the current file.
    Data(usize),
}

struct Batch {
    ops: Vec<Op>,
    files: usize,
    /// Always `BATCH_DATA` long; `filled` bytes are in use.
    data: Vec<u8>,
    filled: usize,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            ops: Vec::new(),
            files: 0,
            data: vec![0; BATCH_DATA],
            filled: 0,
        }
    }
}

/// The extracting thread's end: queues files and their data.
pub(super) struct FileWriter {
    current: Batch,
    batches: SyncSender<Batch>,
    spare: Receiver<Batch>,
}

/// The writing thread's end: pass it to [`run`].
pub(super) struct FileQueue {
    batches: Receiver<Batch>,
    spare: SyncSender<Batch>,
}

/// Creates both ends.
pub(super) fn channel() -> (FileWriter, FileQueue) {
    let (batch_tx, batch_rx) = mpsc::sync_channel(DEPTH);
    let (spare_tx, spare_rx) = mpsc::sync_channel(DEPTH + 2);
    (
        FileWriter {
            current: Batch::new(),
            batches: batch_tx,
            spare: spare_rx,
        },
        FileQueue {
            batches: batch_rx,
            spare: spare_tx,
        },
    )
}

/// The writing thread has stopped: it failed on an earlier file, and its error is the one to report.
#[derive(Debug)]
pub(super) struct WriterGone;

impl FileWriter {
    /// Queues a file just created; its `size` bytes of data follow through [`room`](Self::room) and
    /// [`commit`](Self::commit).
    pub(super) fn file(
        &mut self,
        file: OwnedFd,
        name: &str,
        meta: Meta,
        size: u64,
    ) -> Result<(), WriterGone> {
        if self.current.files == BATCH_FILES {
            self.send()?;
        }
        self.current.files += 1;
        self.current.ops.push(Op::File {
            file,
            name: name.to_owned(),
            meta,
            size,
        });
        Ok(())
    }

    /// Free room for the current file's data (never empty): fill a prefix, then
    /// [`commit`](Self::commit) it.
    pub(super) fn room(&mut self) -> Result<&mut [u8], WriterGone> {
        if self.current.filled == BATCH_DATA {
            self.send()?;
        }
        Ok(&mut self.current.data[self.current.filled..])
    }

    /// Marks `n` bytes of the [`room`](Self::room) as the current file's next data.
    pub(super) fn commit(&mut self, n: usize) {
        self.current.filled += n;
        match self.current.ops.last_mut() {
            Some(Op::Data(len)) => *len += n,
            _ => self.current.ops.push(Op::Data(n)),
        }
    }

    /// Sends what is queued; the writing thread ends once this end is dropped.
    pub(super) fn flush(&mut self) -> Result<(), WriterGone> {
        if self.current.ops.is_empty() {
            Ok(())
        } else {
            self.send()
        }
    }

    fn send(&mut self) -> Result<(), WriterGone> {
        let next = self.spare.try_recv().unwrap_or_else(|_| Batch::new());
        let full = std::mem::replace(&mut self.current, next);
        self.batches.send(full).map_err(|_| WriterGone)
    }
}

/// A file whose data is still arriving.
struct Open {
    file: File,
    name: String,
    meta: Meta,
    left: u64,
}

/// The writing thread: writes, finishes and closes every queued file, until the queue's other end is
/// dropped. Stops at the first error (the extracting thread then finds it gone).
pub(super) fn run(queue: FileQueue) -> Result<(), ApplyError> {
    let FileQueue { batches, spare } = queue;
    let mut open: Option<Open> = None;
    for mut batch in batches {
        let mut pos = 0;
        for op in batch.ops.drain(..) {
            match op {
                Op::File {
                    file,
                    name,
                    meta,
                    size,
                } => {
                    let file = Open {
                        file: File::from(file),
                        name,
                        meta,
                        left: size,
                    };
                    if size == 0 {
                        finish(file)?;
                    } else {
                        open = Some(file);
                    }
                }
                Op::Data(n) => {
                    let file = open.as_mut().expect("data follows its file");
                    for piece in batch.data[pos..pos + n].chunks(WRITE_MAX) {
                        file.file
                            .write_all(piece)
                            .map_err(|e| io_error(&file.name, "write the file", e))?;
                    }
                    pos += n;
                    file.left -= n as u64;
                    if file.left == 0 {
                        finish(open.take().expect("just written"))?;
                    }
                }
            }
        }
        batch.files = 0;
        batch.filled = 0;
        let _ = spare.try_send(batch);
    }
    Ok(())
}

/// Sets the file's metadata and closes it.
fn finish(file: Open) -> Result<(), ApplyError> {
    let Open { file, name, meta, .. } = file;
    meta.set_on_fd(&file, &name, true)
}
