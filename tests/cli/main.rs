//! End-to-end tests of the `kiln` binary, one module per area.

mod archive;
mod build_cache;
mod build_call;
mod build_copy;
mod build_image;
mod build_interrupt;
mod build_progress;
mod build_secret;
mod build_stages;
mod build_stdin;
mod builder_prune;
mod debug_ast;
mod debug_context;
mod images;
mod login;
mod pull_push;
mod run;
mod support;
mod unpack;
