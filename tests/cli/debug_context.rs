//! `kiln debug context` prints the paths COPY and ADD see, one per line.

use std::path::{Path, PathBuf};

use crate::support::kiln;

fn write(root: &Path, rel: &str, contents: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}

fn lines(output: &std::process::Output) -> Vec<String> {
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn without_an_ignore_file_it_prints_what_find_prints() {
    let dir = tempfile::tempdir().unwrap();
    for rel in ["a.txt", "a/b/c", "a-z/d", "B", ".hidden/e"] {
        write(dir.path(), rel, "");
    }
    std::os::unix::fs::symlink("/etc", dir.path().join("link")).unwrap();
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    let printed = lines(
        &kiln()
            .args(["debug", "context"])
            .arg(dir.path())
            .output()
            .unwrap(),
    );

    let find = std::process::Command::new("find")
        .arg(".")
        .arg("-mindepth")
        .arg("1")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let mut found: Vec<PathBuf> = lines(&find)
        .iter()
        .map(|l| PathBuf::from(l.strip_prefix("./").unwrap()))
        .collect();
    // Walk order is `Path`'s component-wise order: a directory's contents right after it.
    found.sort();
    let found: Vec<String> = found.iter().map(|p| p.to_str().unwrap().to_owned()).collect();
    assert_eq!(printed, found);
    assert_eq!(
        printed,
        [
            ".hidden",
            ".hidden/e",
            "B",
            "a",
            "a/b",
            "a/b/c",
            "a-z",
            "a-z/d",
            "a.txt",
            "empty",
            "link"
        ]
    );
}

#[test]
fn ignored_paths_are_left_out() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), ".dockerignore", "docs\n!docs/README.md\n**/*.log\n");
    write(dir.path(), "docs/README.md", "");
    write(dir.path(), "docs/guide.md", "");
    write(dir.path(), "src/main.rs", "");
    write(dir.path(), "src/debug.log", "");
    let printed = lines(
        &kiln()
            .args(["debug", "context"])
            .arg(dir.path())
            .output()
            .unwrap(),
    );
    assert_eq!(
        printed,
        [".dockerignore", "docs", "docs/README.md", "src", "src/main.rs"]
    );
}

#[test]
fn the_dockerfile_flag_chooses_the_ignore_file_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), ".dockerignore", "from-root\n");
    write(dir.path(), "sub/app.Dockerfile", "FROM scratch\n");
    write(
        dir.path(),
        "sub/app.Dockerfile.dockerignore",
        "from-dockerfile\nsub\n",
    );
    write(dir.path(), "from-root", "");
    write(dir.path(), "from-dockerfile", "");
    let with_file = lines(
        &kiln()
            .args(["debug", "context", "-f"])
            .arg(dir.path().join("sub/app.Dockerfile"))
            .arg(dir.path())
            .output()
            .unwrap(),
    );
    assert_eq!(with_file, [".dockerignore", "from-root"]);

    // From standard input there is no file beside which to look: the context's `.dockerignore`.
    let from_stdin = lines(
        &kiln()
            .args(["debug", "context", "-f", "-"])
            .arg(dir.path())
            .output()
            .unwrap(),
    );
    assert_eq!(
        from_stdin,
        [
            ".dockerignore",
            "from-dockerfile",
            "sub",
            "sub/app.Dockerfile",
            "sub/app.Dockerfile.dockerignore"
        ]
    );
}

#[test]
fn the_default_dockerfile_brings_its_own_ignore_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "Dockerfile", "FROM scratch\n");
    write(dir.path(), "Dockerfile.dockerignore", "Dockerfile*\n");
    write(dir.path(), ".dockerignore", "app\n");
    write(dir.path(), "app", "");
    let printed = lines(
        &kiln()
            .args(["debug", "context"])
            .arg(dir.path())
            .output()
            .unwrap(),
    );
    assert_eq!(printed, [".dockerignore", "app"]);
}

#[test]
fn errors_name_the_problem() {
    let missing = kiln()
        .args(["debug", "context", "/nonexistent/ctx"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .starts_with("error: unable to prepare context: path \"/nonexistent/ctx\" not found"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), ".dockerignore", "fine\n!\n");
    let bad = kiln()
        .args(["debug", "context"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains(".dockerignore: line 2: illegal exclusion pattern: \"!\""),
        "{stderr}"
    );
    assert!(bad.stdout.is_empty());
}
