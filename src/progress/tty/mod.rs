//! `--progress=tty`: BuildKit's live view of a build on a terminal.
//!
//! [`Live`] folds the solver's events into a [`View`] as they arrive, on the build's thread. A
//! ticker thread redraws the frame ([`frame::live`]) ten times a second, in place: it moves the
//! cursor up over the frame it drew last, rewrites each line, and clears whatever a taller frame
//! left below. A frame fits the terminal's height, so finished vertices scroll off its top while
//! the build runs. When the build is over, dropping the [`Live`] draws the last frame
//! ([`frame::last`]) over the live one: every vertex, in order, which stays on screen above what
//! prints next (the report of a failed step).
//!
//! When stderr is not a terminal (`--progress=tty` forced into a pipe or a file) nothing moves:
//! the last frame is printed once at the end, 80 columns wide, as a record of the build.

mod frame;
mod view;

use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write as _};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kiln_builder::solver::Event;

use frame::Layout;
use view::View;

/// How often the live frame is redrawn.
const TICK: Duration = Duration::from_millis(100);

/// The size assumed when the terminal does not say (and the width of a frame printed to a file).
const DEFAULT_SIZE: (usize, usize) = (24, 80);

/// The live view of one build, drawing on stderr until dropped.
pub(crate) struct Live {
    canvas: Arc<Mutex<Canvas>>,
    /// The redrawing thread, when stderr is a terminal.
    ticker: Option<Ticker>,
}

/// The redrawing thread and the handle that stops it (dropping the sender wakes it to return).
struct Ticker {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

/// The view and what is on screen of it.
struct Canvas {
    view: View,
    /// Whether stderr is a terminal, redrawn in place.
    terminal: bool,
    color: bool,
    /// How many lines the frame on screen has: the next frame moves up over them.
    drawn: usize,
}

impl Live {
    /// A live view of a build beginning now; `color` allows coloured rows on a terminal.
    pub(crate) fn new(color: bool) -> Live {
        let terminal = std::io::stderr().is_terminal();
        let canvas = Arc::new(Mutex::new(Canvas {
            view: View::new(Instant::now()),
            terminal,
            color: color && terminal,
            drawn: 0,
        }));
        let ticker = terminal.then(|| Ticker::start(Arc::clone(&canvas)));
        Live { canvas, ticker }
    }

    /// Folds in one of the build's events; the next tick shows it.
    pub(crate) fn report(&self, event: &Event) {
        lock(&self.canvas).view.apply(event, Instant::now());
    }
}

impl Drop for Live {
    /// Stops the redrawing and leaves the last frame on screen (or prints it, off a terminal).
    fn drop(&mut self) {
        if let Some(ticker) = self.ticker.take() {
            drop(ticker.stop);
            // A panicked ticker drew nothing more; the last frame is drawn all the same.
            let _ = ticker.thread.join();
        }
        lock(&self.canvas).draw_last();
    }
}

impl Ticker {
    fn start(canvas: Arc<Mutex<Canvas>>) -> Ticker {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("kiln-progress".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(TICK) {
                    lock(&canvas).draw_live();
                }
            })
            .expect("a thread for the progress view");
        Ticker { stop, thread }
    }
}

impl Canvas {
    /// Redraws the frame of the moment, fitted to the terminal.
    fn draw_live(&mut self) {
        let (height, width) = terminal_size();
        let layout = Layout {
            width,
            color: self.color,
        };
        let lines = frame::live(&self.view, Instant::now(), layout, height);
        self.draw(&lines);
    }

    /// Draws the last frame, whole.
    fn draw_last(&mut self) {
        let width = if self.terminal {
            terminal_size().1
        } else {
            DEFAULT_SIZE.1
        };
        let layout = Layout {
            width,
            color: self.color,
        };
        let lines = frame::last(&self.view, Instant::now(), layout);
        if self.terminal {
            self.draw(&lines);
        } else {
            let mut text = lines.join("\n");
            text.push('\n');
            write_stderr(&text);
        }
    }

    /// Draws `lines` over the frame on screen, in one write: cursor hidden meanwhile, up to the
    /// first line of the old frame, each line then the rest of it cleared, then everything below
    /// cleared (the old frame may have been taller). The cursor ends at the start of the line
    /// after the frame.
    fn draw(&mut self, lines: &[String]) {
        let mut text = String::from("\x1b[?25l");
        if self.drawn > 0 {
            let _ = write!(text, "\x1b[{}A", self.drawn);
        }
        text.push('\r');
        for line in lines {
            text.push_str(line);
            text.push_str("\x1b[K\n");
        }
        text.push_str("\x1b[J\x1b[?25h");
        write_stderr(&text);
        self.drawn = lines.len();
    }
}

/// The terminal's rows and columns.
fn terminal_size() -> (usize, usize) {
    console::Term::stderr()
        .size_checked()
        .map_or(DEFAULT_SIZE, |(rows, columns)| {
            (usize::from(rows), usize::from(columns))
        })
}

/// Writes to stderr; progress is best effort, so a closed stderr is not an error.
fn write_stderr(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

fn lock(canvas: &Mutex<Canvas>) -> MutexGuard<'_, Canvas> {
    canvas.lock().unwrap_or_else(PoisonError::into_inner)
}
