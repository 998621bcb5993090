//! ADD's archive extraction: formats, ownership, and entries that try to leave the destination.

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;

use kiln_builder::fsop::{Archives, CopySpec, FsopError, Owner, Ownership};

use super::Fx;

/// One tar entry to build.
enum E<'a> {
    Dir(&'a str, u32),
    File(&'a str, &'a str, u32),
    Symlink(&'a str, &'a str),
    Link(&'a str, &'a str),
}

/// A tar whose entries are owned by 1000:1000 and dated 2001-09-09.
fn tar_of(entries: &[E<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_uid(1000);
        header.set_gid(1000);
        header.set_mtime(1_000_000_000);
        let (path, data): (&str, &[u8]) = match entry {
            E::Dir(path, mode) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(*mode);
                (path, b"")
            }
            E::File(path, content, mode) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                (path, content.as_bytes())
            }
            E::Symlink(path, target) | E::Link(path, target) => {
                header.set_entry_type(if matches!(entry, E::Symlink(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                // A hardlink's header mode is applied to the inode it shares.
                header.set_mode(if matches!(entry, E::Symlink(..)) {
                    0o777
                } else {
                    0o755
                });
                header.set_link_name_literal(target).unwrap();
                (path, b"")
            }
        };
        // Raw names: the builder's own path setter would refuse the `..` ones under test.
        let name = header.as_old_mut().name.as_mut();
        name.fill(0);
        name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap()
}

pub(super) fn sample() -> Vec<u8> {
    tar_of(&[
        E::Dir("pkg/", 0o750),
        E::File("pkg/bin/tool", "#!/bin/sh\n", 0o755),
        E::File("pkg/.wh.gone", "not a whiteout here", 0o644),
        E::Symlink("pkg/latest", "bin/tool"),
        E::Link("pkg/tool2", "pkg/bin/tool"),
    ])
}

fn add(
    fx: &Fx,
    source: &str,
    dest: &str,
    chown: Option<Owner>,
) -> Result<kiln_builder::fsop::CopyReport, FsopError> {
    let mut spec = CopySpec::new([source], dest);
    spec.archives = Archives::Extract;
    spec.ownership = Ownership::context(chown);
    fx.copy(&spec)
}

pub(super) fn compressed(kind: &str, tar: &[u8]) -> Vec<u8> {
    match kind {
        "tar" => tar.to_vec(),
        "gz" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(tar).unwrap();
            e.finish().unwrap()
        }
        "bz2" => {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
            e.write_all(tar).unwrap();
            e.finish().unwrap()
        }
        "xz" => {
            let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
            e.write_all(tar).unwrap();
            e.finish().unwrap()
        }
        "zst" => zstd::encode_all(tar, 3).unwrap(),
        _ => unreachable!(),
    }
}

#[test]
fn every_compression_is_extracted() {
    for kind in ["tar", "gz", "bz2", "xz", "zst"] {
        let fx = Fx::new();
        fs::write(fx.ctx(&format!("a.{kind}")), compressed(kind, &sample())).unwrap();
        let report = add(&fx, &format!("a.{kind}"), "/opt/", None).unwrap();
        assert_eq!(report.archives, 1, "{kind}");
        assert_eq!(fx.read("opt/pkg/bin/tool"), "#!/bin/sh\n", "{kind}");
        assert_eq!(
            fs::read_link(fx.at("opt/pkg/latest")).unwrap().to_str(),
            Some("bin/tool")
        );
        assert_eq!(fx.read("opt/pkg/.wh.gone"), "not a whiteout here");
        assert!(!fx.exists(&format!("opt/a.{kind}")));
    }
}

#[test]
fn owners_modes_and_times_come_from_the_headers() {
    let fx = Fx::new();
    fs::write(fx.ctx("a.tar"), sample()).unwrap();
    add(&fx, "a.tar", "/x", None).unwrap();
    assert_eq!(fx.meta("x"), (0o755, 0, 0));
    assert_eq!(fx.meta("x/pkg"), (0o750, 1000, 1000));
    assert_eq!(fx.meta("x/pkg/bin/tool"), (0o755, 1000, 1000));
    // `bin` is implied by `pkg/bin/tool`: 0755 and root's.
    assert_eq!(fx.meta("x/pkg/bin"), (0o755, 0, 0));
    let tool = fs::metadata(fx.at("x/pkg/bin/tool")).unwrap();
    assert_eq!(
        tool.modified().unwrap(),
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000)
    );
    assert_eq!(fs::metadata(fx.at("x/pkg/tool2")).unwrap().ino(), tool.ino());
    assert_eq!(fs::metadata(fx.at("x/pkg")).unwrap().mtime(), 1_000_000_000);
}

#[test]
fn chown_overrides_header_owners() {
    let fx = Fx::new();
    fs::write(fx.ctx("a.tar"), sample()).unwrap();
    add(&fx, "a.tar", "/x/", Some(Owner::new(5, 6))).unwrap();
    assert_eq!(fx.meta("x"), (0o755, 5, 6));
    assert_eq!(fx.meta("x/pkg/bin/tool"), (0o755, 5, 6));
    assert_eq!(fx.meta("x/pkg/latest").1, 5);
}

#[test]
fn non_archives_and_copy_are_copied_as_files() {
    let fx = Fx::new();
    fx.file("notes.tar", "just text, not a tar");
    fs::write(fx.ctx("real.tar"), sample()).unwrap();
    let report = add(&fx, "notes.tar", "/n/", None).unwrap();
    assert_eq!(report.archives, 0);
    assert_eq!(fx.read("n/notes.tar"), "just text, not a tar");
    // COPY never extracts.
    fx.cp(&["real.tar"], "/c/").unwrap();
    assert_eq!(fs::read(fx.at("c/real.tar")).unwrap(), sample());
}

#[test]
fn entries_climbing_out_are_refused() {
    let fx = Fx::new();
    fs::write(fx.ctx("evil.tar"), tar_of(&[E::File("../../escape", "x", 0o644)])).unwrap();
    let err = add(&fx, "evil.tar", "/x/", None).unwrap_err();
    assert!(matches!(err, FsopError::ArchiveEscape { .. }), "{err:?}");
    assert!(err.to_string().contains("is outside extraction root"), "{err}");
    assert!(!fx.exists("escape"));
}

#[test]
fn absolute_entries_and_symlinks_stay_in_the_destination() {
    let fx = Fx::new();
    let name = format!("kiln-fsop-untar-{}", std::process::id());
    fs::write(
        fx.ctx("sneaky.tar"),
        tar_of(&[
            E::File(&format!("/etc/{name}"), "abs", 0o644),
            E::Symlink("sys", "/etc"),
            E::File(&format!("sys/{name}.2"), "via link", 0o644),
            E::Symlink("up", "../../../.."),
            E::File(&format!("up/{name}.3"), "via dotdot", 0o644),
        ]),
    )
    .unwrap();
    add(&fx, "sneaky.tar", "/x/", None).unwrap();
    // The destination directory is the extraction's root: `/etc` means /x/etc.
    assert_eq!(fx.read(&format!("x/etc/{name}")), "abs");
    assert_eq!(fx.read(&format!("x/etc/{name}.2")), "via link");
    assert_eq!(fx.read(&format!("x/{name}.3")), "via dotdot");
    for host in [
        format!("/etc/{name}"),
        format!("/etc/{name}.2"),
        format!("/{name}.3"),
    ] {
        assert!(
            !std::path::Path::new(&host).exists(),
            "{host} written on the host"
        );
    }
    assert!(!fx.exists("etc"));
}

#[test]
fn devices_in_archives_are_refused() {
    let fx = Fx::new();
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Char);
    header.set_mode(0o666);
    header.set_path("null").unwrap();
    header.set_size(0);
    header.set_cksum();
    builder.append(&header, &b""[..]).unwrap();
    fs::write(fx.ctx("dev.tar"), builder.into_inner().unwrap()).unwrap();
    let err = add(&fx, "dev.tar", "/x/", None).unwrap_err();
    assert!(matches!(err, FsopError::ArchiveEntry { .. }), "{err:?}");
}
