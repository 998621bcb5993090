//! kiln-builder's integration tests: one binary, one module per area.

mod content;
mod context;
mod reference;
mod store;
