//! kiln-builder's integration tests: one binary, one module per area. Run as root on Linux (they
//! create device nodes, set trusted.* xattrs, chown, mount overlays and enter namespaces).

mod content;
mod context;
mod exec;
mod fsop;
mod layer;
mod reference;
mod registry;
mod store;
