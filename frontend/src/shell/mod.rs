//! Word expansion with BuildKit's semantics: `$VAR`, `${VAR:-word}`, quotes and escapes.
//!
//! BuildKit does not run a shell to expand Dockerfile words; its `shell` package implements a small,
//! fixed subset of POSIX sh, and a Dockerfile means exactly what that subset makes of it. This module
//! reimplements the subset, quirks included, so that kiln expands every word to the same bytes.
//!
//! The model:
//!
//! * A [`Lexer`] is an immutable configuration: the escape token (`\` or, after `# escape=``, the
//!   backtick) and a few modes ([`Lexer::skip_process_quotes`] is the one heredoc bodies of `COPY <<EOF`
//!   use). Build it once per Dockerfile and share it.
//! * An [`Env`] answers "what is the value of `NAME`?". It is implemented for the usual maps and for
//!   lists of pairs (where the last duplicate wins).
//! * [`Lexer::process_word`] expands one word (variables, quote removal, no splitting): ENV values,
//!   COPY sources, WORKDIR... [`Lexer::process_words`] also splits the result into words the way
//!   BuildKit does for EXPOSE. [`Lexer::process_word_with_matches`] additionally reports which variable
//!   names were looked up and found or not found (for "which build args does this stage use" and the
//!   undefined-variable lint).
//!
//! What is supported: `$name`, `${name}`, `${name:-w}`, `${name-w}`, `${name:+w}`, `${name+w}`,
//! `${name:?msg}`, `${name?msg}`, `${name#pat}`, `${name##pat}`, `${name%pat}`, `${name%%pat}`,
//! `${name/pat/repl}` and `${name//pat/repl}`, single and double quotes, and the escape token. Positional
//! (`$1`) and special (`$@ $# $? ...`) parameters are never set. Everything else fails the way BuildKit
//! fails (`${v:=w}`, `${#v}`, `${v:1:2}`...), and `$(cmd)` and backquotes are kept as text.
//!
//! ```
//! use std::collections::HashMap;
//! use kiln_frontend::shell::Lexer;
//!
//! let env = HashMap::from([("VERSION".to_string(), "1.2.3".to_string())]);
//! let lexer = Lexer::new('\\');
//! assert_eq!(lexer.process_word("app-${VERSION}.tar.gz", &env).unwrap(), "app-1.2.3.tar.gz");
//! assert_eq!(lexer.process_word("'$VERSION' \"${NAME:-x}\"", &env).unwrap(), "$VERSION x");
//! assert_eq!(lexer.process_words("80 ${PORTS:-443 8080}", &env).unwrap(), ["80", "443", "8080"]);
//!
//! let err = lexer.process_word("${TOKEN:?must be set}", &env).unwrap_err();
//! assert_eq!(err.to_string(), r#"failed to process "${TOKEN:?must be set}": TOKEN: must be set"#);
//! ```

mod chars;
mod error;
mod expand;
mod pattern;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasher;

pub use error::{Error, ErrorKind};

/// A configured word expander. Expansion never mutates it, so one lexer serves a whole Dockerfile.
///
/// Built with [`Lexer::new`] and the builder methods, which mirror the switches of BuildKit's `Lex`.
// The switches are independent and documented one by one; they configure, they are not state.
#[expect(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lexer {
    escape: char,
    raw_quotes: bool,
    raw_escapes: bool,
    skip_process_quotes: bool,
    skip_unset_env: bool,
}

impl Lexer {
    /// A lexer whose escape token is `escape`: `'\\'` by default, `'`'` after `# escape=``.
    pub fn new(escape: char) -> Lexer {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_process_quotes: false,
            skip_unset_env: false,
        }
    }

    /// Treat quotes as ordinary characters (`'$a'` expands `$a`). BuildKit expands the body of a
    /// `COPY/ADD <<EOF` heredoc (unquoted terminator) this way, always with the `\` escape token.
    #[must_use]
    pub fn skip_process_quotes(self, yes: bool) -> Lexer {
        Lexer {
            skip_process_quotes: yes,
            ..self
        }
    }

    /// Keep quote characters in the output instead of removing them.
    #[must_use]
    pub fn raw_quotes(self, yes: bool) -> Lexer {
        Lexer {
            raw_quotes: yes,
            ..self
        }
    }

    /// Keep escape tokens in the output instead of removing them.
    #[must_use]
    pub fn raw_escapes(self, yes: bool) -> Lexer {
        Lexer {
            raw_escapes: yes,
            ..self
        }
    }

    /// Leave references to unset variables as written (`$u`, `${u:-d}`) instead of expanding them.
    #[must_use]
    pub fn skip_unset_env(self, yes: bool) -> Lexer {
        Lexer {
            skip_unset_env: yes,
            ..self
        }
    }

    /// The escape token this lexer was built with.
    pub fn escape(&self) -> char {
        self.escape
    }

    /// Expands one word: variables and quote removal, no word splitting (BuildKit's `ProcessWord`).
    pub fn process_word(&self, word: &str, env: &dyn Env) -> Result<String, Error> {
        self.expand(word, env).map(|e| e.value)
    }

    /// Expands `word` and splits the result into words (BuildKit's `ProcessWords`, used for EXPOSE).
    ///
    /// Unquoted text, including unquoted expansions, is split on whitespace; quoted text stays in one
    /// word; a word that ends up empty (`""`) is dropped.
    pub fn process_words(&self, word: &str, env: &dyn Env) -> Result<Vec<String>, Error> {
        self.expand(word, env).map(|e| e.words)
    }

    /// Expands one word like [`Lexer::process_word`] and reports which variable names it looked up.
    pub fn process_word_with_matches(&self, word: &str, env: &dyn Env) -> Result<Expansion, Error> {
        self.expand(word, env)
    }

    fn expand(&self, word: &str, env: &dyn Env) -> Result<Expansion, Error> {
        expand::expand(self, word, env).map_err(|kind| Error::new(word, kind))
    }
}

impl Default for Lexer {
    /// The default lexer: `\` escape token, every mode off.
    fn default() -> Lexer {
        Lexer::new('\\')
    }
}

/// The result of expanding a word, with the names it referenced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expansion {
    /// The expanded word (what [`Lexer::process_word`] returns).
    pub value: String,
    /// The expanded word split into words (what [`Lexer::process_words`] returns).
    pub words: Vec<String>,
    /// Names that were looked up and were set (possibly to the empty string).
    ///
    /// Every reference is looked up, including those in a `${a:-$b}` default that was not used, as
    /// BuildKit does.
    pub matched: BTreeSet<String>,
    /// Names that were looked up and were not set, positional parameters (`$1`) and special ones (`$@`)
    /// included.
    pub unmatched: BTreeSet<String>,
}

impl Expansion {
    /// Every name the word referenced, set or not: the "variables this word uses".
    pub fn used_names(&self) -> BTreeSet<String> {
        self.matched.union(&self.unmatched).cloned().collect()
    }
}

/// The variables a word is expanded against. Names are case-sensitive (Linux semantics).
pub trait Env {
    /// The value of `name`, or `None` if it is not set. An empty value is set.
    fn get(&self, name: &str) -> Option<&str>;
}

impl<S: BuildHasher> Env for HashMap<String, String, S> {
    fn get(&self, name: &str) -> Option<&str> {
        HashMap::get(self, name).map(String::as_str)
    }
}

impl Env for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        BTreeMap::get(self, name).map(String::as_str)
    }
}

/// A list of `(name, value)` pairs, as an image config's `Env` reads; the last duplicate wins.
impl<K: AsRef<str>, V: AsRef<str>> Env for [(K, V)] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(k, _)| k.as_ref() == name)
            .map(|(_, v)| v.as_ref())
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Env for Vec<(K, V)> {
    fn get(&self, name: &str) -> Option<&str> {
        Env::get(self.as_slice(), name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> Env for [(K, V); N] {
    fn get(&self, name: &str) -> Option<&str> {
        Env::get(self.as_slice(), name)
    }
}

impl<T: Env + ?Sized> Env for &T {
    fn get(&self, name: &str) -> Option<&str> {
        (**self).get(name)
    }
}

#[cfg(test)]
mod tests;
