//! The seam to the shell lexer: expanding a FROM word against the global args, and the names it
//! used (for `--call=outline`).

use std::collections::{BTreeMap, BTreeSet};

use super::Error;
use crate::shell::Lexer;
use crate::syntax::Escape;

/// A word after expansion, with the variable names it found set.
pub(crate) struct Expanded {
    pub(crate) value: String,
    pub(crate) matched: BTreeSet<String>,
}

/// Expands `word` with `env`; `line` is where the word stands, for errors.
pub(crate) fn expand(
    word: &str,
    env: &BTreeMap<String, String>,
    escape: Escape,
    line: usize,
) -> Result<Expanded, Error> {
    let expansion = Lexer::new(escape.as_char())
        .process_word_with_matches(word, env)
        .map_err(|error| Error::Expand { error, line })?;
    Ok(Expanded {
        value: expansion.value,
        matched: expansion.matched,
    })
}
