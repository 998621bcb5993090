//! Progress on the terminal: one line per item (a layer, a blob), as `docker pull` draws them.
//!
//! A [`Board`] holds the lines of one command. Each line has a key (the short ID Docker shows,
//! such as `a3ed95caeb02`) and a [`Status`]: waiting, moving bytes (with a bar), settled, or a
//! passing note such as a retry. How the board draws depends on its [`Mode`]:
//!
//! - **Bars** (stderr is a terminal): every line stays on screen and is redrawn in place, with a
//!   progress bar while bytes move (indicatif).
//! - **Lines** (CI logs, pipes, `TERM=dumb`): a line is printed once when it settles (or
//!   notes a retry); no bar, no cursor movement, so logs read top to bottom.
//! - **Silent** (`-q`): nothing.
//!
//! Everything a board draws goes to stderr. kiln keeps stdout for data (the name pulled, the
//! digest pushed), so scripts read the same stdout with or without `-q`; Docker prints progress
//! on stdout, kiln does not. Colour only tints the bars, and `NO_COLOR` (set and not empty)
//! turns it off.
//!
//! [`Blobs`] turns the registry client's events into board lines with Docker's wording, and
//! [`Layers`] the archive's events (`save`, `load`).
//!
//! A build draws no board: [`vertices`] renders the solver's vertices as `--progress` says, as
//! BuildKit's plain lines, as JSON, or (`tty`) as BuildKit's live view, which the `tty` module
//! draws with the same terminal and colour rules as the bars.

mod bars;
mod blobs;
mod layers;
mod lines;
mod tty;
pub(crate) mod vertices;

use std::io::{IsTerminal, Write};

pub(crate) use blobs::{Blobs, Transfer};
pub(crate) use layers::{Direction, Layers};

/// How a board draws, chosen from where stderr goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Live bars on a terminal; `color` tints them.
    Bars {
        /// Whether the bars may be coloured.
        color: bool,
    },
    /// Plain lines for logs.
    Lines,
    /// Nothing at all.
    Silent,
}

impl Mode {
    /// The mode for this process: silent when `quiet`, bars when stderr is a terminal that can
    /// move its cursor (not `TERM=dumb`), plain lines otherwise.
    pub(crate) fn detect(quiet: bool) -> Mode {
        if quiet {
            Mode::Silent
        } else if live_terminal() {
            Mode::Bars {
                color: color_allowed(),
            }
        } else {
            Mode::Lines
        }
    }
}

/// Whether stderr is a terminal that can redraw in place: a terminal, and not `TERM=dumb`.
fn live_terminal() -> bool {
    std::io::stderr().is_terminal() && env("TERM").is_none_or(|term| term != "dumb")
}

/// Whether colour is allowed: not when `NO_COLOR` is set and not empty.
fn color_allowed() -> bool {
    env("NO_COLOR").is_none()
}

/// An environment variable, when set and not empty.
fn env(name: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(name).filter(|value| !value.is_empty())
}

/// What one line says now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status<'a> {
    /// Nothing has happened to the item yet (`Pulling fs layer`, `Preparing`).
    Waiting(&'a str),
    /// Bytes are moving (`Downloading`, `Pushing`): `done` of `total`.
    Moving {
        /// What is happening.
        text: &'a str,
        /// Bytes moved so far.
        done: u64,
        /// Bytes in all.
        total: u64,
    },
    /// The item is finished (`Pull complete`, `Layer already exists`); the line no longer changes.
    Settled(&'a str),
    /// A passing remark on an unfinished item (`Retrying (attempt 2)`).
    Note(&'a str),
}

/// The lines of one command, drawn as its [`Mode`] says.
pub(crate) enum Board {
    /// Live bars (boxed: they are big, and one board lives per command).
    Bars(Box<bars::Bars>),
    /// Plain lines.
    Lines(lines::Lines),
    /// Nothing.
    Silent,
}

impl Board {
    /// A board drawing to stderr in `mode`.
    pub(crate) fn new(mode: Mode) -> Board {
        match mode {
            Mode::Bars { color } => Board::Bars(Box::new(bars::Bars::new(color))),
            Mode::Lines => Board::Lines(lines::Lines::new(Box::new(std::io::stderr()))),
            Mode::Silent => Board::Silent,
        }
    }

    /// A board printing plain lines to `out` (tests read what a log would show).
    #[cfg(test)]
    pub(crate) fn lines_to(out: Box<dyn Write + Send>) -> Board {
        Board::Lines(lines::Lines::new(out))
    }

    /// Sets the line `key` to `status`; a new key gets a new line below the others.
    pub(crate) fn show(&mut self, key: &str, status: Status<'_>) {
        match self {
            Board::Bars(bars) => bars.show(key, status),
            Board::Lines(lines) => lines.show(key, status),
            Board::Silent => {}
        }
    }

    /// A message that belongs to no line (printed above the bars).
    pub(crate) fn message(&mut self, text: &str) {
        match self {
            Board::Bars(bars) => bars.message(text),
            Board::Lines(lines) => lines.message(text),
            Board::Silent => {}
        }
    }
}

/// Status lines on stderr (`Digest: …`, `Status: …`), unless quiet: the messages around a board.
pub(crate) struct Messages {
    quiet: bool,
}

impl Messages {
    pub(crate) fn new(quiet: bool) -> Messages {
        Messages { quiet }
    }

    /// Prints one line; progress is best effort, so a closed stderr is not an error.
    pub(crate) fn say(&mut self, line: &str) {
        if !self.quiet {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
    }
}
