//! Heredoc sources (`COPY <<EOF /dest`).

use kiln_builder::fsop::{self, FsopError, InlineFile, Mode, Owner};

use super::Fx;

fn doc(name: &str, data: &str) -> InlineFile {
    InlineFile {
        name: name.to_owned(),
        data: data.as_bytes().to_vec(),
    }
}

#[test]
fn one_heredoc_to_a_file_path() {
    let fx = Fx::new();
    fsop::write_inline(
        fx.root.path(),
        "/etc/app.conf",
        &[doc("EOF", "key = 1\n")],
        None,
        None,
    )
    .unwrap();
    assert_eq!(fx.read("etc/app.conf"), "key = 1\n");
    assert_eq!(fx.meta("etc/app.conf"), (0o644, 0, 0));
}

#[test]
fn heredocs_into_a_directory_are_named_after_their_word() {
    let fx = Fx::new();
    let files = [doc("run.sh", "#!/bin/sh\necho hi\n"), doc("EOT", "x")];
    let mode = Mode::parse("755").unwrap();
    fsop::write_inline(
        fx.root.path(),
        "/bin/",
        &files,
        Some(Owner::new(10, 20)),
        Some(&mode),
    )
    .unwrap();
    assert_eq!(fx.read("bin/run.sh"), "#!/bin/sh\necho hi\n");
    assert_eq!(fx.meta("bin/run.sh"), (0o755, 10, 20));
    assert_eq!(fx.meta("bin/EOT"), (0o755, 10, 20));
    assert_eq!(fx.meta("bin"), (0o755, 10, 20));
}

#[test]
fn several_heredocs_need_a_directory() {
    let fx = Fx::new();
    let err =
        fsop::write_inline(fx.root.path(), "/x", &[doc("A", "a"), doc("B", "b")], None, None).unwrap_err();
    assert!(matches!(err, FsopError::DestNotDirectory { .. }), "{err:?}");
}

#[test]
fn heredoc_names_with_wildcard_characters_are_literal() {
    let fx = Fx::new();
    fsop::write_inline(fx.root.path(), "/d/", &[doc("a[1]*.txt", "lit")], None, None).unwrap();
    assert_eq!(fx.read("d/a[1]*.txt"), "lit");
}
