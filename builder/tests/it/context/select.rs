//! Resolving COPY/ADD sources inside the context: plain paths, symlinks, wildcards, excludes.

use std::io::Read;
use std::path::PathBuf;

use kiln_builder::context::{ContextError, EntryKind, Selection, Source};
use kiln_builder::frontend::dockerignore::Patterns;

use super::Tree;

/// (match path, [entry names]) of a selection.
fn shape(selection: &Selection<'_>) -> Vec<(String, Vec<String>)> {
    selection
        .matches()
        .iter()
        .map(|m| {
            let names = m
                .entries()
                .iter()
                .map(|s| s.name().to_str().unwrap().to_owned())
                .collect();
            (m.path().to_str().unwrap().to_owned(), names)
        })
        .collect()
}

fn read(tree: &Tree, source: &str) -> String {
    let context = tree.context();
    let selection = context.select(&Source::new(source)).unwrap();
    let root = selection.matches()[0].root();
    let mut text = String::new();
    context
        .open_file(root)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    text
}

#[test]
fn a_missing_source_is_reported_as_buildkit_does() {
    let tree = Tree::new();
    tree.file("present", "");
    let context = tree.context();
    for (source, reported) in [
        ("missing", "\"/missing\": not found"),
        ("./a/../missing/", "\"/missing\": not found"),
        ("/dir/file.txt", "\"/dir/file.txt\": not found"),
    ] {
        let error = context.select(&Source::new(source)).unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("failed to calculate checksum of ref "),
            "{message}"
        );
        assert!(message.ends_with(reported), "{source}: {message}");
    }
}

#[test]
fn a_directory_brings_its_whole_subtree_named_relative_to_it() {
    let tree = Tree::new();
    tree.file("app/src/main.rs", "")
        .file("app/Cargo.toml", "")
        .file("other", "");
    let context = tree.context();
    for source in ["app", "app/", "./app", "/app"] {
        let selection = context.select(&Source::new(source)).unwrap();
        assert_eq!(
            shape(&selection),
            [(
                "app".to_owned(),
                vec![
                    String::new(),
                    "Cargo.toml".into(),
                    "src".into(),
                    "src/main.rs".into()
                ]
            )],
            "{source}"
        );
    }
    let everything = context.select(&Source::new(".")).unwrap();
    assert_eq!(everything.matches()[0].root().path(), std::path::Path::new(""));
    assert_eq!(everything.entries().count(), 6);
}

#[test]
fn an_absolute_symlink_resolves_inside_the_context_never_outside() {
    let tree = Tree::new();
    tree.symlink("x", "/etc/passwd");
    let context = tree.context();
    let error = context.select(&Source::new("x")).unwrap_err();
    assert!(error.to_string().ends_with("\"/x\": not found"), "{error}");

    // With an etc/passwd of its own, that is what the link names.
    tree.file("etc/passwd", "context's own");
    assert_eq!(read(&tree, "x"), "context's own");
}

#[test]
fn dot_dot_in_a_symlink_stops_at_the_context_root() {
    let tree = Tree::new();
    tree.file("file", "inside").symlink("deep/y", "../../../..");
    let context = tree.context();
    let root = context.select(&Source::new("deep/y")).unwrap();
    assert_eq!(root.matches()[0].root().path(), std::path::Path::new(""));
    assert_eq!(read(&tree, "deep/y/file"), "inside");
    let error = context.select(&Source::new("../../etc/passwd")).unwrap_err();
    assert!(
        error.to_string().ends_with("\"/etc/passwd\": not found"),
        "{error}"
    );
}

#[test]
fn a_symlink_within_the_path_is_followed() {
    let tree = Tree::new();
    tree.file("real/dir/file", "through a link")
        .symlink("alias", "real/dir")
        .symlink("abs", "/real");
    assert_eq!(read(&tree, "alias/file"), "through a link");
    assert_eq!(read(&tree, "abs/dir/file"), "through a link");
    let context = tree.context();
    let selection = context.select(&Source::new("alias")).unwrap();
    // The match keeps the name the source used; its root is the directory the link leads to.
    assert_eq!(
        shape(&selection),
        [("alias".to_owned(), vec![String::new(), "file".to_owned()])]
    );
    assert_eq!(selection.matches()[0].root().kind(), &EntryKind::Dir);
}

#[test]
fn a_symlink_loop_is_an_error() {
    let tree = Tree::new();
    tree.symlink("a", "b").symlink("b", "a");
    let error = tree.context().select(&Source::new("a")).unwrap_err();
    assert!(matches!(error, ContextError::TooManyLinks { .. }), "{error}");
}

#[test]
fn wildcards_match_like_go_path_match() {
    let tree = Tree::new();
    tree.file("a.txt", "")
        .file("b.txt", "")
        .file("c.md", "")
        .file("sub/d.txt", "")
        .file("src/x/one.rs", "")
        .file("src/y/two.rs", "")
        .file("src/y/three.go", "");
    let context = tree.context();
    let matched = |source: &str| -> Vec<String> {
        let selection = context.select(&Source::new(source)).unwrap();
        selection
            .matches()
            .iter()
            .map(|m| m.path().to_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(matched("*.txt"), ["a.txt", "b.txt"]);
    assert_eq!(matched("[ab].txt"), ["a.txt", "b.txt"]);
    assert_eq!(matched("?.md"), ["c.md"]);
    assert_eq!(matched("src/*/*.rs"), ["src/x/one.rs", "src/y/two.rs"]);
    assert_eq!(matched("*/d.txt"), ["sub/d.txt"]);
    assert_eq!(matched("s*"), ["src", "sub"]);
}

#[test]
fn a_matched_directory_brings_its_subtree() {
    let tree = Tree::new();
    tree.file("pkg-a/lib/index.js", "")
        .file("pkg-b/main.js", "")
        .file("other", "");
    let context = tree.context();
    let selection = context.select(&Source::new("pkg-*")).unwrap();
    assert_eq!(
        shape(&selection),
        [
            (
                "pkg-a".to_owned(),
                vec![String::new(), "lib".into(), "lib/index.js".into()]
            ),
            ("pkg-b".to_owned(), vec![String::new(), "main.js".into()]),
        ]
    );
}

#[test]
fn a_wildcard_below_a_symlinked_directory_matches_through_it() {
    let tree = Tree::new();
    tree.file("real/a.conf", "")
        .symlink("conf", "real")
        .symlink("real/b.conf", "a.conf");
    let context = tree.context();
    let selection = context.select(&Source::new("conf/*.conf")).unwrap();
    let roots: Vec<_> = selection
        .matches()
        .iter()
        .map(|m| (m.path().to_owned(), m.root().path().to_owned()))
        .collect();
    // Paths as the source spells them; a matched symlink is followed.
    assert_eq!(
        roots,
        [
            (PathBuf::from("conf/a.conf"), PathBuf::from("real/a.conf")),
            (PathBuf::from("conf/b.conf"), PathBuf::from("real/a.conf")),
        ]
    );
}

#[test]
fn a_wildcard_that_matches_nothing_fails_unless_allowed() {
    let tree = Tree::new();
    tree.file("a.txt", "").dir("empty");
    let context = tree.context();
    let error = context.select(&Source::new("*.rs")).unwrap_err();
    assert!(error.to_string().ends_with("\"/*.rs\": not found"), "{error}");
    let allowed = context
        .select(&Source::new("empty/*.rs").allow_empty_wildcard(true))
        .unwrap();
    assert!(allowed.matches().is_empty());
    // The wildcard's directory must exist either way.
    let error = context
        .select(&Source::new("nodir/*.rs").allow_empty_wildcard(true))
        .unwrap_err();
    assert!(
        error.to_string().ends_with("\"/nodir/*.rs\": not found"),
        "{error}"
    );
}

#[test]
fn a_malformed_wildcard_is_an_error() {
    let tree = Tree::new();
    tree.file("a", "");
    let error = tree.context().select(&Source::new("a[")).unwrap_err();
    assert_eq!(error.to_string(), "syntax error in pattern: \"a[\"");
}

#[test]
fn excludes_drop_paths_relative_to_each_match() {
    let tree = Tree::new();
    tree.file("app/README.md", "")
        .file("app/src/lib.rs", "")
        .file("app/src/notes.md", "")
        .file("app/docs/keep.md", "")
        .file("app/docs/drop.txt", "");
    let context = tree.context();
    let source = Source::new("app").exclude(Patterns::new(["**/*.md", "docs", "!docs/keep.md"]).unwrap());
    let selection = context.select(&source).unwrap();
    assert_eq!(
        shape(&selection),
        [(
            "app".to_owned(),
            vec![
                String::new(),
                "docs".into(),
                "docs/keep.md".into(),
                "src".into(),
                "src/lib.rs".into()
            ]
        )]
    );
}

#[test]
fn open_file_reads_only_the_file_the_walk_saw() {
    let tree = Tree::new();
    tree.file("data", "version 1");
    let context = tree.context();
    let entry = context.get("data").unwrap();
    // Replaced after the walk: reading it would mix two versions of the context.
    std::fs::remove_file(tree.join("data")).unwrap();
    tree.file("data", "version 2");
    let error = context.open_file(entry).unwrap_err();
    assert!(matches!(error, ContextError::Changed { .. }), "{error}");
}

#[test]
fn a_directory_swapped_for_a_symlink_after_the_walk_is_not_followed() {
    let tree = Tree::new();
    tree.file("dir/passwd", "inside");
    let context = tree.context();
    let entry = context.get("dir/passwd").unwrap();
    std::fs::rename(tree.join("dir"), tree.join("moved")).unwrap();
    tree.symlink("dir", "/etc");
    let error = context.open_file(entry).unwrap_err();
    assert!(matches!(error, ContextError::Read { .. }), "{error}");
}

#[test]
fn a_wildcard_match_is_itself_subject_to_excludes() {
    let tree = Tree::new();
    tree.file("home.txt", "")
        .file("house.md", "")
        .file("hound/a.txt", "");
    let context = tree.context();
    let source = Source::new("ho*").exclude(Patterns::new(["*.txt"]).unwrap());
    let matched: Vec<_> = context
        .select(&source)
        .unwrap()
        .matches()
        .iter()
        .map(|m| m.path().to_str().unwrap().to_owned())
        .collect();
    // `hound/a.txt` is inside a match, relative to it `a.txt`: excluded there too.
    assert_eq!(matched, ["hound", "house.md"]);
    // Everything matched was excluded: an empty selection, not a missing source.
    let all = Source::new("hom*").exclude(Patterns::new(["*"]).unwrap());
    assert!(context.select(&all).unwrap().matches().is_empty());
}

#[test]
fn a_symlink_source_can_be_selected_as_itself() {
    let tree = Tree::new();
    tree.file("target", "t").symlink("link", "target");
    let context = tree.context();
    let selection = context
        .select(&Source::new("link").follow_symlinks(false))
        .unwrap();
    assert_eq!(
        selection.matches()[0].root().kind(),
        &EntryKind::Symlink("target".into())
    );
    let followed = context.select(&Source::new("link")).unwrap();
    assert_eq!(followed.matches()[0].root().kind(), &EntryKind::File);
}

#[test]
fn parents_select_the_paths_below_the_pivot_with_their_directories() {
    let tree = Tree::new();
    tree.file("x/a.txt", "")
        .file("x/b.md", "")
        .file("y/a.txt", "")
        .file("deep/p/q/c.txt", "")
        .file("deep/p/other", "")
        .symlink("alias", "x");
    let context = tree.context();
    let select = |path: &str| context.select(&Source::new(path).parents(true));
    assert_eq!(
        shape(&select("*/a.txt").unwrap()),
        [(
            String::new(),
            vec![
                String::new(),
                "x".into(),
                "x/a.txt".into(),
                "y".into(),
                "y/a.txt".into()
            ]
        )]
    );
    assert_eq!(
        shape(&select("deep/./p/q").unwrap()),
        [(
            "deep".to_owned(),
            vec![String::new(), "p".into(), "p/q".into(), "p/q/c.txt".into()]
        )]
    );
    // Below the pivot nothing is followed: through a symlink the path does not exist.
    let error = select("alias/a.txt").unwrap_err();
    assert!(
        error.to_string().ends_with("\"/alias/a.txt\": not found"),
        "{error}"
    );
    // Excludes are relative to the pivot.
    let excluded = context
        .select(
            &Source::new("./x")
                .parents(true)
                .exclude(Patterns::new(["x/*.md"]).unwrap()),
        )
        .unwrap();
    assert_eq!(
        shape(&excluded),
        [(String::new(), vec![String::new(), "x".into(), "x/a.txt".into()])]
    );
}
