//! The seam to the shell lexer: expanding a word against the build's arguments, and the names it
//! used (for `--call=outline`).

use std::collections::{BTreeMap, BTreeSet};

use crate::syntax::Escape;

/// A word that could not be expanded, and the line of its instruction.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ExpandError {
    /// The instruction's line.
    pub line: usize,
    message: String,
}

/// A word after expansion, with the variable names it referred to.
pub(crate) struct Expanded {
    pub(crate) value: String,
    pub(crate) matched: BTreeSet<String>,
}

/// Expands `word` with `env`; `line` is where the word stands, for errors.
#[allow(clippy::unnecessary_wraps)]
pub(crate) fn expand(
    word: &str,
    env: &BTreeMap<String, String>,
    escape: Escape,
    line: usize,
) -> Result<Expanded, ExpandError> {
    // Placeholder until the shell lexer lands: words are taken literally.
    let _ = (env, escape, line);
    Ok(Expanded {
        value: word.to_owned(),
        matched: BTreeSet::new(),
    })
}
