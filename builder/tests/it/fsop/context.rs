//! COPY/ADD from the build context ([`ContextCopy`]): what `.dockerignore` hides never reaches a
//! layer, and what a copy writes is what its selection (the cache key's checksum) holds.

use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};

use kiln_builder::context::{Context, ContextError, IgnoreSource};
use kiln_builder::fsop::{Archives, ContextCopy, CopySpec, FsopError, Owner, Ownership};
use tempfile::TempDir;

use super::{chmod, chown, list};

/// A build context directory.
pub(super) struct Cx {
    dir: TempDir,
}

impl Cx {
    pub(super) fn new() -> Cx {
        Cx {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub(super) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(super) fn join(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file, creating its parents.
    pub(super) fn file(&self, rel: &str, content: &str) -> &Cx {
        super::write(&self.join(rel), content);
        self
    }

    pub(super) fn symlink(&self, rel: &str, target: &str) -> &Cx {
        symlink(target, self.join(rel)).unwrap();
        self
    }

    /// The context, walked now, with `.dockerignore` at its root.
    pub(super) fn context(&self) -> Context {
        Context::builder(self.path())
            .ignore(IgnoreSource::ContextRoot)
            .open()
            .unwrap()
    }

    /// Runs `spec` on a fresh walk into a fresh rootfs.
    pub(super) fn run(&self, spec: &CopySpec) -> Result<TempDir, FsopError> {
        run_in(&self.context(), spec)
    }

    /// `COPY <sources> <dest>`.
    pub(super) fn cp(&self, sources: &[&str], dest: &str) -> Result<TempDir, FsopError> {
        self.run(&CopySpec::new(sources.iter().copied(), dest))
    }
}

pub(super) fn run_in(context: &Context, spec: &CopySpec) -> Result<TempDir, FsopError> {
    let root = tempfile::tempdir().unwrap();
    ContextCopy::select(context, spec)?.copy(root.path())?;
    Ok(root)
}

/// The sorted paths below `root`, directories with a trailing `/`.
pub(super) fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    list(root, root, &mut out);
    out.sort();
    out
}

/// Whether any regular file below `root` holds `needle`.
fn anywhere(root: &Path, needle: &str) -> bool {
    tree(root).iter().any(|rel| {
        let path = root.join(rel);
        fs::symlink_metadata(&path).unwrap().is_file() && fs::read_to_string(&path).unwrap().contains(needle)
    })
}

fn not_found(result: Result<TempDir, FsopError>) -> String {
    let error = result.unwrap_err();
    assert!(
        matches!(error, FsopError::Context(ContextError::NotFound { .. })),
        "{error:?}"
    );
    error.to_string()
}

/// A context whose `.dockerignore` excludes `secret.txt`, `*.key` and `node_modules`.
fn project() -> Cx {
    let cx = Cx::new();
    cx.file(".dockerignore", "secret.txt\n*.key\nnode_modules\n")
        .file("app.py", "print('hi')\n")
        .file("notes.txt", "notes\n")
        .file("secret.txt", "SECRET 1")
        .file("tls.key", "SECRET 2")
        .file("node_modules/left-pad/index.js", "SECRET 3")
        .file("src/main.rs", "fn main() {}\n")
        // Patterns are anchored at the context root: `*.key` does not reach into `src`.
        .file("src/nested.key", "nested\n");
    cx
}

#[test]
fn copy_dot_leaves_every_ignored_file_out() {
    let cx = project();
    let root = cx.cp(&["."], "/app").unwrap();
    assert_eq!(
        tree(root.path()),
        [
            "app/",
            "app/.dockerignore",
            "app/app.py",
            "app/notes.txt",
            "app/src/",
            "app/src/main.rs",
            "app/src/nested.key"
        ]
    );
    assert!(!anywhere(root.path(), "SECRET"));
}

#[test]
fn naming_an_ignored_path_is_not_found() {
    let cx = project();
    let message = not_found(cx.cp(&["secret.txt"], "/x"));
    assert!(message.ends_with("\"/secret.txt\": not found"), "{message}");
    for source in [
        "/secret.txt",
        "./src/../secret.txt",
        "tls.key",
        "node_modules",
        "node_modules/left-pad/index.js",
    ] {
        not_found(cx.cp(&[source], "/x"));
    }
    // One missing source fails the whole COPY before anything is written.
    not_found(cx.cp(&["app.py", "secret.txt"], "/x/"));
}

#[test]
fn a_symlink_to_an_ignored_file_is_not_followed_to_it() {
    let cx = project();
    cx.symlink("link", "secret.txt")
        .symlink("abs", "/secret.txt")
        .symlink("nm", "node_modules");
    for source in ["link", "abs", "nm/left-pad/index.js"] {
        let message = not_found(cx.cp(&[source], "/x"));
        assert!(message.contains("not found"), "{message}");
    }
    assert!(not_found(cx.cp(&["link"], "/x")).ends_with("\"/link\": not found"));

    // Inside a copied directory it is the symlink itself, dangling.
    let root = cx.cp(&["."], "/app").unwrap();
    assert_eq!(
        fs::read_link(root.path().join("app/link")).unwrap(),
        Path::new("secret.txt")
    );
    assert_eq!(
        fs::read_link(root.path().join("app/abs")).unwrap(),
        Path::new("/secret.txt")
    );
    assert!(!root.path().join("app/secret.txt").exists());
    assert!(!anywhere(root.path(), "SECRET"));

    // A wildcard that matches it follows it to nothing, as BuildKit does.
    assert!(cx.cp(&["l*"], "/w/").is_err());
}

#[test]
fn an_exception_brings_back_one_file_of_an_excluded_directory() {
    let cx = Cx::new();
    cx.file(".dockerignore", "docs\n!docs/README.md\n")
        .file("docs/README.md", "read me\n")
        .file("docs/internal.md", "internal\n")
        .file("docs/drafts/next.md", "draft\n")
        .file("index.md", "index\n");
    let root = cx.cp(&["."], "/app").unwrap();
    assert_eq!(
        tree(root.path()),
        [
            "app/",
            "app/.dockerignore",
            "app/docs/",
            "app/docs/README.md",
            "app/index.md"
        ]
    );
    let root = cx.cp(&["docs"], "/d").unwrap();
    assert_eq!(tree(root.path()), ["d/", "d/README.md"]);
    not_found(cx.cp(&["docs/internal.md"], "/i"));
}

#[test]
fn wildcards_never_match_ignored_files() {
    let cx = project();
    let root = cx.cp(&["*.txt"], "/t/").unwrap();
    assert_eq!(tree(root.path()), ["t/", "t/notes.txt"]);
    let root = cx.cp(&["s*"], "/s/").unwrap();
    assert_eq!(tree(root.path()), ["s/", "s/main.rs", "s/nested.key"]);
    not_found(cx.cp(&["*/*/index.js"], "/n/"));

    not_found(cx.cp(&["*.key"], "/k/"));
    let mut spec = CopySpec::new(["*.key"], "/k/");
    spec.allow_empty_wildcard = true;
    assert!(tree(cx.run(&spec).unwrap().path()).is_empty());
}

#[test]
fn dockerfile_dockerignore_replaces_the_context_dockerignore() {
    let cx = Cx::new();
    cx.file(".dockerignore", "a.txt\n")
        .file("build/app.Dockerfile", "FROM scratch\n")
        .file("build/app.Dockerfile.dockerignore", "b.txt\nbuild\n")
        .file("a.txt", "a")
        .file("b.txt", "b");
    let context = Context::builder(cx.path())
        .ignore(IgnoreSource::for_dockerfile(Some(
            &cx.join("build/app.Dockerfile"),
        )))
        .open()
        .unwrap();
    let root = run_in(&context, &CopySpec::new(["."], "/app/")).unwrap();
    assert_eq!(tree(root.path()), ["app/", "app/.dockerignore", "app/a.txt"]);
    not_found(run_in(&context, &CopySpec::new(["b.txt"], "/b")));
}

#[test]
fn excludes_apply_on_top_of_the_ignore_file() {
    let cx = project();
    let mut spec = CopySpec::new(["."], "/o/");
    spec.excludes = vec!["*.py".into(), "src".into(), "!src/main.rs".into()];
    let root = cx.run(&spec).unwrap();
    assert_eq!(
        tree(root.path()),
        ["o/", "o/.dockerignore", "o/notes.txt", "o/src/", "o/src/main.rs"]
    );

    // The Dockerfile reference's example: wildcard matches are excluded themselves.
    cx.file("home.txt", "h").file("house.md", "h");
    let mut spec = CopySpec::new(["hom*", "hou*"], "/w/");
    spec.excludes = vec!["*.txt".into()];
    assert_eq!(tree(cx.run(&spec).unwrap().path()), ["w/", "w/house.md"]);

    let mut bad = CopySpec::new(["."], "/x/");
    bad.excludes = vec!["[".into()];
    assert!(matches!(cx.run(&bad).unwrap_err(), FsopError::Exclude(_)));
}

#[test]
fn parents_keep_paths_and_the_ignore_file() {
    let cx = Cx::new();
    cx.file(".dockerignore", "y/a.txt\n")
        .file("x/a.txt", "x")
        .file("y/a.txt", "y")
        .file("y/b.md", "b")
        .file("deep/p/q/c.txt", "c");
    chmod(&cx.join("deep/p"), 0o750);
    let mut spec = CopySpec::new(["x/a.txt", "*/a.txt", "deep/./p/q/c.txt"], "/out/");
    spec.parents = true;
    let root = cx.run(&spec).unwrap();
    assert_eq!(
        tree(root.path()),
        [
            "out/",
            "out/p/",
            "out/p/q/",
            "out/p/q/c.txt",
            "out/x/",
            "out/x/a.txt"
        ]
    );
    assert_eq!(
        fs::metadata(root.path().join("out/p")).unwrap().mode() & 0o7777,
        0o750
    );
    let mut ignored = CopySpec::new(["y/a.txt"], "/m/");
    ignored.parents = true;
    assert!(not_found(cx.run(&ignored)).ends_with("\"/y/a.txt\": not found"));
}

#[test]
fn add_extracts_a_context_archive_but_not_an_ignored_one() {
    let cx = Cx::new();
    cx.file(".dockerignore", "hidden.tar.gz\n");
    let archive = super::archive::compressed("gz", &super::archive::sample());
    fs::write(cx.join("pkg.tar.gz"), &archive).unwrap();
    fs::write(cx.join("hidden.tar.gz"), &archive).unwrap();
    let mut spec = CopySpec::new(["pkg.tar.gz"], "/x/");
    spec.archives = Archives::Extract;
    let root = cx.run(&spec).unwrap();
    assert_eq!(
        fs::read_to_string(root.path().join("x/pkg/bin/tool")).unwrap(),
        "#!/bin/sh\n"
    );
    spec.sources = vec!["hidden.tar.gz".into()];
    not_found(cx.run(&spec));
    spec.sources = vec!["*.tar.gz".into()];
    let root = cx.run(&spec).unwrap();
    assert!(root.path().join("x/pkg/bin/tool").exists());
    assert!(!root.path().join("x/hidden.tar.gz").exists());
}

#[test]
fn a_file_changed_after_the_walk_is_refused_not_copied() {
    let cx = project();
    let context = cx.context();
    let copy = ContextCopy::select(&context, &CopySpec::new(["app.py"], "/a")).unwrap();
    cx.file("app.py", "print('changed after the walk')\n");
    let root = tempfile::tempdir().unwrap();
    let error = copy.copy(root.path()).unwrap_err();
    assert!(
        matches!(error, FsopError::Context(ContextError::Changed { .. })),
        "{error:?}"
    );

    // Swapped for a symlink to an ignored file: the open refuses the link.
    let copy = ContextCopy::select(&context, &CopySpec::new(["notes.txt"], "/n")).unwrap();
    fs::remove_file(cx.join("notes.txt")).unwrap();
    cx.symlink("notes.txt", "secret.txt");
    assert!(copy.copy(root.path()).is_err());
    assert!(!anywhere(root.path(), "SECRET"));
}

#[test]
fn context_owners_never_reach_the_layer() {
    let cx = Cx::new();
    cx.file("d/f", "f").file("d/sub/g", "g");
    for rel in ["d", "d/f", "d/sub", "d/sub/g"] {
        chown(&cx.join(rel), 1234, 5678);
    }
    let owners = |root: &Path, rels: &[&str]| -> Vec<(u32, u32)> {
        rels.iter()
            .map(|rel| {
                let m = fs::symlink_metadata(root.join(rel)).unwrap();
                (m.uid(), m.gid())
            })
            .collect()
    };
    let root = cx.cp(&["d"], "/a").unwrap();
    assert_eq!(owners(root.path(), &["a/f", "a/sub", "a/sub/g"]), [(0, 0); 3]);
    // Preserving owners means nothing for the context: its files have none of their own.
    let mut spec = CopySpec::new(["d"], "/a");
    spec.ownership = Ownership::from_stage(None);
    let root = cx.run(&spec).unwrap();
    assert_eq!(owners(root.path(), &["a/f", "a/sub/g"]), [(0, 0); 2]);
    spec.ownership = Ownership::context(Some(Owner::new(7, 8)));
    let root = cx.run(&spec).unwrap();
    assert_eq!(owners(root.path(), &["a", "a/f", "a/sub/g"]), [(7, 8); 3]);
}
