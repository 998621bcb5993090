//! Several processes on one root.
