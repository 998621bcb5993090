//! Which ignore file is used, and what the walk leaves of the context.

use kiln_builder::context::{Context, ContextError, EntryKind, IgnoreSource, Source};

use super::{Tree, paths};

fn open(tree: &Tree, ignore: IgnoreSource) -> Context {
    Context::builder(tree.path()).ignore(ignore).open().unwrap()
}

#[test]
fn dockerfile_dockerignore_replaces_the_context_dockerignore() {
    let tree = Tree::new();
    tree.file("Dockerfile", "FROM scratch\n")
        .file(".dockerignore", "a\n")
        .file("Dockerfile.dockerignore", "b\n")
        .file("a", "")
        .file("b", "");
    let context = open(
        &tree,
        IgnoreSource::for_dockerfile(Some(&tree.join("Dockerfile"))),
    );
    assert_eq!(
        paths(&context),
        [".dockerignore", "Dockerfile", "Dockerfile.dockerignore", "a"]
    );
    assert_eq!(
        context.ignore_file(),
        Some(
            tree.join("Dockerfile.dockerignore")
                .canonicalize()
                .unwrap()
                .as_path()
        )
    );
}

#[test]
fn a_dockerfile_in_a_subdirectory_uses_the_ignore_file_beside_it() {
    let tree = Tree::new();
    tree.file("sub/app.Dockerfile", "FROM scratch\n")
        .file("sub/app.Dockerfile.dockerignore", "secret\n")
        .file(".dockerignore", "public\n")
        .file("secret", "")
        .file("public", "");
    let dockerfile = tree.join("sub/app.Dockerfile");
    let context = open(&tree, IgnoreSource::for_dockerfile(Some(&dockerfile)));
    assert!(context.get("public").is_some());
    assert!(context.get("secret").is_none());

    // Without one beside it, the context's `.dockerignore` applies.
    std::fs::remove_file(tree.join("sub/app.Dockerfile.dockerignore")).unwrap();
    let context = open(&tree, IgnoreSource::for_dockerfile(Some(&dockerfile)));
    assert!(context.get("public").is_none());
    assert!(context.get("secret").is_some());
}

#[test]
fn a_dockerfile_from_stdin_uses_the_context_dockerignore() {
    let tree = Tree::new();
    tree.file(".dockerignore", "a\n")
        .file("Dockerfile.dockerignore", "b\n")
        .file("a", "")
        .file("b", "");
    let context = open(&tree, IgnoreSource::for_dockerfile(None));
    assert!(context.get("a").is_none());
    assert!(context.get("b").is_some());
}

#[test]
fn an_exception_inside_an_excluded_directory_brings_back_only_that_file() {
    let tree = Tree::new();
    tree.file(".dockerignore", "docs\n!docs/README.md\n")
        .file("docs/README.md", "read me")
        .file("docs/guide.md", "")
        .file("docs/api/index.md", "")
        .file("src/main.rs", "");
    let context = tree.context();
    assert_eq!(
        paths(&context),
        [".dockerignore", "docs", "docs/README.md", "src", "src/main.rs"]
    );
    // The re-created parent carries the directory's real metadata.
    let docs = context.get("docs").unwrap();
    assert_eq!(docs.kind(), &EntryKind::Dir);
    assert_eq!(
        docs.metadata().ino,
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(tree.join("docs")).unwrap())
    );
}

#[test]
fn reincluding_a_directory_does_not_undo_a_deeper_pattern() {
    // SEMANTICS.md §5: the walk's incremental rule keeps docs/x.md excluded.
    let tree = Tree::new();
    tree.file(".dockerignore", "**/*.md\n!docs\n")
        .file("README.md", "")
        .file("docs/x.md", "")
        .file("docs/y.txt", "");
    assert_eq!(paths(&tree.context()), [".dockerignore", "docs", "docs/y.txt"]);
}

#[test]
fn a_wildcard_exception_is_found_in_any_excluded_directory() {
    let tree = Tree::new();
    tree.file(".dockerignore", "*\n!src/*.rs\n")
        .file("src/lib.rs", "")
        .file("src/notes.txt", "")
        .file("target/out.rs", "");
    assert_eq!(paths(&tree.context()), ["src", "src/lib.rs"]);
}

#[test]
fn excluding_everything_leaves_the_root() {
    let tree = Tree::new();
    tree.file(".dockerignore", "*\n").file("a/b", "").file("c", "");
    let context = tree.context();
    assert!(context.entries().is_empty());
    let all = context.select(&Source::new(".")).unwrap();
    assert_eq!(all.entries().count(), 1, "only the root itself");
}

#[test]
fn a_directory_whose_children_are_excluded_stays() {
    let tree = Tree::new();
    tree.file(".dockerignore", "foo/bar\na/*\n")
        .file("foo/bar", "")
        .file("a/b/c", "");
    assert_eq!(paths(&tree.context()), [".dockerignore", "a", "foo"]);
}

#[test]
fn the_ignore_file_and_dockerfile_can_exclude_themselves() {
    let tree = Tree::new();
    tree.file(".dockerignore", ".dockerignore\nDockerfile\n")
        .file("Dockerfile", "FROM scratch\n")
        .file("app", "");
    assert_eq!(paths(&tree.context()), ["app"]);
}

#[test]
fn ignored_files_are_invisible_to_every_api() {
    let tree = Tree::new();
    tree.file(".dockerignore", "secret.txt\nprivate\n")
        .file("secret.txt", "password")
        .file("private/key", "key")
        .file("public.txt", "hello")
        .symlink("link", "secret.txt")
        .symlink("keylink", "private/key");
    let context = tree.context();
    for source in ["secret.txt", "link", "keylink", "private", "private/key"] {
        let error = context.select(&Source::new(source)).unwrap_err();
        assert!(
            matches!(error, ContextError::NotFound { .. }),
            "{source}: {error}"
        );
    }
    let txt = context.select(&Source::new("*.txt")).unwrap();
    let matched: Vec<_> = txt.matches().iter().map(|m| m.path().to_owned()).collect();
    assert_eq!(matched, [std::path::PathBuf::from("public.txt")]);

    // Changing an ignored file changes nothing a build sees.
    let before = tree.checksum(".");
    tree.file("secret.txt", "rotated").file("private/key", "rotated");
    assert_eq!(tree.checksum("."), before);
}

#[test]
fn symlinks_are_entries_and_never_followed_by_the_walk() {
    let tree = Tree::new();
    tree.file("src/a.rs", "")
        .symlink("linked", "src")
        .symlink("outside", "/etc");
    let context = tree.context();
    assert_eq!(paths(&context), ["linked", "outside", "src", "src/a.rs"]);
    assert_eq!(
        context.get("linked").unwrap().kind(),
        &EntryKind::Symlink("src".into())
    );
}

#[test]
fn the_walk_is_depth_first_with_names_sorted_bytewise() {
    let tree = Tree::new();
    tree.file("a.txt", "")
        .file("a/b", "")
        .file("B", "")
        .file("a-z/c", "");
    assert_eq!(paths(&tree.context()), ["B", "a", "a/b", "a-z", "a-z/c", "a.txt"]);
}

#[test]
fn a_bad_pattern_fails_with_the_file_and_line() {
    let tree = Tree::new();
    tree.file(".dockerignore", "ok\n[\n");
    let error = Context::builder(tree.path()).open().unwrap_err();
    assert!(matches!(error, ContextError::IgnoreFile { .. }), "{error:?}");
    let chain = format!("{}: {}", error, std::error::Error::source(&error).unwrap());
    assert!(
        chain.ends_with(".dockerignore: line 2: syntax error in pattern \"[\""),
        "{chain}"
    );
}

#[test]
fn a_missing_context_directory_is_reported() {
    let error = Context::builder("/nonexistent/context").open().unwrap_err();
    assert_eq!(
        error.to_string(),
        "unable to prepare context: path \"/nonexistent/context\" not found"
    );
}

/// Every path under `dir`, by a plain recursive `read_dir`, in `Path` order.
fn find(dir: &std::path::Path, rel: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir.join(rel)).unwrap() {
        let entry = entry.unwrap();
        let child = rel.join(entry.file_name());
        out.push(child.clone());
        if entry.file_type().unwrap().is_dir() {
            find(dir, &child, out);
        }
    }
}

#[test]
fn a_wide_and_deep_tree_is_walked_completely_in_order() {
    let tree = Tree::new();
    for d in 0..60 {
        for f in 0..4 {
            tree.file(&format!("d{}/s{}/f{f}", d * 7 % 60, d % 5), "");
        }
    }
    let deep: String = (0..200).map(|i| ["n0/", "n1/", "n2/"][i % 3]).collect();
    tree.file(&format!("{deep}leaf"), "");
    let mut expected = Vec::new();
    find(tree.path(), std::path::Path::new(""), &mut expected);
    expected.sort();
    let walked: Vec<_> = tree
        .context()
        .entries()
        .iter()
        .map(|e| e.path().to_owned())
        .collect();
    assert_eq!(walked, expected);
}
