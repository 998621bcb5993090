//! Progress: what a build reports while it runs, for a caller to render.
//!
//! A build is a set of *vertices*, BuildKit's word for the units progress shows: loading the
//! Dockerfile and context, resolving a base image, each FROM, RUN, COPY, ADD and WORKDIR, and the
//! export. Each vertex gets a [`VertexId`] (numbered from 1 in the order vertices start, which is the
//! `#n` of BuildKit's plain output) and a name such as `[build 2/4] RUN make`. Its life is one
//! [`Event::Started`], then any number of [`Event::Log`] lines, then exactly one of
//! [`Event::Cached`], [`Event::Done`] or [`Event::Failed`].
//!
//! The library never prints: a [`Reporter`] receives the events. The `kiln` binary renders them as
//! BuildKit does (`--progress=plain`, `tty`, `rawjson`); [`NoProgress`] discards them and
//! [`Recorder`] keeps them for inspection.

use std::sync::Mutex;
use std::time::Duration;

/// A vertex's number within one build (`#5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct VertexId(pub u32);

/// Which output stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
    /// A status line of the build itself (`writing image sha256:...`), not process output.
    Status,
}

/// Something that happened in a build.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A vertex started.
    Started {
        /// Its number.
        id: VertexId,
        /// Its name, BuildKit-style: `[build 2/4] RUN make`, `[internal] load build context`.
        name: String,
    },
    /// A line of output (from a RUN, or a status line of the build itself).
    Log {
        /// The vertex it belongs to.
        id: VertexId,
        /// Where it came from.
        stream: LogStream,
        /// Time since the vertex started.
        #[serde(with = "seconds")]
        elapsed: Duration,
        /// The line, without its newline. Not necessarily UTF-8 in the process's output; lossily
        /// decoded here.
        line: String,
    },
    /// The vertex's result came from the cache: it did not run.
    Cached {
        /// Its number.
        id: VertexId,
    },
    /// The vertex finished.
    Done {
        /// Its number.
        id: VertexId,
        /// How long it took.
        #[serde(with = "seconds")]
        elapsed: Duration,
    },
    /// The vertex failed; the build stops.
    Failed {
        /// Its number.
        id: VertexId,
        /// How long it ran.
        #[serde(with = "seconds")]
        elapsed: Duration,
        /// Why, in one line.
        error: String,
    },
}

/// Receives a build's events, in order, on the thread that called the build.
pub trait Reporter {
    /// Called once per event.
    fn report(&self, event: &Event);
}

/// A reporter that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Reporter for NoProgress {
    fn report(&self, _event: &Event) {}
}

/// A reporter that keeps every event.
#[derive(Debug, Default)]
pub struct Recorder {
    events: Mutex<Vec<Event>>,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Recorder {
        Recorder::default()
    }

    /// The events so far.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Reporter for Recorder {
    fn report(&self, event: &Event) {
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(event.clone());
    }
}

impl<R: Reporter + ?Sized> Reporter for &R {
    fn report(&self, event: &Event) {
        (**self).report(event);
    }
}

/// Durations in JSON as fractional seconds.
mod seconds {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

/// The sending side of a build's events: cheap to clone, usable from any thread. The build's
/// top-level future drains the receiving side into the caller's [`Reporter`].
#[derive(Debug, Clone)]
pub(crate) struct Progress {
    tx: tokio::sync::mpsc::UnboundedSender<Event>,
    next: std::sync::Arc<std::sync::atomic::AtomicU32>,
}

impl Progress {
    /// A new event channel.
    pub(crate) fn channel() -> (Progress, tokio::sync::mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let progress = Progress {
            tx,
            next: std::sync::Arc::new(std::sync::atomic::AtomicU32::new(1)),
        };
        (progress, rx)
    }

    /// Starts a vertex named `name`.
    pub(crate) fn start(&self, name: impl Into<String>) -> Vertex {
        let id = VertexId(self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let vertex = Vertex {
            id,
            started: std::time::Instant::now(),
            progress: self.clone(),
        };
        vertex.send(Event::Started {
            id,
            name: name.into(),
        });
        vertex
    }
}

/// A started vertex: log lines go to it, and it ends cached, done or failed.
#[derive(Debug, Clone)]
pub(crate) struct Vertex {
    id: VertexId,
    started: std::time::Instant,
    progress: Progress,
}

impl Vertex {
    fn send(&self, event: Event) {
        // The receiver only goes away once the build is over; a late event has no one to tell.
        let _ = self.progress.tx.send(event);
    }

    /// A line of output.
    pub(crate) fn log(&self, stream: LogStream, line: impl Into<String>) {
        self.send(Event::Log {
            id: self.id,
            stream,
            elapsed: self.started.elapsed(),
            line: line.into(),
        });
    }

    /// The vertex was a cache hit.
    pub(crate) fn cached(&self) {
        self.send(Event::Cached { id: self.id });
    }

    /// The vertex finished.
    pub(crate) fn done(&self) {
        self.send(Event::Done {
            id: self.id,
            elapsed: self.started.elapsed(),
        });
    }

    /// The vertex failed.
    pub(crate) fn failed(&self, error: &str) {
        self.send(Event::Failed {
            id: self.id,
            elapsed: self.started.elapsed(),
            error: error.to_owned(),
        });
    }
}
