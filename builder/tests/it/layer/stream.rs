//! Broken layer streams: truncated, corrupt, wrongly compressed, or holding entry types a layer may not.

use std::fs;
use std::io::Write;

use kiln_builder::layer::{self, ApplyError, ApplyOptions, Compression, LayerWriter};

use super::RawTar;

fn apply(blob: &[u8]) -> Result<layer::Applied, ApplyError> {
    let target = tempfile::tempdir().unwrap();
    layer::apply(blob, target.path(), &ApplyOptions::new())
}

fn compress(tar: &[u8], compression: Compression) -> Vec<u8> {
    let mut writer = LayerWriter::new(Vec::new(), compression, 2).unwrap();
    writer.write_all(tar).unwrap();
    writer.finish().unwrap().1
}

/// A tar holding `a` (small) then `big` (300 KiB that do not compress, so a cut in the middle of a
/// compressed blob falls in its data).
fn two_files() -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let big: Vec<u8> = (0..300 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[3]
        })
        .collect();
    RawTar::new().file("a", b"first").file("big", &big).finish()
}

#[test]
fn valid_layers_apply_in_every_compression() {
    for compression in [Compression::Uncompressed, Compression::GZIP, Compression::ZSTD] {
        let tar = two_files();
        let applied = apply(&compress(&tar, compression)).unwrap();
        assert_eq!(applied.diff_id, layer::Digest::of(&tar), "{compression:?}");
        assert_eq!(
            (applied.uncompressed_size, applied.entries),
            (tar.len() as u64, 2)
        );
        assert_eq!(applied.compression.media_type(), compression.media_type());
    }
}

#[test]
fn truncated_inside_a_file_names_the_file() {
    let tar = two_files();
    let cut = 512 * 3 + 100 * 1024; // a's header and data, big's header, then part of big's data
    match apply(&tar[..cut]) {
        Err(ApplyError::Truncated {
            entry,
            expected,
            read,
        }) => {
            assert_eq!((entry.as_str(), expected, read), ("big", 300 * 1024, 100 * 1024));
        }
        other => panic!("{other:?}"),
    }
    for compression in [Compression::GZIP, Compression::ZSTD] {
        let blob = compress(&tar, compression);
        let err = apply(&blob[..blob.len() / 2]).unwrap_err();
        assert!(err.to_string().contains("\"big\""), "{compression:?}: {err}");
    }
}

#[test]
fn truncated_between_entries_is_caught() {
    let tar = two_files();
    match apply(&tar[..1024]) {
        Err(ApplyError::MissingEnd { after }) => assert_eq!(after.as_deref(), Some("a")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(apply(b""), Err(ApplyError::MissingEnd { after: None })));
    // Cut in the middle of a header block.
    assert!(matches!(
        apply(&tar[..1024 + 100]),
        Err(ApplyError::MissingEnd { .. })
    ));
}

#[test]
fn corrupt_compressed_streams_are_errors() {
    let mut gzip_garbage = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    gzip_garbage.extend((0..4000u32).map(|i| u8::try_from(i * 31 % 256).unwrap()));
    let mut zstd_garbage = vec![0x28, 0xb5, 0x2f, 0xfd];
    zstd_garbage.extend((0..4000u32).map(|i| u8::try_from(i * 17 % 256).unwrap()));
    for garbage in [gzip_garbage, zstd_garbage] {
        assert!(
            matches!(apply(&garbage), Err(ApplyError::Corrupt { after: None, .. })),
            "{:?}",
            apply(&garbage)
        );
    }
    // Valid gzip of a tar, then flipped bytes in the middle: either the inflater or the CRC objects.
    let mut blob = compress(&two_files(), Compression::GZIP);
    let mid = blob.len() / 2;
    for b in &mut blob[mid..mid + 16] {
        *b ^= 0x5a;
    }
    assert!(apply(&blob).is_err());
}

#[test]
fn corrupt_tar_header_names_the_entry_before_it() {
    let mut tar = two_files();
    tar[1024 + 10] ^= 0xff; // big's header, past a's header and data
    match apply(&tar) {
        Err(ApplyError::Corrupt { after, source }) => {
            assert_eq!(after.as_deref(), Some("a"));
            assert!(source.to_string().contains("checksum"), "{source}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unsupported_entry_types_are_named() {
    for (flag, name) in [
        (b'S', "sparse"),
        (b'V', "volume"),
        (b'Z', "unknown"),
        (b'7', "contiguous"),
    ] {
        let tar = RawTar::new().entry(name.as_bytes(), flag, b"", b"").finish();
        match apply(&tar) {
            Err(ApplyError::UnsupportedType { entry, type_flag }) => {
                assert_eq!((entry.as_str(), type_flag), (name, char::from(flag)));
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn other_compressions_are_refused_by_name() {
    assert!(matches!(
        apply(&[0xfd, b'7', b'z', b'X', b'Z', 0, 1, 2]),
        Err(ApplyError::UnsupportedCompression { format: "xz" })
    ));
    assert!(matches!(
        apply(b"BZh91AY&SY"),
        Err(ApplyError::UnsupportedCompression { format: "bzip2" })
    ));
}

#[test]
fn failed_apply_says_the_target_must_be_discarded() {
    // Documented behaviour: what came before the bad entry is in place; the caller removes the target.
    let target = tempfile::tempdir().unwrap();
    let tar = RawTar::new().file("ok", b"1").file("../bad", b"2").finish();
    assert!(layer::apply(&tar[..], target.path(), &ApplyOptions::new()).is_err());
    assert_eq!(fs::read_to_string(target.path().join("ok")).unwrap(), "1");
}
