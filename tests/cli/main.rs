//! End-to-end tests of the `kiln` binary, one module per area.

mod debug_ast;
mod debug_context;
mod support;
