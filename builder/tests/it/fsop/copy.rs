//! COPY semantics: where sources land, what metadata they keep, the flags.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime};

use kiln_builder::fsop::{CopySpec, FsopError, Mode, Owner, Ownership};

use super::{Fx, chmod, chown, write};

#[test]
fn single_file_to_file_path() {
    let fx = Fx::new();
    fx.file("a.txt", "alpha");
    fx.cp(&["a.txt"], "/b.txt").unwrap();
    assert_eq!(fx.read("b.txt"), "alpha");
    assert_eq!(fx.tree(), ["b.txt"]);
}

#[test]
fn file_into_directory_with_trailing_slash_creates_it_0755() {
    let fx = Fx::new();
    fx.file("a.txt", "alpha");
    fx.cp(&["a.txt"], "/x/y/").unwrap();
    assert_eq!(fx.read("x/y/a.txt"), "alpha");
    assert_eq!(fx.meta("x"), (0o755, 0, 0));
    assert_eq!(fx.meta("x/y"), (0o755, 0, 0));
}

#[test]
fn file_to_missing_path_creates_parents_as_chown_owner() {
    let fx = Fx::new();
    fx.file("a.txt", "alpha");
    let mut spec = CopySpec::new(["a.txt"], "/opt/app/run.txt");
    spec.ownership = Ownership::context(Some(Owner::new(1000, 1001)));
    fx.copy(&spec).unwrap();
    // BuildKit's MkdirAll chowns the directories it creates to the --chown user.
    assert_eq!(fx.meta("opt"), (0o755, 1000, 1001));
    assert_eq!(fx.meta("opt/app"), (0o755, 1000, 1001));
    assert_eq!(fx.meta("opt/app/run.txt").1, 1000);
}

#[test]
fn existing_parents_keep_their_owner_and_mode() {
    let fx = Fx::new();
    fx.file("a.txt", "alpha");
    fs::create_dir(fx.at("etc")).unwrap();
    chmod(&fx.at("etc"), 0o700);
    let mut spec = CopySpec::new(["a.txt"], "/etc/a.txt");
    spec.ownership = Ownership::context(Some(Owner::new(7, 7)));
    fx.copy(&spec).unwrap();
    assert_eq!(fx.meta("etc"), (0o700, 0, 0));
}

#[test]
fn directory_source_copies_its_contents() {
    let fx = Fx::new();
    fx.file("src/main.rs", "fn main() {}");
    fx.file("src/lib/util.rs", "pub fn x() {}");
    fx.cp(&["src"], "/app").unwrap();
    assert_eq!(fx.tree(), ["app/", "app/lib/", "app/lib/util.rs", "app/main.rs"]);
    // The same with a trailing slash, and into an existing directory (merged).
    fx.file("more/extra.txt", "x");
    fx.cp(&["more/"], "/app/").unwrap();
    assert_eq!(fx.read("app/extra.txt"), "x");
    assert_eq!(fx.read("app/main.rs"), "fn main() {}");
}

#[test]
fn new_destination_of_a_directory_source_is_0755_not_the_source_mode() {
    // fsutil creates the destination with MkdirAll and then leaves its metadata alone.
    let fx = Fx::new();
    fx.file("src/a", "a");
    chmod(&fx.ctx("src"), 0o700);
    fx.cp(&["src"], "/dst").unwrap();
    assert_eq!(fx.meta("dst").0, 0o755);
}

#[test]
fn nested_directories_keep_their_source_mode() {
    let fx = Fx::new();
    fx.file("src/private/key", "k");
    chmod(&fx.ctx("src/private"), 0o700);
    fx.cp(&["src"], "/dst").unwrap();
    assert_eq!(fx.meta("dst/private").0, 0o700);
}

#[test]
fn several_sources_need_a_directory_destination() {
    let fx = Fx::new();
    fx.file("a", "a");
    fx.file("b", "b");
    let err = fx.cp(&["a", "b"], "/dst").unwrap_err();
    assert_eq!(
        err.to_string(),
        "When using COPY with more than one source file, the destination must be a directory and end with a /"
    );
    assert!(!fx.exists("dst"));
    fx.cp(&["a", "b"], "/dst/").unwrap();
    assert_eq!(fx.tree(), ["dst/", "dst/a", "dst/b"]);
}

#[test]
fn wildcards() {
    let fx = Fx::new();
    for name in ["a.txt", "b.txt", "c.md", "dir/x.txt", "dir/y.md", "dir/sub/z.txt"] {
        fx.file(name, name);
    }
    fx.cp(&["*.txt"], "/t/").unwrap();
    assert_eq!(fx.tree(), ["t/", "t/a.txt", "t/b.txt"]);

    let fx2 = Fx {
        ctx: fx.ctx,
        root: tempfile::tempdir().unwrap(),
    };
    fx2.cp(&["dir/*"], "/d/").unwrap();
    // A matched directory copies its contents into dest, like a named one.
    assert_eq!(fx2.tree(), ["d/", "d/x.txt", "d/y.md", "d/z.txt"]);

    let fx3 = Fx {
        ctx: fx2.ctx,
        root: tempfile::tempdir().unwrap(),
    };
    fx3.cp(&["[ab].txt", "*/*.md"], "/c/").unwrap();
    assert_eq!(fx3.tree(), ["c/", "c/a.txt", "c/b.txt", "c/y.md"]);
}

#[test]
fn wildcard_matching_nothing_is_an_error_unless_allowed() {
    let fx = Fx::new();
    fx.file("a.txt", "a");
    let err = fx.cp(&["*.nope"], "/d/").unwrap_err();
    assert!(matches!(err, FsopError::NoSourceFiles { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "\"/*.nope\": not found: no source files were specified"
    );
    let mut spec = CopySpec::new(["*.nope", "a.txt"], "/d/");
    spec.allow_empty_wildcard = true;
    fx.copy(&spec).unwrap();
    assert_eq!(fx.tree(), ["d/", "d/a.txt"]);
}

#[test]
fn missing_source_reads_like_buildkit() {
    let fx = Fx::new();
    let err = fx.cp(&["./missing/../missing.txt"], "/d/").unwrap_err();
    assert_eq!(err.to_string(), "\"/missing.txt\": not found");
    let err = fx.cp(&["dir/file"], "/d/").unwrap_err();
    assert_eq!(err.to_string(), "\"/dir/file\": not found");
}

#[test]
fn dot_destinations_are_the_root_directory() {
    for dest in [".", "./", "/", "/."] {
        let fx = Fx::new();
        fx.file("a.txt", "a");
        fx.cp(&["a.txt"], dest).unwrap();
        assert_eq!(fx.tree(), ["a.txt"], "dest {dest:?}");
    }
}

#[test]
fn file_to_existing_directory_without_slash_goes_inside() {
    let fx = Fx::new();
    fx.file("a.txt", "a");
    fs::create_dir(fx.at("existing")).unwrap();
    fx.cp(&["a.txt"], "/existing").unwrap();
    assert_eq!(fx.read("existing/a.txt"), "a");
}

#[test]
fn overwrites_files_but_not_directories() {
    let fx = Fx::new();
    fx.file("a.txt", "new");
    fx.file("d/x", "new x");
    write(&fx.at("a.txt"), "old");
    write(&fx.at("dst/x"), "old x");
    fx.cp(&["a.txt"], "/a.txt").unwrap();
    assert_eq!(fx.read("a.txt"), "new");
    fx.cp(&["d"], "/dst").unwrap();
    assert_eq!(fx.read("dst/x"), "new x");

    // A file where the copy needs a directory, and the reverse, are errors.
    fs::create_dir_all(fx.at("blocked/x")).unwrap();
    let err = fx.cp(&["d"], "/blocked").unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot replace to directory /blocked/x with file"
    );
    write(&fx.at("plain"), "p");
    let err = fx.cp(&["d"], "/plain").unwrap_err();
    assert!(matches!(err, FsopError::CopyToNonDirectory { .. }), "{err:?}");
}

#[test]
fn preserves_mode_times_and_xattrs() {
    let fx = Fx::new();
    let a = fx.file("tool", "#!/bin/sh\n");
    chmod(&a, 0o4751);
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    fs::File::options()
        .write(true)
        .open(&a)
        .unwrap()
        .set_modified(old)
        .unwrap();
    rustix::fs::setxattr(&a, "user.origin", b"context", rustix::fs::XattrFlags::empty()).unwrap();
    fx.file("d/n/f", "f");
    fs::File::open(fx.ctx("d/n")).unwrap().set_modified(old).unwrap();

    fx.cp(&["tool", "d"], "/out/").unwrap();
    let m = fs::metadata(fx.at("out/tool")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o4751);
    assert_eq!(m.modified().unwrap(), old);
    let mut value = [0u8; 16];
    let n = rustix::fs::getxattr(fx.at("out/tool"), "user.origin", &mut value[..]).unwrap();
    assert_eq!(&value[..n], b"context");
    // A copied directory gets its source's mtime once its contents are in.
    assert_eq!(fs::metadata(fx.at("out/n")).unwrap().modified().unwrap(), old);
}

#[test]
fn context_files_are_root_owned_stage_files_keep_their_owner() {
    let fx = Fx::new();
    chown(&fx.file("d/f", "f"), 1234, 5678);
    chown(&fx.ctx("d"), 1234, 5678);
    fx.file("d/sub/g", "g");
    chown(&fx.ctx("d/sub"), 1234, 5678);

    fx.cp(&["d"], "/ctx").unwrap();
    assert_eq!(fx.meta("ctx/f"), (0o644, 0, 0));
    assert_eq!(fx.meta("ctx/sub").1, 0);

    let mut spec = CopySpec::new(["d"], "/stage");
    spec.ownership = Ownership::from_stage(None);
    fx.copy(&spec).unwrap();
    assert_eq!(fx.meta("stage/f"), (0o644, 1234, 5678));
    assert_eq!(fx.meta("stage/sub").1, 1234);

    spec.dest = "/chowned".into();
    spec.ownership = Ownership::from_stage(Some(Owner::new(42, 43)));
    fx.copy(&spec).unwrap();
    assert_eq!(fx.meta("chowned/f"), (0o644, 42, 43));
    assert_eq!(fx.meta("chowned/sub"), (0o755, 42, 43));
}

#[test]
fn chmod_applies_to_files_and_directories() {
    let fx = Fx::new();
    fx.file("d/f", "f");
    fx.file("d/sub/g", "g");
    chmod(&fx.ctx("d/sub/g"), 0o755);
    let mut spec = CopySpec::new(["d"], "/oct");
    spec.chmod = Some(Mode::parse("640").unwrap());
    fx.copy(&spec).unwrap();
    assert_eq!(fx.meta("oct/f").0, 0o640);
    assert_eq!(fx.meta("oct/sub").0, 0o640);
    assert_eq!(fx.meta("oct/sub/g").0, 0o640);

    spec.dest = "/sym".into();
    spec.chmod = Some(Mode::parse("go-rwx,u+X").unwrap());
    fx.copy(&spec).unwrap();
    assert_eq!(fx.meta("sym/f").0, 0o600);
    assert_eq!(fx.meta("sym/sub").0, 0o700);
    assert_eq!(fx.meta("sym/sub/g").0, 0o700);
}

#[test]
fn symlinks_inside_directories_are_copied_as_links() {
    let fx = Fx::new();
    fx.file("d/real", "r");
    std::os::unix::fs::symlink("real", fx.ctx("d/rel")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", fx.ctx("d/abs")).unwrap();
    fx.cp(&["d"], "/o").unwrap();
    assert_eq!(fs::read_link(fx.at("o/rel")).unwrap().to_str(), Some("real"));
    assert_eq!(
        fs::read_link(fx.at("o/abs")).unwrap().to_str(),
        Some("/etc/passwd")
    );
}

#[test]
fn top_level_symlinks_are_followed_and_keep_their_name() {
    let fx = Fx::new();
    fx.file("target.txt", "t");
    fx.file("realdir/inside", "i");
    std::os::unix::fs::symlink("target.txt", fx.ctx("link.txt")).unwrap();
    std::os::unix::fs::symlink("realdir", fx.ctx("dirlink")).unwrap();
    fx.cp(&["link.txt", "dirlink"], "/o/").unwrap();
    assert_eq!(fx.read("o/link.txt"), "t");
    assert!(fs::symlink_metadata(fx.at("o/link.txt")).unwrap().is_file());
    assert_eq!(fx.read("o/inside"), "i");

    let mut spec = CopySpec::new(["link.txt"], "/n/");
    spec.follow_symlinks = false;
    fx.copy(&spec).unwrap();
    assert_eq!(
        fs::read_link(fx.at("n/link.txt")).unwrap().to_str(),
        Some("target.txt")
    );
}

#[test]
fn hardlinks_within_a_copy_stay_linked() {
    let fx = Fx::new();
    let a = fx.file("d/a", "same");
    fs::create_dir(fx.ctx("d/sub")).unwrap();
    fs::hard_link(&a, fx.ctx("d/sub/b")).unwrap();
    let report = fx.cp(&["d"], "/o").unwrap();
    assert_eq!((report.files, report.hardlinks), (1, 1));
    let (ma, mb) = (
        fs::metadata(fx.at("o/a")).unwrap(),
        fs::metadata(fx.at("o/sub/b")).unwrap(),
    );
    assert_eq!(ma.ino(), mb.ino());
    assert_eq!(ma.nlink(), 2);
}

#[test]
fn excludes() {
    let fx = Fx::new();
    for name in [
        "a.txt",
        "b.md",
        "keep.txt",
        "docs/x.txt",
        "docs/y.md",
        "home.txt",
        "house.md",
    ] {
        fx.file(name, name);
    }
    let mut spec = CopySpec::new(["."], "/o/");
    spec.excludes = vec!["*.txt".into(), "!keep.txt".into(), "docs".into()];
    fx.copy(&spec).unwrap();
    assert_eq!(fx.tree(), ["o/", "o/b.md", "o/house.md", "o/keep.txt"]);

    // Wildcard matches themselves are excluded too (the Dockerfile reference's `hom*` example).
    let mut spec = CopySpec::new(["hom*", "hou*"], "/w/");
    spec.excludes = vec!["*.txt".into()];
    fx.copy(&spec).unwrap();
    assert!(!fx.exists("w/home.txt"));
    assert!(fx.exists("w/house.md"));

    let mut bad = CopySpec::new(["."], "/x/");
    bad.excludes = vec!["[".into()];
    assert!(matches!(fx.copy(&bad).unwrap_err(), FsopError::Exclude(_)));
}

#[test]
fn parents_keep_source_directories() {
    let fx = Fx::new();
    for name in ["x/a.txt", "y/a.txt", "y/b.md", "deep/p/q/c.txt"] {
        fx.file(name, name);
    }
    chmod(&fx.ctx("deep/p"), 0o750);
    let mut spec = CopySpec::new(["x/a.txt", "*/a.txt", "deep/./p/q/c.txt"], "/out/");
    spec.parents = true;
    fx.copy(&spec).unwrap();
    assert_eq!(
        fx.tree(),
        [
            "out/",
            "out/p/",
            "out/p/q/",
            "out/p/q/c.txt",
            "out/x/",
            "out/x/a.txt",
            "out/y/",
            "out/y/a.txt"
        ]
    );
    // Directories on the way take their source's metadata.
    assert_eq!(fx.meta("out/p").0, 0o750);

    let mut missing = CopySpec::new(["nope/a.txt"], "/m/");
    missing.parents = true;
    assert_eq!(
        fx.copy(&missing).unwrap_err().to_string(),
        "\"/nope/a.txt\": not found"
    );
}

#[test]
fn destination_symlink_is_followed_inside_the_root() {
    let fx = Fx::new();
    fx.file("a.txt", "a");
    fs::create_dir_all(fx.at("real/dir")).unwrap();
    std::os::unix::fs::symlink("/real/dir", fx.at("link")).unwrap();
    fx.cp(&["a.txt"], "/link").unwrap();
    assert_eq!(fx.read("real/dir/a.txt"), "a");
    // A symlink to a file is written through (its target is replaced, the link stays).
    write(&fx.at("real/file"), "old");
    std::os::unix::fs::symlink("real/file", fx.at("flink")).unwrap();
    fx.cp(&["a.txt"], "/flink").unwrap();
    assert_eq!(fx.read("real/file"), "a");
    assert!(
        fs::symlink_metadata(fx.at("flink"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn mkdir_p_creates_workdir_owned_by_user() {
    let fx = Fx::new();
    fs::create_dir(fx.at("home")).unwrap();
    kiln_builder::fsop::mkdir_p(
        fx.root.path(),
        "/home/app/src",
        Some(Owner::new(1000, 1000)),
        0o755,
    )
    .unwrap();
    assert_eq!(fx.meta("home"), (0o755, 0, 0));
    assert_eq!(fx.meta("home/app"), (0o755, 1000, 1000));
    assert_eq!(fx.meta("home/app/src"), (0o755, 1000, 1000));
    // Again: nothing changes, existing directories are not re-owned.
    kiln_builder::fsop::mkdir_p(fx.root.path(), "/home/app/src", Some(Owner::new(1, 1)), 0o700).unwrap();
    assert_eq!(fx.meta("home/app/src"), (0o755, 1000, 1000));
    write(&fx.at("file"), "f");
    assert!(kiln_builder::fsop::mkdir_p(fx.root.path(), "/file/sub", None, 0o755).is_err());
}
