//! What every end-to-end test needs: the binary, and the shared conformance corpus.

use std::path::PathBuf;

use assert_cmd::Command;

/// The `kiln` binary under test.
pub(crate) fn kiln() -> Command {
    Command::cargo_bin("kiln").expect("the kiln binary is built")
}

/// The conformance folder `sub`, or `None` (after saying so) when it is missing outside CI.
pub(crate) fn corpus(sub: &str) -> Option<PathBuf> {
    let root = std::env::var_os("KILN_CONFORMANCE_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance"),
        PathBuf::from,
    );
    let dir = root.join(sub);
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "conformance corpus missing at {} (CI=true requires it; set KILN_CONFORMANCE_DIR)",
        dir.display()
    );
    eprintln!("skipped: conformance corpus not found at {}", dir.display());
    None
}
