//! Progress of a save, load or import, reported as [`Event`]s for the caller to render.
//!
//! Only layers are reported, as Docker shows them: configs, manifests and indexes are small and
//! move unseen. A layer is named by its short ID (the first 12 hex digits of its digest, or of
//! the directory an old `docker save` archive keeps it in), and goes through
//! [`Event::LayerStart`], any number of [`Event::LayerProgress`], then [`Event::LayerDone`] once
//! its bytes are written and verified. A failed operation stops reporting where it failed.

/// One step of moving a layer into or out of an archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A layer's bytes start moving.
    LayerStart {
        /// The layer's short ID.
        id: &'a str,
        /// Its size in bytes, as stored in the archive.
        size: u64,
    },
    /// Bytes of a layer have moved; `done` counts from the start of the layer.
    LayerProgress {
        /// The layer's short ID.
        id: &'a str,
        /// Bytes moved so far.
        done: u64,
        /// The layer's size.
        total: u64,
    },
    /// A layer is complete: written to the archive, or staged and verified on load.
    LayerDone {
        /// The layer's short ID.
        id: &'a str,
    },
}

/// Receives [`Event`]s. Implementations must be cheap: progress arrives once per chunk copied.
pub trait Reporter: Send + Sync {
    /// Handles one event.
    fn report(&self, event: Event<'_>);
}

/// A [`Reporter`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Reporter for NoProgress {
    fn report(&self, _event: Event<'_>) {}
}

impl<F: Fn(Event<'_>) + Send + Sync> Reporter for F {
    fn report(&self, event: Event<'_>) {
        self(event);
    }
}

/// Reports one layer's bytes as they pass: a start at the first byte, progress per chunk, and a
/// done on [`Meter::done`].
pub(crate) struct Meter<'r> {
    reporter: &'r dyn Reporter,
    id: String,
    total: u64,
    done: u64,
}

impl<'r> Meter<'r> {
    /// A meter for the layer `id` of `total` bytes; reports its start now.
    pub(crate) fn start(reporter: &'r dyn Reporter, id: &str, total: u64) -> Meter<'r> {
        reporter.report(Event::LayerStart { id, size: total });
        Meter {
            reporter,
            id: id.to_owned(),
            total,
            done: 0,
        }
    }

    /// Counts `n` more bytes.
    pub(crate) fn advance(&mut self, n: usize) {
        self.done += n as u64;
        self.reporter.report(Event::LayerProgress {
            id: &self.id,
            done: self.done,
            total: self.total,
        });
    }

    /// Reports the layer complete.
    pub(crate) fn done(self) {
        self.reporter.report(Event::LayerDone { id: &self.id });
    }
}

/// A reader that counts what passes through it on a [`Meter`].
pub(crate) struct Metered<'r, R> {
    pub(crate) inner: R,
    pub(crate) meter: Meter<'r>,
}

impl<R: std::io::Read> std::io::Read for Metered<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.meter.advance(n);
        }
        Ok(n)
    }
}
