//! kiln-builder turns a Dockerfile and its build context into an OCI image.
//!
//! It owns the build end to end: the context walk, the solver and its content-hashed cache, the RUN
//! executor, layers, the content and image stores, the registry client and the exporters. Callers (the
//! `kiln` binary among them) talk to this crate only; it re-exports what they need from the frontend.
#![warn(clippy::print_stdout, clippy::print_stderr)]
#![deny(missing_docs)]

pub use kiln_frontend as frontend;

pub mod archive;
pub mod content;
pub mod context;
pub mod distribution;
pub mod dockerfile;
pub mod exec;
pub mod fsop;
mod fsroot;
mod glob;
pub mod layer;
pub mod platform;
pub mod reference;
pub mod registry;
pub mod store;
