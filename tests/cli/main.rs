//! End-to-end tests of the `kiln` binary, one module per area.

mod build_call;
mod debug_ast;
mod support;
