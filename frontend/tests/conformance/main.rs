//! Conformance against ../shared/conformance: BuildKit's parser cases, the shell lexer's tables and the
//! .dockerignore cases. Each failing case is reported by name.
//!
//! The corpus lives outside the repository. Under `CI=true` a missing corpus fails the run; otherwise the
//! tests say they skipped.

use std::path::PathBuf;

mod dockerignore;
mod shell;

/// The corpus folder `sub` (e.g. `parser`), or `None` when it is missing outside CI.
pub(crate) fn corpus(sub: &str) -> Option<PathBuf> {
    let root = std::env::var_os("KILN_CONFORMANCE_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance"),
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

mod parser;
