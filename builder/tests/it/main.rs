//! kiln-builder's integration tests: one binary, one module per area. Run as root on Linux (the layer
//! tests create device nodes, set trusted.* xattrs, chown and mount overlays).

mod layer;
