//! A build's progress: BuildKit's vertex lines (`#5 [build 2/4] RUN make`), its live view on a
//! terminal, or one JSON event a line.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;

use kiln_builder::solver::{Event, LogStream, Reporter, VertexId};

use super::tty::Live;

/// How `--progress` renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Mode {
    /// `tty` on a terminal, `plain` otherwise.
    Auto,
    /// BuildKit's plain text (`#5 [build 2/4] RUN make`).
    Plain,
    /// BuildKit's live view, redrawn in place on a terminal; off a terminal, its last frame once
    /// the build is over.
    Tty,
    /// One JSON event a line.
    Rawjson,
    /// Nothing.
    Quiet,
}

impl Mode {
    /// The mode in force: nothing when `quiet`; for `auto`, the live view on a terminal that can
    /// move its cursor (not `TERM=dumb`), plain text otherwise.
    pub(crate) fn resolve(self, quiet: bool) -> Mode {
        match self {
            _ if quiet => Mode::Quiet,
            Mode::Auto if super::live_terminal() => Mode::Tty,
            Mode::Auto => Mode::Plain,
            mode => mode,
        }
    }
}

/// Writes events to stderr as the mode says. Call [`Printer::finish`] (or drop it) once the build
/// is over, before printing anything else: the live view then draws its last frame.
pub(crate) struct Printer {
    output: Output,
}

enum Output {
    Quiet,
    Rawjson,
    Plain(Mutex<State>),
    Tty(Live),
}

#[derive(Default)]
struct State {
    names: HashMap<VertexId, String>,
}

impl Printer {
    /// A printer for `mode` (as [`Mode::resolve`] leaves it; `auto` prints plain text).
    pub(crate) fn new(mode: Mode) -> Printer {
        let output = match mode {
            Mode::Quiet => Output::Quiet,
            Mode::Rawjson => Output::Rawjson,
            Mode::Auto | Mode::Plain => Output::Plain(Mutex::new(State::default())),
            Mode::Tty => Output::Tty(Live::new(super::color_allowed())),
        };
        Printer { output }
    }

    /// Ends the output: the live view leaves its last frame.
    pub(crate) fn finish(self) {
        drop(self);
    }
}

impl Reporter for Printer {
    fn report(&self, event: &Event) {
        // A closed stderr must not fail the build: write errors are ignored.
        let _ = match &self.output {
            Output::Quiet => Ok(()),
            Output::Tty(live) => {
                live.report(event);
                Ok(())
            }
            Output::Rawjson => serde_json::to_string(event)
                .map_err(std::io::Error::other)
                .and_then(|line| writeln!(std::io::stderr().lock(), "{line}")),
            Output::Plain(state) => plain(
                &mut std::io::stderr().lock(),
                &mut state.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
                event,
            ),
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
