//! The tar encoder of the diff side: USTAR headers, PAX records for whatever USTAR cannot hold (names and
//! link targets over 100 bytes, extended attributes, ids and sizes past the octal fields), empty user and
//! group names, and nothing that varies between two runs over the same tree.
//!
//! The `tar` crate builds and checksums the 512-byte header blocks; this module decides what goes in
//! them and writes the stream itself, so an entry's data is always exactly its declared size.

use std::io::{self, Write};

const BLOCK: usize = 512;
/// Largest value the 12-byte octal size and mtime fields hold.
const MAX_OCTAL_11: u64 = 0o777_7777_7777;
/// Largest value the 8-byte octal uid and gid fields hold.
const MAX_OCTAL_7: u64 = 0o777_7777;

/// What an entry is, with the fields only that kind has.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind<'a> {
    Regular { size: u64 },
    Directory,
    Symlink { target: &'a [u8] },
    Hardlink { target: &'a [u8] },
    Char { major: u32, minor: u32 },
    Block { major: u32, minor: u32 },
    Fifo,
}

/// One entry's header: its name as stored (directories end with `/`) and its metadata.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EntryHeader<'a> {
    pub(crate) name: &'a [u8],
    pub(crate) kind: Kind<'a>,
    /// Permission bits plus setuid, setgid and sticky (`0o7777`).
    pub(crate) mode: u32,
    pub(crate) uid: u64,
    pub(crate) gid: u64,
    /// Whole seconds since the epoch.
    pub(crate) mtime: i64,
    /// Sorted by name.
    pub(crate) xattrs: &'a [(Vec<u8>, Vec<u8>)],
}

/// Writes a tar stream entry by entry into `W`.
pub(crate) struct TarWriter<W: Write> {
    out: W,
    pax: Vec<u8>,
}

impl<W: Write> TarWriter<W> {
    pub(crate) fn new(out: W) -> TarWriter<W> {
        TarWriter { out, pax: Vec::new() }
    }

    /// Writes the header blocks of one entry (a PAX extension first when needed). For a regular file the
    /// caller then writes exactly `size` bytes into [`get_mut`](Self::get_mut) and calls [`pad`](Self::pad).
    pub(crate) fn header(&mut self, entry: &EntryHeader<'_>) -> io::Result<()> {
        let mut header = tar::Header::new_ustar();
        self.pax.clear();

        let (type_flag, size) = match entry.kind {
            Kind::Regular { size } => (tar::EntryType::Regular, size),
            Kind::Directory => (tar::EntryType::Directory, 0),
            Kind::Symlink { .. } => (tar::EntryType::Symlink, 0),
            Kind::Hardlink { .. } => (tar::EntryType::Link, 0),
            Kind::Char { .. } => (tar::EntryType::Char, 0),
            Kind::Block { .. } => (tar::EntryType::Block, 0),
            Kind::Fifo => (tar::EntryType::Fifo, 0),
        };
        header.set_entry_type(type_flag);
        header.set_mode(entry.mode & 0o7777);

        let fields = &mut header.as_ustar_mut().expect("a ustar header").name;
        if entry.name.len() <= fields.len() {
            fields[..entry.name.len()].copy_from_slice(entry.name);
        } else {
            add_record(&mut self.pax, b"path", entry.name);
        }
        if let Kind::Symlink { target } | Kind::Hardlink { target } = entry.kind {
            let field = &mut header.as_ustar_mut().expect("a ustar header").linkname;
            if target.len() <= field.len() {
                field[..target.len()].copy_from_slice(target);
            } else {
                add_record(&mut self.pax, b"linkpath", target);
            }
        }
        if let Kind::Char { major, minor } | Kind::Block { major, minor } = entry.kind {
            header.set_device_major(major)?;
            header.set_device_minor(minor)?;
        }

        header.set_uid(numeric(&mut self.pax, b"uid", entry.uid, MAX_OCTAL_7));
        header.set_gid(numeric(&mut self.pax, b"gid", entry.gid, MAX_OCTAL_7));
        header.set_size(numeric(&mut self.pax, b"size", size, MAX_OCTAL_11));
        if let Ok(mtime) = u64::try_from(entry.mtime) {
            header.set_mtime(numeric(&mut self.pax, b"mtime", mtime, MAX_OCTAL_11));
        } else {
            add_record(&mut self.pax, b"mtime", entry.mtime.to_string().as_bytes());
            header.set_mtime(0);
        }
        for (name, value) in entry.xattrs {
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(name);
            add_record(&mut self.pax, &key, value);
        }
        header.set_cksum();

        if !self.pax.is_empty() {
            self.write_pax(entry.name)?;
        }
        self.out.write_all(header.as_bytes())
    }

    /// The stream the entries go to, for writing file data into it directly.
    pub(crate) fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Pads the data of a `size`-byte file to the next block.
    pub(crate) fn pad(&mut self, size: u64) -> io::Result<()> {
        let rem = usize::try_from(size % BLOCK as u64).expect("below 512");
        if rem != 0 {
            self.out.write_all(&[0; BLOCK][rem..])?;
        }
        Ok(())
    }

    /// Ends the archive with two zero blocks and gives the writer back.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0; 2 * BLOCK])?;
        Ok(self.out)
    }

    /// Writes the collected records as a PAX extended header (type `x`) for the entry named `name`. Its
    /// own name follows the common `<dir>/PaxHeaders.0/<base>` convention so tools listing the raw
    /// archive show what it belongs to; readers ignore it.
    fn write_pax(&mut self, name: &[u8]) -> io::Result<()> {
        let trimmed = name.strip_suffix(b"/").unwrap_or(name);
        let (dir, base) = match trimmed.iter().rposition(|&b| b == b'/') {
            Some(i) => (&trimmed[..=i], &trimmed[i + 1..]),
            None => (&b""[..], trimmed),
        };
        let mut pax_name = Vec::with_capacity(100);
        pax_name.extend_from_slice(dir);
        pax_name.extend_from_slice(b"PaxHeaders.0/");
        pax_name.extend_from_slice(base);
        pax_name.truncate(100);

        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::XHeader);
        header.as_ustar_mut().expect("a ustar header").name[..pax_name.len()].copy_from_slice(&pax_name);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(self.pax.len() as u64);
        header.set_cksum();
        self.out.write_all(header.as_bytes())?;
        self.out.write_all(&self.pax)?;
        self.pad(self.pax.len() as u64)
    }
}

/// Returns `value` for the header field when it fits, else records it in PAX and returns 0.
fn numeric(pax: &mut Vec<u8>, key: &[u8], value: u64, max: u64) -> u64 {
    if value <= max {
        value
    } else {
        add_record(pax, key, value.to_string().as_bytes());
        0
    }
}

/// Appends one PAX record, `"<len> <key>=<value>\n"`, where `<len>` counts the whole record including
/// its own digits.
fn add_record(pax: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    pax.extend_from_slice(len.to_string().as_bytes());
    pax.push(b' ');
    pax.extend_from_slice(key);
    pax.push(b'=');
    pax.extend_from_slice(value);
    pax.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::add_record;

    #[test]
    fn pax_record_length_counts_its_own_digits() {
        for value_len in [0, 1, 5, 6, 7, 90, 95, 96, 97, 994, 995, 996, 10_000] {
            let mut pax = Vec::new();
            add_record(&mut pax, b"path", &vec![b'a'; value_len]);
            let space = pax.iter().position(|&b| b == b' ').unwrap();
            let declared: usize = std::str::from_utf8(&pax[..space]).unwrap().parse().unwrap();
            assert_eq!(declared, pax.len(), "value of {value_len} bytes");
        }
    }
}
