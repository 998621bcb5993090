//! The cache key and the layer agree: a context copy writes exactly the entries its selections hold
//! (what `Context::checksum` hashes), the checksum changes exactly when what the copy writes does,
//! and the copy places entries as the directory copy (`fsop::copy`) does.

use std::collections::{BTreeSet, HashMap};
use std::ffi::CString;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::Path;
use std::time::{Duration, SystemTime};

use kiln_builder::context::EntryKind;
use kiln_builder::fsop::{self, Archives, ContextCopy, CopySpec, Mode, Owner, Ownership};

use super::context::{Cx, tree};
use super::{chmod, chown};

/// The extended attributes of `path` (not followed).
fn xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut names = vec![0u8; 4096];
    let Ok(len) = rustix::fs::llistxattr(path, &mut names[..]) else {
        return Vec::new();
    };
    names[..len]
        .split(|&b| b == 0)
        .filter(|name| !name.is_empty())
        .filter_map(|name| {
            let key = CString::new(name).ok()?;
            let mut value = vec![0u8; 4096];
            let len = rustix::fs::lgetxattr(path, &key, &mut value[..]).ok()?;
            value.truncate(len);
            Some((String::from_utf8_lossy(name).into_owned(), value))
        })
        .collect()
}

/// What a copy wrote below `root`, as a layer carries it: per path its mode, owner, content or
/// target, attributes, and which earlier path it is a hardlink of; with `times`, the modification
/// time of non-directories too (directories the copy creates on its own are dated now).
fn describe(root: &Path, times: bool) -> Vec<String> {
    let mut inodes = HashMap::new();
    tree(root)
        .into_iter()
        .map(|rel| {
            let path = root.join(rel.trim_end_matches('/'));
            let m = fs::symlink_metadata(&path).unwrap();
            let mut line = format!("{rel} {:o} {}:{}", m.mode(), m.uid(), m.gid());
            if m.file_type().is_symlink() {
                write!(line, " -> {}", fs::read_link(&path).unwrap().display()).unwrap();
            } else if m.is_file() {
                if m.nlink() > 1 {
                    match inodes.get(&m.ino()) {
                        Some(first) => write!(line, " = {first}").unwrap(),
                        None => drop(inodes.insert(m.ino(), rel.clone())),
                    }
                }
                write!(line, " {:?}", String::from_utf8_lossy(&fs::read(&path).unwrap())).unwrap();
            }
            for (name, value) in xattrs(&path) {
                write!(line, " {name}={value:?}").unwrap();
            }
            if times && !m.is_dir() {
                write!(line, " @{}.{:09}", m.mtime(), m.mtime_nsec()).unwrap();
            }
            line
        })
        .collect()
}

fn spec(sources: &[&str], dest: &str, edit: impl FnOnce(&mut CopySpec)) -> CopySpec {
    let mut spec = CopySpec::new(sources.iter().copied(), dest);
    edit(&mut spec);
    spec
}

#[test]
fn a_copy_writes_exactly_the_entries_its_selection_holds() {
    let cx = Cx::new();
    cx.file(".dockerignore", "*.log\nbuild\n!build/keep\n")
        .file("a.txt", "a")
        .file("b.md", "b")
        .file("debug.log", "log")
        .file("src/x.rs", "x")
        .file("src/y/z.rs", "z")
        .file("build/out", "out")
        .file("build/keep", "keep")
        .file("docs/guide.md", "guide")
        .symlink("link", "src")
        .symlink("src/dangling", "../debug.log");
    let specs = [
        spec(&["."], "/out/", |_| {}),
        spec(&["src"], "/out/", |_| {}),
        spec(&["*.txt", "s*/y"], "/out/", |_| {}),
        spec(&["."], "/out/", |s| {
            s.excludes = vec!["*.md".into(), "src/y".into()];
        }),
        spec(&["link", "build"], "/out/", |_| {}),
        spec(&["*/*/z.rs", "src/./y", "docs/guide.md"], "/out/", |s| {
            s.parents = true;
        }),
    ];
    for spec in specs {
        let context = cx.context();
        let copy = ContextCopy::select(&context, &spec).unwrap();
        let mut selected = BTreeSet::from(["out/".to_owned()]);
        for m in copy
            .selections()
            .iter()
            .flat_map(kiln_builder::context::Selection::matches)
        {
            if spec.parents || *m.root().kind() == EntryKind::Dir {
                for entry in m.entries().iter().skip(1) {
                    let slash = if *entry.entry().kind() == EntryKind::Dir {
                        "/"
                    } else {
                        ""
                    };
                    selected.insert(format!("out/{}{slash}", entry.name().display()));
                }
            } else {
                selected.insert(format!("out/{}", m.path().file_name().unwrap().to_str().unwrap()));
            }
        }
        let root = tempfile::tempdir().unwrap();
        copy.copy(root.path()).unwrap();
        let copied: BTreeSet<String> = tree(root.path()).into_iter().collect();
        assert_eq!(copied, selected, "{:?}", spec.sources);
    }
}

/// A change to the context, and whether it changes what `COPY` writes.
type Step = (&'static str, bool, fn(&Cx));

#[test]
fn the_checksum_changes_exactly_when_the_copy_does() {
    let cx = Cx::new();
    cx.file(".dockerignore", "secret\n*.log\n")
        .file("app/main.rs", "fn main() {}\n")
        .file("app/lib/util.rs", "pub fn util() {}\n")
        .file("app/README.md", "readme\n")
        .file("app/trace.log", "not ignored: patterns are anchored\n")
        .file("debug.log", "ignored\n")
        .file("secret/key", "ignored\n")
        .symlink("app/current", "lib");
    let mut spec = CopySpec::new(["."], "/app/");
    spec.excludes = vec!["**/*.md".into()];
    let state = || {
        let context = cx.context();
        let copy = ContextCopy::select(&context, &spec).unwrap();
        let root = tempfile::tempdir().unwrap();
        copy.copy(root.path()).unwrap();
        (copy.checksums().unwrap(), describe(root.path(), false))
    };
    let xattrs_work = rustix::fs::setxattr(
        cx.join("app/lib"),
        "user.probe",
        b"1",
        rustix::fs::XattrFlags::empty(),
    )
    .is_ok();
    let steps: [Step; 12] = [
        ("rewrite an ignored file", false, |cx| {
            cx.file("debug.log", "more\n");
        }),
        ("add to an ignored directory", false, |cx| {
            cx.file("secret/new", "x");
        }),
        ("rewrite an excluded file", false, |cx| {
            cx.file("app/README.md", "new\n");
        }),
        ("touch a copied file", false, |cx| {
            let file = fs::File::open(cx.join("app/main.rs")).unwrap();
            file.set_modified(SystemTime::now() + Duration::from_secs(3600))
                .unwrap();
        }),
        ("chown a copied file", false, |cx| {
            chown(&cx.join("app/main.rs"), 1000, 1000);
        }),
        ("rewrite a copied file, same size", true, |cx| {
            cx.file("app/main.rs", "fn main() {1}\n");
        }),
        ("chmod a copied file", true, |cx| {
            chmod(&cx.join("app/main.rs"), 0o755);
        }),
        ("add a file", true, |cx| {
            cx.file("app/lib/new.rs", "");
        }),
        ("add an empty directory", true, |cx| {
            fs::create_dir(cx.join("app/empty")).unwrap();
        }),
        ("rename a file", true, |cx| {
            fs::rename(cx.join("app/lib/new.rs"), cx.join("app/lib/old.rs")).unwrap();
        }),
        ("retarget a symlink", true, |cx| {
            fs::remove_file(cx.join("app/current")).unwrap();
            symlink("lib/", cx.join("app/current")).unwrap();
        }),
        ("set an extended attribute", true, |cx| {
            let flags = rustix::fs::XattrFlags::empty();
            rustix::fs::setxattr(cx.join("app/main.rs"), "user.kiln", b"1", flags).unwrap();
        }),
    ];
    let mut before = state();
    for (what, changes, step) in steps {
        if what.contains("attribute") && !xattrs_work {
            eprintln!("skipped {what:?}: no user xattrs on this filesystem");
            continue;
        }
        step(&cx);
        let after = state();
        assert_eq!(after.0 != before.0, changes, "{what}: checksum");
        assert_eq!(after.1 != before.1, changes, "{what}: copy\n{:#?}", after.1);
        before = after;
    }
}

/// A context (no ignore file) exercising every placement rule.
fn rules() -> Cx {
    let cx = Cx::new();
    for name in [
        "a.txt",
        "b.txt",
        "c.md",
        "keep.md",
        "home.txt",
        "house.md",
        "x/a.txt",
        "y/a.txt",
        "y/b.md",
        "deep/p/q/c.txt",
        "src/main.rs",
        "src/lib/util.rs",
        "src/private/key",
    ] {
        cx.file(name, name);
    }
    chmod(&cx.join("src/private"), 0o700);
    chmod(&cx.join("deep/p"), 0o750);
    cx.file("tool", "#!/bin/sh\n");
    chmod(&cx.join("tool"), 0o4751);
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    let tool = fs::File::options().write(true).open(cx.join("tool")).unwrap();
    tool.set_modified(old).unwrap();
    let _ = rustix::fs::setxattr(
        cx.join("tool"),
        "user.origin",
        b"context",
        rustix::fs::XattrFlags::empty(),
    );
    cx.file("hl/a", "same");
    fs::create_dir(cx.join("hl/sub")).unwrap();
    fs::hard_link(cx.join("hl/a"), cx.join("hl/sub/b")).unwrap();
    cx.symlink("link.txt", "a.txt")
        .symlink("dirlink", "src")
        .symlink("src/rel", "main.rs")
        .symlink("hl/abs", "/etc/passwd");
    let archive = super::archive::compressed("gz", &super::archive::sample());
    fs::write(cx.join("pkg.tar.gz"), archive).unwrap();
    cx
}

/// What both destination roots hold before the copy.
fn prepare(root: &Path) {
    fs::create_dir(root.join("existing")).unwrap();
    chmod(&root.join("existing"), 0o700);
    fs::write(root.join("plain"), "old").unwrap();
    let plain = fs::File::options().write(true).open(root.join("plain")).unwrap();
    plain.set_modified(SystemTime::UNIX_EPOCH).unwrap();
}

#[test]
fn a_context_copy_places_entries_as_the_directory_copy_does() {
    let cx = rules();
    let specs = [
        spec(&["src"], "/app", |_| {}),
        spec(&["src/"], "/app/", |_| {}),
        spec(&["a.txt"], "/b.txt", |_| {}),
        spec(&["a.txt"], "/x/y/", |_| {}),
        spec(&["a.txt", "src"], "/m/", |_| {}),
        spec(&["a.txt", "b.txt"], "/dst", |_| {}),
        spec(&["*.txt"], "/t/", |_| {}),
        spec(&["src/*"], "/w/", |_| {}),
        spec(&["."], "/", |_| {}),
        spec(&["a.txt"], "/existing", |_| {}),
        spec(&["src"], "/existing", |_| {}),
        spec(&["src"], "/plain", |_| {}),
        spec(&["a.txt"], "/plain", |_| {}),
        spec(&["missing"], "/m", |_| {}),
        spec(&["link.txt", "dirlink"], "/l/", |_| {}),
        spec(&["link.txt"], "/n/", |s| s.follow_symlinks = false),
        spec(&["hl", "tool"], "/h/", |_| {}),
        spec(&["src"], "/c/", |s| {
            s.ownership = Ownership::context(Some(Owner::new(1000, 1001)));
            s.chmod = Some(Mode::parse("go-rwx,u+X").unwrap());
        }),
        spec(&["."], "/e/", |s| {
            s.excludes = vec!["*.md".into(), "!keep.md".into(), "src".into(), "!src/lib".into()];
        }),
        spec(&["hom*", "hou*"], "/h/", |s| s.excludes = vec!["*.txt".into()]),
        spec(&["x/a.txt", "*/a.txt", "deep/./p/q/c.txt"], "/p/", |s| {
            s.parents = true;
        }),
        spec(&["pkg.tar.gz", "a.txt"], "/ex/", |s| {
            s.archives = Archives::Extract;
        }),
    ];
    let mut both_failed = Vec::new();
    for spec in specs {
        let (by_dir, by_context) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        prepare(by_dir.path());
        prepare(by_context.path());
        let dir = fsop::copy(cx.path(), by_dir.path(), &spec);
        let context = cx.context();
        let copied = ContextCopy::select(&context, &spec).and_then(|copy| copy.copy(by_context.path()));
        match (dir, copied) {
            (Ok(dir), Ok(copied)) => {
                // Directory counts differ for `--parents` only: fsop::copy does not count the
                // directories it makes on the way.
                let counts = |r: fsop::CopyReport| (r.files, r.symlinks, r.hardlinks, r.bytes, r.archives);
                assert_eq!(counts(dir), counts(copied), "{spec:?}");
                assert_eq!(
                    describe(by_dir.path(), true),
                    describe(by_context.path(), true),
                    "{spec:?}"
                );
            }
            (Err(_), Err(_)) => both_failed.push(spec.sources.join(" ")),
            (dir, copied) => panic!("{spec:?}: directory copy {dir:?}, context copy {copied:?}"),
        }
    }
    // Several sources to a file path, a directory onto a file, a missing source.
    assert_eq!(both_failed, ["a.txt b.txt", "src", "missing"]);
}
