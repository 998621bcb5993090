//! kiln-builder's integration tests: one binary, one module per area.

mod content;
mod fsop;
mod reference;
mod store;
