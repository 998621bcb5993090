//! Bytes to a tree of [`Node`]s with line spans, as BuildKit's `parser` package reads them.
//!
//! (The parser itself is filled in by the frontend issue; the node types below are the contract the
//! instruction layer builds on.)

mod node;

pub use node::{Arg, Directives, Dockerfile, Escape, Heredoc, Node, Span, Warning};
