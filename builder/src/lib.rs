//! kiln-builder turns a Dockerfile and its build context into an OCI image.
//!
//! It owns the build end to end: the context walk, the solver and its content-hashed cache, the RUN
//! executor, layers, the content and image stores, the registry client and the exporters. Callers (the
//! `kiln` binary among them) talk to this crate only; it re-exports what they need from the frontend.
//!
//! Start at [`solver`]: a [`solver::BuildRequest`] run by a [`solver::Builder`] is one `docker build`
//! (its module doc has a runnable example that builds an image from Rust). Beneath it:
//! [`context`] (what COPY may read), [`fsop`] (COPY/ADD), [`exec`] (RUN in namespaces), [`layer`]
//! (snapshot diffs and layer apply), [`content`] and [`store`] (blobs, images, cache records, GC),
//! [`registry`] and [`distribution`] (pull and push), [`archive`] (save, load, import).
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
pub mod solver;
pub mod store;
