//! gzip compression spread over several threads, pigz style, producing one ordinary gzip member.
//!
//! The input is cut into 128 KiB blocks. Each block is deflated on its own, primed with the last 32 KiB
//! of the block before it as a preset dictionary (so matches still reach back across the cut), and ends
//! with a sync flush (an empty stored block), which byte-aligns its output; the last block ends the
//! deflate stream instead. The outputs, concatenated in order behind a gzip header and followed by the
//! CRC-32 and length of the whole input, form one deflate stream any gzip reader accepts.
//!
//! Each block's output depends on its data and the 32 KiB before it only, so the compressed bytes (and
//! with them the layer digest) are the same whatever the number of threads, one included.

use std::io::{self, Write};
use std::mem;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use flate2::{Compress, FlushCompress, Status};

const BLOCK: usize = 128 * 1024;
const WINDOW: usize = 32 * 1024;
/// Header of a gzip member: magic, deflate, no flags, mtime 0, no extra flags, OS unknown.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// A gzip encoder writing into `W`; [`finish`](Self::finish) must be called to end the stream.
pub(crate) struct BlockGzip<W: Write> {
    out: W,
    crc: flate2::Crc,
    input: Vec<u8>,
    /// The last `WINDOW` bytes of the block submitted before `input`.
    dict: Vec<u8>,
    engine: Engine,
}

/// Where blocks are compressed: inline on the caller's thread, or on a pool of threads.
enum Engine {
    Inline {
        level: flate2::Compression,
        out: Vec<u8>,
    },
    Pool(Pool),
}

struct Job {
    dict: Vec<u8>,
    data: Vec<u8>,
    last: bool,
    out: Vec<u8>,
}

/// Threads fed round-robin: job `n` goes to thread `n % threads`, and since each thread answers its
/// jobs in order, reading answers round-robin too yields them in submission order without a reorder
/// buffer.
struct Pool {
    jobs: Vec<SyncSender<Job>>,
    done: Vec<Receiver<io::Result<Job>>>,
    handles: Vec<JoinHandle<()>>,
    submitted: usize,
    collected: usize,
    /// Buffers of finished jobs, reused for the next ones.
    spare: Vec<Vec<u8>>,
}

impl<W: Write> BlockGzip<W> {
    /// Starts a stream at `level` (0-9) compressed on `threads` threads (1 compresses inline).
    pub(crate) fn new(mut out: W, level: u32, threads: usize) -> io::Result<BlockGzip<W>> {
        out.write_all(&HEADER)?;
        let level = flate2::Compression::new(level.min(9));
        let engine = if threads <= 1 {
            Engine::Inline {
                level,
                out: Vec::new(),
            }
        } else {
            Engine::Pool(Pool::start(level, threads)?)
        };
        Ok(BlockGzip {
            out,
            crc: flate2::Crc::new(),
            input: Vec::with_capacity(BLOCK),
            dict: Vec::new(),
            engine,
        })
    }

    /// Compresses what is buffered, writes the trailer and returns the writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        if let Engine::Pool(pool) = &mut self.engine {
            while pool.collected < pool.submitted {
                pool.collect_one(&mut self.out)?;
            }
        }
        self.out.write_all(&self.crc.sum().to_le_bytes())?;
        self.out.write_all(&self.crc.amount().to_le_bytes())?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn submit(&mut self, last: bool) -> io::Result<()> {
        let next_dict = if last {
            Vec::new()
        } else {
            self.input[self.input.len().saturating_sub(WINDOW)..].to_vec()
        };
        let dict = mem::replace(&mut self.dict, next_dict);
        match &mut self.engine {
            Engine::Inline { level, out } => {
                deflate_block(*level, &dict, &self.input, last, out)?;
                self.out.write_all(out)?;
                self.input.clear();
            }
            Engine::Pool(pool) => {
                if pool.submitted - pool.collected >= 2 * pool.jobs.len() {
                    pool.collect_one(&mut self.out)?;
                }
                let fresh = pool.spare.pop().unwrap_or_else(|| Vec::with_capacity(BLOCK));
                let data = mem::replace(&mut self.input, fresh);
                let out = pool.spare.pop().unwrap_or_default();
                pool.send(Job {
                    dict,
                    data,
                    last,
                    out,
                })?;
            }
        }
        Ok(())
    }
}

impl<W: Write> Write for BlockGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let take = buf.len().min(BLOCK - self.input.len());
        self.input.extend_from_slice(&buf[..take]);
        self.crc.update(&buf[..take]);
        if self.input.len() == BLOCK {
            self.submit(false)?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Blocks are cut at fixed sizes so the output never depends on when callers flush.
        Ok(())
    }
}

impl Pool {
    fn start(level: flate2::Compression, threads: usize) -> io::Result<Pool> {
        let mut pool = Pool {
            jobs: Vec::new(),
            done: Vec::new(),
            handles: Vec::new(),
            submitted: 0,
            collected: 0,
            spare: Vec::new(),
        };
        for i in 0..threads {
            let (job_tx, job_rx) = mpsc::sync_channel::<Job>(1);
            let (done_tx, done_rx) = mpsc::sync_channel::<io::Result<Job>>(2);
            let handle = std::thread::Builder::new()
                .name(format!("kiln-gzip-{i}"))
                .spawn(move || {
                    for mut job in job_rx {
                        let result =
                            deflate_block(level, &job.dict, &job.data, job.last, &mut job.out).map(|()| job);
                        if done_tx.send(result).is_err() {
                            break;
                        }
                    }
                })?;
            pool.jobs.push(job_tx);
            pool.done.push(done_rx);
            pool.handles.push(handle);
        }
        Ok(pool)
    }

    fn send(&mut self, job: Job) -> io::Result<()> {
        let worker = self.submitted % self.jobs.len();
        self.jobs[worker]
            .send(job)
            .map_err(|_| io::Error::other("a gzip worker thread stopped"))?;
        self.submitted += 1;
        Ok(())
    }

    fn collect_one(&mut self, out: &mut impl Write) -> io::Result<()> {
        let worker = self.collected % self.done.len();
        let job = self.done[worker]
            .recv()
            .map_err(|_| io::Error::other("a gzip worker thread stopped"))??;
        self.collected += 1;
        out.write_all(&job.out)?;
        let Job {
            mut data,
            out: mut compressed,
            ..
        } = job;
        data.clear();
        compressed.clear();
        self.spare.push(data);
        self.spare.push(compressed);
        Ok(())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing the job channels ends the threads once they finish their current block.
        self.jobs.clear();
        self.done.clear();
        for handle in self.handles.drain(..) {
            let _ = handle.join();
        }
    }
}

/// Deflates one block into `out` (raw deflate, no header): primed with `dict`, ended by a sync flush,
/// or by the end of the stream when `last`.
///
/// Every block gets a fresh compressor: zlib-rs's `reset` keeps state that changes the output, which
/// would make the bytes depend on which thread compressed which block.
///
/// All input goes in without flushing first, then the flush is asked for on its own, so the output
/// never depends on how much room the output buffer happened to have (a sync flush requested while
/// input remains would cut the block wherever the buffer filled up).
fn deflate_block(
    level: flate2::Compression,
    dict: &[u8],
    data: &[u8],
    last: bool,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    // Deflate spends its time looking for matches it will not find in random bytes (compressed or
    // encrypted files, media): such a block is stored as is, at memcpy speed, for a few bytes more.
    let level = if looks_incompressible(data) {
        flate2::Compression::none()
    } else {
        level
    };
    let mut deflate = Compress::new(level, false);
    if !dict.is_empty() {
        deflate.set_dictionary(dict).map_err(io::Error::other)?;
    }
    out.clear();
    // Room for incompressible data plus block overhead: one pass in the usual case.
    out.reserve(data.len() + data.len() / 64 + 1024);
    let mut consumed = 0;
    while consumed < data.len() {
        grow(out);
        let before = deflate.total_in();
        deflate
            .compress_vec(&data[consumed..], out, FlushCompress::None)
            .map_err(io::Error::other)?;
        consumed += usize::try_from(deflate.total_in() - before).expect("block-sized");
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    loop {
        grow(out);
        let status = deflate.compress_vec(&[], out, flush).map_err(io::Error::other)?;
        match status {
            Status::StreamEnd => return Ok(()),
            // The flush is complete once a call returns without filling the output.
            _ if !last && out.len() < out.capacity() => return Ok(()),
            _ => {}
        }
    }
}

/// Bits per byte above which a block's byte frequencies leave deflate (which codes bytes and
/// repeats within 32 KiB) next to nothing to gain: uniformly random bytes measure about 7.998 on a
/// block; text, code and binaries measure 4 to 7.
const INCOMPRESSIBLE_BITS: f64 = 7.95;

/// Whether a block's order-0 entropy says deflate would not shrink it. The decision depends on the
/// block's bytes only, so the output stays the same whatever the number of threads.
fn looks_incompressible(data: &[u8]) -> bool {
    if data.len() < 4096 {
        return false;
    }
    let mut counts = [0u32; 256];
    for &byte in data {
        counts[usize::from(byte)] += 1;
    }
    #[allow(clippy::cast_precision_loss)] // block-sized counts are exact in f64
    let total = data.len() as f64;
    let entropy: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / total;
            -p * p.log2()
        })
        .sum();
    entropy > INCOMPRESSIBLE_BITS
}

fn grow(out: &mut Vec<u8>) {
    if out.capacity() - out.len() < 1024 {
        out.reserve(out.capacity().max(4096));
    }
}

#[cfg(test)]
mod tests {
    use super::{BLOCK, BlockGzip};
    use std::io::{Read, Write};

    fn data() -> Vec<u8> {
        let mut x = 88_172_645_463_325_252_u64;
        (0..(BLOCK * 5 + 777))
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if i % 3 == 0 {
                    b"abcdefgh"[(x % 8) as usize]
                } else {
                    (x % 4) as u8 + b'0'
                }
            })
            .collect()
    }

    fn gzip(data: &[u8], threads: usize) -> Vec<u8> {
        let mut w = BlockGzip::new(Vec::new(), 6, threads).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn output_is_one_valid_gzip_member_whatever_the_threads() {
        let data = data();
        let one = gzip(&data, 1);
        for threads in [2, 3, 4] {
            assert!(gzip(&data, threads) == one, "{threads} threads");
        }
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&one[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == data);
        assert!(
            one.len() < data.len() / 2,
            "compresses: {} of {}",
            one.len(),
            data.len()
        );
    }

    #[test]
    fn random_blocks_are_stored_and_text_blocks_compressed() {
        let mut x = 0x9E37_79B9_7F4A_7C15_u64;
        let mut random: Vec<u8> = (0..BLOCK * 3)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[3]
            })
            .collect();
        random.extend(std::iter::repeat_n(b"kiln layer text ".as_slice(), BLOCK / 16).flatten());
        let out = gzip(&random, 2);
        assert!(out == gzip(&random, 1), "the same whatever the threads");
        // Three stored blocks (their 5-byte headers and a sync flush each) and one tiny text block.
        assert!(out.len() < BLOCK * 3 + 1024, "{} bytes", out.len());
        assert!(out.len() > BLOCK * 3, "{} bytes", out.len());
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&out[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == random);
        assert!(!super::looks_incompressible(&data()));
        assert!(super::looks_incompressible(&random[..BLOCK]));
    }

    #[test]
    fn empty_input_is_a_valid_gzip() {
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gzip(b"", 2)[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back.is_empty());
    }
}
