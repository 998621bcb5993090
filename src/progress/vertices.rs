//! A build's progress: BuildKit's vertex lines (`#5 [build 2/4] RUN make`), or one JSON event a line.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;

use kiln_builder::solver::{Event, LogStream, Reporter, VertexId};

/// How `--progress` renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Mode {
    /// `tty` on a terminal, `plain` otherwise.
    Auto,
    /// BuildKit's plain text (`#5 [build 2/4] RUN make`).
    Plain,
    /// A live view on a terminal (currently the plain text, flushed as it comes).
    Tty,
    /// One JSON event a line.
    Rawjson,
    /// Nothing.
    Quiet,
}

/// Writes events to stderr as the mode says.
pub(crate) struct Printer {
    mode: Mode,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    names: HashMap<VertexId, String>,
}

impl Printer {
    pub(crate) fn new(mode: Mode) -> Printer {
        Printer {
            mode,
            state: Mutex::new(State::default()),
        }
    }
}

impl Reporter for Printer {
    fn report(&self, event: &Event) {
        let mut err = std::io::stderr().lock();
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A closed stderr must not fail the build: write errors are ignored.
        let _ = match self.mode {
            Mode::Quiet => Ok(()),
            Mode::Rawjson => serde_json::to_string(event)
                .map_err(std::io::Error::other)
                .and_then(|line| writeln!(err, "{line}")),
            Mode::Auto | Mode::Plain | Mode::Tty => plain(&mut err, &mut state, event),
        };
    }
}

fn plain(out: &mut impl Write, state: &mut State, event: &Event) -> std::io::Result<()> {
    match event {
        Event::Started { id, name } => {
            state.names.insert(*id, name.clone());
            writeln!(out, "\n#{} {name}", id.0)
        }
        Event::Log {
            id,
            stream,
            elapsed,
            line,
        } => {
            if *stream == LogStream::Status {
                return writeln!(out, "#{} {line}", id.0);
            }
            writeln!(out, "#{} {:.3} {line}", id.0, elapsed.as_secs_f64())
        }
        Event::Cached { id } => writeln!(out, "#{} CACHED", id.0),
        Event::Done { id, elapsed } => writeln!(out, "#{} DONE {:.1}s", id.0, elapsed.as_secs_f64()),
        Event::Failed { id, error, .. } => writeln!(out, "#{} ERROR: {error}", id.0),
    }
}
