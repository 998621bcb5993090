//! kiln-builder's integration tests: one binary, one module per area.

mod content;
mod exec;
mod fsop;
mod reference;
mod registry;
mod store;
