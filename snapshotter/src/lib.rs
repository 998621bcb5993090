//! kiln-snapshotter keeps the filesystem snapshots a build is made of, with containerd's lifecycle.
//!
//! Vocabulary: a *key* names an active snapshot (writable after `prepare`, read-only after `view`); a
//! *name* names a committed one; a snapshot's *parent* is the committed snapshot it starts from. A
//! snapshotter returns mount descriptions and never mounts: the caller mounts them through a guard.
//!
//! (The snapshotter itself is filled in by its issue.)
#![warn(clippy::print_stdout, clippy::print_stderr)]
#![deny(missing_docs)]
