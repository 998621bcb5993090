//! kiln-frontend reads Dockerfiles exactly as BuildKit does.
//!
//! The model has three layers, each a pure function of the one before (no filesystem, no network):
//!
//! 1. [`syntax`] turns bytes into a tree of [`syntax::Node`]s with line spans: parser directives, the
//!    escape token, continuations, comments, heredocs, JSON vs shell forms and flags. `Node::dump` prints
//!    BuildKit's s-expression form byte for byte.
//! 2. [`instruction`] turns each node into a typed instruction, one variant per keyword, with its flags
//!    parsed and validated and BuildKit's error messages.
//! 3. [`graph`] turns the instructions into a `BuildGraph`: stages, their bases and the edges between
//!    them, target selection and pruning, ARG scoping.
//!
//! Beside them, [`shell`] expands words (`$VAR`, `${VAR:-x}`...) with BuildKit's semantics and
//! [`dockerignore`] parses and matches `.dockerignore` patterns with Docker's.
#![warn(clippy::print_stdout, clippy::print_stderr)]
#![deny(missing_docs)]

mod go;

pub mod dockerignore;
pub mod graph;
pub mod instruction;
pub mod shell;
pub mod syntax;
