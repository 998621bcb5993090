//! What the live view knows of a build: its vertices in the order they started, each with its
//! state, its status lines and the tail of its output, folded from the solver's events.
//!
//! The view holds no clock of its own: every event comes with the instant it arrived, and a frame
//! is drawn for a given "now" (see [`super::frame`]), so tests can replay a build at fixed times.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use kiln_builder::solver::{Event, LogStream, VertexId};

/// How many of its last output lines a vertex keeps (and the frame shows under it).
pub(crate) const TAIL: usize = 6;

/// A build as the live view sees it.
pub(crate) struct View {
    /// When the build began: the header's clock starts here.
    began: Instant,
    vertices: Vec<Vertex>,
    by_id: HashMap<VertexId, usize>,
}

/// One vertex (`[build 2/4] RUN make`).
pub(crate) struct Vertex {
    /// Its name.
    pub(crate) name: String,
    /// When its `Started` event arrived.
    pub(crate) started: Instant,
    /// Where it is in its life.
    pub(crate) state: State,
    /// The build's own status lines for it (`writing image sha256:…`), all of them.
    pub(crate) statuses: Vec<String>,
    /// Its last [`TAIL`] lines of process output, cleaned for a terminal.
    pub(crate) tail: VecDeque<String>,
}

/// Where a vertex is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Started and not finished.
    Running,
    /// A cache hit: it did not run.
    Cached,
    /// Finished after running this long.
    Done(Duration),
    /// Failed after running this long.
    Failed(Duration),
}

impl State {
    /// Whether the vertex has finished, one way or another.
    pub(crate) fn is_settled(self) -> bool {
        self != State::Running
    }
}

impl View {
    /// An empty view of a build that began at `began`.
    pub(crate) fn new(began: Instant) -> View {
        View {
            began,
            vertices: Vec::new(),
            by_id: HashMap::new(),
        }
    }

    /// When the build began.
    pub(crate) fn began(&self) -> Instant {
        self.began
    }

    /// The vertices, in the order they started.
    pub(crate) fn vertices(&self) -> &[Vertex] {
        &self.vertices
    }

    /// How many vertices have finished, and how many have started in all.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let settled = self.vertices.iter().filter(|v| v.state.is_settled()).count();
        (settled, self.vertices.len())
    }

    /// Folds in `event`, which arrived `at`. Events for a vertex that never started are ignored.
    pub(crate) fn apply(&mut self, event: &Event, at: Instant) {
        match event {
            Event::Started { id, name } => {
                self.by_id.insert(*id, self.vertices.len());
                self.vertices.push(Vertex {
                    name: name.replace('\t', " "),
                    started: at,
                    state: State::Running,
                    statuses: Vec::new(),
                    tail: VecDeque::new(),
                });
            }
            Event::Log { id, stream, line, .. } => {
                if let Some(vertex) = self.vertex(*id) {
                    match stream {
                        LogStream::Status => vertex.statuses.push(clean(line)),
                        LogStream::Stdout | LogStream::Stderr => vertex.push_output(line),
                    }
                }
            }
            Event::Cached { id } => self.settle(*id, State::Cached),
            Event::Done { id, elapsed } => self.settle(*id, State::Done(*elapsed)),
            Event::Failed { id, elapsed, .. } => self.settle(*id, State::Failed(*elapsed)),
        }
    }

    fn vertex(&mut self, id: VertexId) -> Option<&mut Vertex> {
        self.by_id.get(&id).map(|&index| &mut self.vertices[index])
    }

    fn settle(&mut self, id: VertexId, state: State) {
        if let Some(vertex) = self.vertex(id) {
            vertex.state = state;
        }
    }
}

impl Vertex {
    /// Keeps `line` as the newest of the tail; blank lines say nothing on a terminal and are skipped.
    fn push_output(&mut self, line: &str) {
        let line = clean(line);
        if line.trim().is_empty() {
            return;
        }
        if self.tail.len() == TAIL {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }
}

/// A line of process output as one terminal line: what a terminal would show after the last
/// carriage return (progress bars redraw with `\r`), without colour codes or other control
/// characters, tabs as spaces. The view draws it itself, so nothing in it may move the cursor.
fn clean(line: &str) -> String {
    let line = line.trim_end_matches('\r');
    let line = line.rsplit('\r').next().unwrap_or(line);
    console::strip_ansi_codes(line)
        .chars()
        .filter_map(|c| match c {
            '\t' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_lines_are_cleaned_for_a_terminal() {
        assert_eq!(clean("plain"), "plain");
        assert_eq!(clean(" 10%\r 50%\r100%\r"), "100%");
        assert_eq!(clean("\x1b[31mred\x1b[0m\tok\x07"), "red ok");
    }

    #[test]
    fn the_tail_keeps_the_last_lines_and_skips_blank_ones() {
        let t0 = Instant::now();
        let mut view = View::new(t0);
        let id = VertexId(1);
        view.apply(
            &Event::Started {
                id,
                name: "[1/2] RUN x".into(),
            },
            t0,
        );
        for n in 1..=8 {
            for line in [format!("line {n}"), "  ".to_owned()] {
                view.apply(
                    &Event::Log {
                        id,
                        stream: LogStream::Stdout,
                        elapsed: Duration::ZERO,
                        line,
                    },
                    t0,
                );
            }
        }
        let tail: Vec<_> = view.vertices()[0].tail.iter().cloned().collect();
        assert_eq!(tail, ["line 3", "line 4", "line 5", "line 6", "line 7", "line 8"]);
        assert_eq!(view.counts(), (0, 1));
    }
}
