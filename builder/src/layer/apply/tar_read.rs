//! The tar decoder of the apply side. The `tar` crate parses each 512-byte header; walking the stream,
//! extension headers and data is done here, because a layer must be read exactly:
//! - PAX records are split by their length prefix, so binary xattr values (a `security.capability`
//!   holding a `\n` byte) and names with newlines come through whole;
//! - the end of the archive is its zero block, so a stream cut on an entry boundary is caught;
//! - a stream that ends inside a header or data is an error, never a shorter file.

use std::io::{self, Read};

use rustix::fs::Timespec;
use tar::{EntryType, Header};

const BLOCK: usize = 512;
/// Cap on one extension header's size (PAX records, GNU long names): bounded memory per entry.
const MAX_EXTENSION: u64 = 16 << 20;

/// One entry with its extension headers folded in.
#[derive(Debug)]
pub(crate) struct Entry {
    /// The name as stored (PAX `path`, else GNU long name, else the header's prefix and name).
    pub(crate) path: Vec<u8>,
    pub(crate) kind: EntryType,
    /// PAX `linkpath`, else GNU long link, else the header's.
    pub(crate) link: Vec<u8>,
    pub(crate) size: u64,
    pub(crate) mode: u32,
    pub(crate) uid: u64,
    pub(crate) gid: u64,
    pub(crate) mtime: Timespec,
    pub(crate) device: (u32, u32),
    pub(crate) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// The entry uses PAX sparse-file records, which apply does not support.
    pub(crate) sparse: bool,
}

/// Overrides collected from extension headers for the entry that follows them.
#[derive(Default)]
struct Pending {
    path: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    size: Option<u64>,
    uid: Option<u64>,
    gid: Option<u64>,
    mtime: Option<Timespec>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    sparse: bool,
}

pub(crate) struct TarReader<R> {
    inner: R,
    /// Data bytes of the current entry not read yet, and the padding after them.
    left: u64,
    padding: u64,
}

impl<R: Read> TarReader<R> {
    pub(crate) fn new(inner: R) -> TarReader<R> {
        TarReader {
            inner,
            left: 0,
            padding: 0,
        }
    }

    /// The next entry, or `None` at the end-of-archive zero block. A stream ending before that block is
    /// an `UnexpectedEof` error; a malformed header an `InvalidData` one.
    pub(crate) fn next_entry(&mut self) -> io::Result<Option<Entry>> {
        self.skip_rest()?;
        let mut pending = Pending::default();
        loop {
            let mut block = [0u8; BLOCK];
            self.inner
                .read_exact(&mut block)
                .map_err(|e| eof_as("the stream ends before the end-of-archive marker", e))?;
            if block.iter().all(|&b| b == 0) {
                return Ok(None);
            }
            let header = Header::from_byte_slice(&block);
            check_sum(&block, header)?;
            let size = header.entry_size()?;
            match header.entry_type() {
                EntryType::XHeader => parse_pax(&self.read_extension(size)?, &mut pending)?,
                // Global records would apply to every later entry; containerd and Docker ignore them.
                EntryType::XGlobalHeader => {
                    self.read_extension(size)?;
                }
                EntryType::GNULongName => pending.path = Some(trim_nul(self.read_extension(size)?)),
                EntryType::GNULongLink => pending.link = Some(trim_nul(self.read_extension(size)?)),
                kind => return Ok(Some(self.start_entry(header, kind, size, pending)?)),
            }
        }
    }

    /// Reads data of the current entry; 0 at its end. A stream ending early is `UnexpectedEof`.
    pub(crate) fn read_data(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = usize::try_from(self.left).unwrap_or(usize::MAX).min(buf.len());
        if want == 0 {
            return Ok(0);
        }
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the stream ends inside the entry's data",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }

    /// Gives the underlying reader back (to drain what follows the archive).
    pub(crate) fn into_inner(self) -> R {
        self.inner
    }

    fn start_entry(
        &mut self,
        header: &Header,
        kind: EntryType,
        size: u64,
        pending: Pending,
    ) -> io::Result<Entry> {
        let size = pending.size.unwrap_or(size);
        // Only these carry data; for the rest a size field is noise that some writers leave behind.
        let data = match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => size,
            _ if kind.as_byte().is_ascii_digit() => 0,
            _ => size,
        };
        self.left = data;
        self.padding = data.next_multiple_of(BLOCK as u64) - data;
        let mtime = match pending.mtime {
            Some(t) => t,
            None => Timespec {
                tv_sec: i64::try_from(numeric(&header.as_old().mtime, header.mtime())?).unwrap_or(i64::MAX),
                tv_nsec: 0,
            },
        };
        let device = (
            header.device_major().ok().flatten().unwrap_or(0),
            header.device_minor().ok().flatten().unwrap_or(0),
        );
        Ok(Entry {
            path: pending.path.unwrap_or_else(|| header.path_bytes().into_owned()),
            kind,
            link: pending.link.unwrap_or_else(|| {
                header
                    .link_name_bytes()
                    .map(std::borrow::Cow::into_owned)
                    .unwrap_or_default()
            }),
            size: data,
            mode: (numeric(&header.as_old().mode, header.mode().map(u64::from))? & 0o7777)
                .try_into()
                .unwrap_or(0),
            uid: pending
                .uid
                .map_or_else(|| numeric(&header.as_old().uid, header.uid()), Ok)?,
            gid: pending
                .gid
                .map_or_else(|| numeric(&header.as_old().gid, header.gid()), Ok)?,
            mtime,
            device,
            xattrs: pending.xattrs,
            sparse: pending.sparse,
        })
    }

    fn read_extension(&mut self, size: u64) -> io::Result<Vec<u8>> {
        if size > MAX_EXTENSION {
            return Err(invalid(format!(
                "an extension header of {size} bytes is larger than kiln accepts"
            )));
        }
        let mut data = vec![0; usize::try_from(size).expect("capped")];
        self.inner
            .read_exact(&mut data)
            .map_err(|e| eof_as("the stream ends inside an extension header", e))?;
        self.skip(size.next_multiple_of(BLOCK as u64) - size)?;
        Ok(data)
    }

    fn skip_rest(&mut self) -> io::Result<()> {
        let n = self.left + self.padding;
        self.left = 0;
        self.padding = 0;
        self.skip(n)
    }

    fn skip(&mut self, n: u64) -> io::Result<()> {
        let copied = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())?;
        if copied < n {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the stream ends inside an entry",
            ));
        }
        Ok(())
    }
}

fn check_sum(block: &[u8; BLOCK], header: &Header) -> io::Result<()> {
    let stored = header
        .cksum()
        .map_err(|_| invalid("a header's checksum field is not a number"))?;
    let unsigned: u32 = block[..148]
        .iter()
        .chain(&block[156..])
        .map(|&b| u32::from(b))
        .sum::<u32>()
        + 8 * 32;
    // Some old writers summed signed chars; accept their checksums too.
    let signed: i64 = block[..148]
        .iter()
        .chain(&block[156..])
        .map(|&b| i64::from(i8::from_ne_bytes([b])))
        .sum::<i64>()
        + 8 * 32;
    if stored == unsigned || i64::from(stored) == signed {
        Ok(())
    } else {
        Err(invalid("a header's checksum does not match: the tar is corrupt"))
    }
}

/// Parses PAX records, `"<len> <key>=<value>\n"`, by their length (values may hold any byte).
fn parse_pax(mut data: &[u8], pending: &mut Pending) -> io::Result<()> {
    while !data.is_empty() {
        let space = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| invalid("a PAX record has no length"))?;
        let len: usize = std::str::from_utf8(&data[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|&len| len > space && len <= data.len())
            .ok_or_else(|| invalid("a PAX record's length is wrong"))?;
        let record = &data[space + 1..len];
        data = &data[len..];
        let record = record
            .strip_suffix(b"\n")
            .ok_or_else(|| invalid("a PAX record does not end with a newline"))?;
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| invalid("a PAX record has no `=`"))?;
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        let number = || {
            std::str::from_utf8(value)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| invalid("a numeric PAX record is not a number"))
        };
        match key {
            b"path" => pending.path = Some(value.to_vec()),
            b"linkpath" => pending.link = Some(value.to_vec()),
            b"size" => pending.size = Some(number()?),
            b"uid" => pending.uid = Some(number()?),
            b"gid" => pending.gid = Some(number()?),
            b"mtime" => pending.mtime = parse_time(value),
            _ if key.starts_with(b"GNU.sparse.") => pending.sparse = true,
            _ => {
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    pending.xattrs.push((name.to_vec(), value.to_vec()));
                }
            }
        }
    }
    Ok(())
}

/// Parses a PAX time, `<seconds>[.<fraction>]`, possibly negative.
pub(crate) fn parse_time(value: &[u8]) -> Option<Timespec> {
    let text = std::str::from_utf8(value).ok()?;
    let (negative, text) = text.strip_prefix('-').map_or((false, text), |t| (true, t));
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let secs: i64 = secs.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(9)
        .fold(0i64, |n, b| n * 10 + i64::from(b - b'0'));
    Some(match (negative, nanos) {
        (false, _) => Timespec {
            tv_sec: secs,
            tv_nsec: nanos,
        },
        (true, 0) => Timespec {
            tv_sec: -secs,
            tv_nsec: 0,
        },
        (true, _) => Timespec {
            tv_sec: -secs - 1,
            tv_nsec: 1_000_000_000 - nanos,
        },
    })
}

fn trim_nul(mut data: Vec<u8>) -> Vec<u8> {
    while data.last() == Some(&0) {
        data.pop();
    }
    data
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

fn eof_as(message: &str, e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        io::Error::new(io::ErrorKind::UnexpectedEof, message.to_owned())
    } else {
        e
    }
}

/// A numeric header field as Go's archive/tar (so Docker and BuildKit) reads it: a field of only
/// NULs and spaces, which some writers leave for what they do not set, is 0; anything else must
/// parse.
fn numeric(raw: &[u8], parsed: io::Result<u64>) -> io::Result<u64> {
    if raw.iter().all(|b| *b == 0 || *b == b' ') {
        Ok(0)
    } else {
        parsed
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::{Pending, numeric, parse_pax, parse_time};

    #[test]
    fn pax_values_may_hold_newlines() {
        let mut pending = Pending::default();
        parse_pax(
            b"29 SCHILY.xattr.user.k=a\nb\x00c\n16 path=x\ny/z.d\n",
            &mut pending,
        )
        .unwrap();
        assert_eq!(pending.xattrs, vec![(b"user.k".to_vec(), b"a\nb\x00c".to_vec())]);
        assert_eq!(pending.path.as_deref(), Some(&b"x\ny/z.d"[..]));
    }

    #[test]
    fn malformed_pax_is_an_error() {
        for bad in [&b"99 path=x\n"[..], b"5 path=x\n", b"x path=y\n", b"11 pathxyz\n"] {
            assert!(parse_pax(bad, &mut Pending::default()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pax_times_parse_with_fractions_and_signs() {
        let t = |s: &str| parse_time(s.as_bytes()).map(|t| (t.tv_sec, t.tv_nsec));
        assert_eq!(t("1700000000"), Some((1_700_000_000, 0)));
        assert_eq!(t("1700000000.5"), Some((1_700_000_000, 500_000_000)));
        assert_eq!(t("-1.25"), Some((-2, 750_000_000)));
        assert_eq!(t("12x"), None);
    }

    #[test]
    fn empty_numeric_fields_read_as_zero_as_in_go() {
        assert_eq!(
            numeric(&[0; 8], Err(io::Error::other("not a number"))).unwrap(),
            0
        );
        assert_eq!(
            numeric(b"       \0", Err(io::Error::other("not a number"))).unwrap(),
            0
        );
        assert!(numeric(b"12x\0\0\0\0\0", Err(io::Error::other("not a number"))).is_err());
        assert_eq!(numeric(b"0000017\0", Ok(15)).unwrap(), 15);
    }
}
