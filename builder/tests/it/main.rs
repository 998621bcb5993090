//! kiln-builder's integration tests: one binary, one module per area.

mod content;
mod exec;
mod reference;
mod registry;
mod store;
