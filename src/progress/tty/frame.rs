//! One frame of the live view as lines of text, in BuildKit's TTY layout:
//!
//! ```text
//! [+] Building 3.4s (5/7)
//!  => [internal] load build definition from Dockerfile            0.0s
//!  => => transferring dockerfile: 74B done
//!  => CACHED [1/3] FROM docker.io/library/busybox:latest          0.0s
//!  => [2/3] RUN make                                              1.2s
//!  => => # cc -c main.c
//! ```
//!
//! A header with the time since the build began and how many of the vertices seen so far have
//! finished; then a row per vertex with its time on the right (`CACHED`, `ERROR` or `CANCELED`
//! before the name when it applies), its status lines, and under a running or failed vertex its last
//! output lines (`=> => #`, dimmed). A live frame fits the terminal's height: running vertices and
//! their output come first, and the oldest finished vertices give way. The last frame, drawn once
//! the build is over, lists everything; a vertex still running then was cancelled by the build's end.
//!
//! Rendering is a pure function of the [`View`], a "now" and a [`Layout`], so a test replays a
//! build at fixed instants and reads the lines.

use std::time::{Duration, Instant};

use super::view::{State, Vertex, View};

/// The shape of the screen a frame is drawn for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    /// Terminal columns. Lines are kept one column shorter, so the terminal never wraps them and
    /// the cursor always ends where the frame thinks.
    pub(crate) width: usize,
    /// Whether rows may be coloured (ANSI SGR codes).
    pub(crate) color: bool,
}

/// The narrowest width drawn: below it, names would be cut to nothing.
const MIN_WIDTH: usize = 40;

const BLUE: &str = "34";
const RED: &str = "31";
const YELLOW: &str = "33";
const FAINT: &str = "2";

/// A frame while the build runs, at most `height - 1` lines (the cursor's line stays free, so
/// drawing never scrolls the terminal).
pub(crate) fn live(view: &View, now: Instant, layout: Layout, height: usize) -> Vec<String> {
    let mut lines = vec![header(view, now, layout, false)];
    let blocks = blocks(view, now, layout, false);
    lines.extend(fit(blocks, height.saturating_sub(2)));
    lines
}

/// The frame left on screen once the build is over: every vertex, however many.
pub(crate) fn last(view: &View, now: Instant, layout: Layout) -> Vec<String> {
    let mut lines = vec![header(view, now, layout, true)];
    for block in blocks(view, now, layout, true) {
        lines.extend(block.rows);
        lines.extend(block.tail);
    }
    lines
}

/// `[+] Building 3.4s (5/7)`, with `FINISHED` at the end of a build whose vertices all finished and
/// none failed. The total is the vertices started so far: kiln does not announce the rest ahead,
/// as BuildKit does, so after a failure the counts can match and only the failure says it was not
/// finished.
fn header(view: &View, now: Instant, layout: Layout, last: bool) -> String {
    let (settled, total) = view.counts();
    let seconds = now.saturating_duration_since(view.began()).as_secs_f64();
    let mut line = format!("[+] Building {seconds:.1}s ({settled}/{total})");
    let failed = view
        .vertices()
        .iter()
        .any(|v| matches!(v.state, State::Failed(_)));
    if last && total > 0 && settled == total && !failed {
        line.push_str(" FINISHED");
    }
    truncate(&line, columns(layout))
}

/// The lines of one vertex.
struct Block {
    /// Its row and its status rows: always shown together.
    rows: Vec<String>,
    /// Its output tail, shown when there is room.
    tail: Vec<String>,
    /// Whether it has finished (and so may give way on a full screen).
    settled: bool,
}

fn blocks(view: &View, now: Instant, layout: Layout, last: bool) -> Vec<Block> {
    view.vertices()
        .iter()
        .map(|vertex| block(vertex, now, layout, last))
        .collect()
}

fn block(vertex: &Vertex, now: Instant, layout: Layout, last: bool) -> Block {
    let ran = now.saturating_duration_since(vertex.started);
    let (label, time, colour) = match vertex.state {
        State::Running if last => ("CANCELED ", ran, Some(YELLOW)),
        State::Running => ("", ran, None),
        State::Cached => ("CACHED ", Duration::ZERO, Some(BLUE)),
        State::Done(elapsed) => ("", elapsed, Some(BLUE)),
        State::Failed(elapsed) => ("ERROR ", elapsed, Some(RED)),
    };
    let tint = |line: String| match colour {
        Some(code) => paint(&line, code, layout.color),
        None => line,
    };
    let width = columns(layout);
    let mut rows = vec![tint(align(
        &format!(" => {label}{}", vertex.name),
        &timer(time),
        width,
    ))];
    rows.extend(
        vertex
            .statuses
            .iter()
            .map(|status| tint(truncate(&format!(" => => {status}"), width))),
    );
    let show_tail = match vertex.state {
        State::Running => !last,
        State::Failed(_) => true,
        State::Cached | State::Done(_) => false,
    };
    let tail = if show_tail {
        vertex
            .tail
            .iter()
            .map(|line| paint(&truncate(&format!(" => => # {line}"), width), FAINT, layout.color))
            .collect()
    } else {
        Vec::new()
    };
    Block {
        rows,
        tail,
        settled: vertex.state.is_settled(),
    }
}

/// At most `budget` lines from `blocks`, as BuildKit fills a screen: the rows of unfinished vertices
/// first, then their output tails (newest vertex first) while they fit whole, then finished
/// vertices, newest first, in the room left: the older ones have scrolled off the top. Order on screen stays the order vertices started. If
/// unfinished rows alone overflow, the newest lines win.
fn fit(blocks: Vec<Block>, budget: usize) -> Vec<String> {
    let mut used: usize = blocks.iter().filter(|b| !b.settled).map(|b| b.rows.len()).sum();
    let mut show_tail = vec![false; blocks.len()];
    for (index, block) in blocks.iter().enumerate().rev() {
        if !block.tail.is_empty() && used + block.tail.len() <= budget {
            show_tail[index] = true;
            used += block.tail.len();
        }
    }
    let mut show = vec![true; blocks.len()];
    let mut full = false;
    for (index, block) in blocks.iter().enumerate().rev().filter(|(_, b)| b.settled) {
        let size = block.rows.len() + if show_tail[index] { block.tail.len() } else { 0 };
        // Once one has scrolled off, every older one has too.
        full = full || used + size > budget;
        if full {
            show[index] = false;
        } else {
            used += size;
        }
    }
    let mut lines = Vec::new();
    for (index, block) in blocks.into_iter().enumerate() {
        if !show[index] {
            continue;
        }
        lines.extend(block.rows);
        if show_tail[index] {
            lines.extend(block.tail);
        }
    }
    let excess = lines.len().saturating_sub(budget);
    lines.split_off(excess)
}

/// The columns a line may use.
fn columns(layout: Layout) -> usize {
    layout.width.max(MIN_WIDTH) - 1
}

/// `1.2s`; under 0.05s reads `0.0s`.
fn timer(time: Duration) -> String {
    format!("{:.1}s", time.as_secs_f64())
}

/// `left` and `right` on one line of `width` columns, `right` against the right edge and `left`
/// cut to make room.
fn align(left: &str, right: &str, width: usize) -> String {
    let room = width.saturating_sub(right.chars().count() + 1);
    let left = truncate(left, room);
    let pad = room - left.chars().count();
    format!("{left}{:pad$} {right}", "")
}

/// `text` cut to `width` characters.
fn truncate(text: &str, width: usize) -> String {
    text.chars().take(width).collect()
}

/// `text` in the colour `code`, when colour is allowed.
fn paint(text: &str, code: &str, color: bool) -> String {
    if color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use kiln_builder::solver::{Event, LogStream, VertexId};

    use super::*;

    const NARROW: Layout = Layout {
        width: 60,
        color: false,
    };

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    fn started(id: u32, name: &str) -> Event {
        Event::Started {
            id: VertexId(id),
            name: name.into(),
        }
    }

    fn log(id: u32, stream: LogStream, line: &str) -> Event {
        Event::Log {
            id: VertexId(id),
            stream,
            elapsed: Duration::ZERO,
            line: line.into(),
        }
    }

    fn done(id: u32, ms: u64) -> Event {
        Event::Done {
            id: VertexId(id),
            elapsed: Duration::from_millis(ms),
        }
    }

    /// A build replayed at fixed instants: the Dockerfile loads, FROM is cached, a RUN prints
    /// seven lines and is still running at 3.4s.
    fn running_build(t0: Instant) -> View {
        let mut view = View::new(t0);
        let events = [
            (0, started(1, "[internal] load build definition from Dockerfile")),
            (10, log(1, LogStream::Status, "transferring dockerfile: 74B done")),
            (20, done(1, 20)),
            (30, started(2, "[1/2] FROM docker.io/library/busybox:latest")),
            (40, Event::Cached { id: VertexId(2) }),
            (
                1000,
                started(3, "[2/2] RUN for i in 1 2 3 4 5 6 7; do echo line $i; done"),
            ),
        ];
        for (ms, event) in &events {
            view.apply(event, at(t0, *ms));
        }
        for n in 1..=7 {
            view.apply(&log(3, LogStream::Stdout, &format!("line {n}")), at(t0, 1100));
        }
        view
    }

    #[test]
    fn a_live_frame_shows_finished_cached_and_running_vertices_with_the_output_tail() {
        let t0 = Instant::now();
        let view = running_build(t0);
        assert_eq!(
            live(&view, at(t0, 3400), NARROW, 40),
            [
                "[+] Building 3.4s (2/3)",
                " => [internal] load build definition from Dockerfile   0.0s",
                " => => transferring dockerfile: 74B done",
                " => CACHED [1/2] FROM docker.io/library/busybox:latest 0.0s",
                " => [2/2] RUN for i in 1 2 3 4 5 6 7; do echo line $i; 2.4s",
                " => => # line 2",
                " => => # line 3",
                " => => # line 4",
                " => => # line 5",
                " => => # line 6",
                " => => # line 7",
            ]
        );
    }

    #[test]
    fn a_short_screen_drops_the_oldest_finished_vertices_first() {
        let t0 = Instant::now();
        let view = running_build(t0);
        // 10 rows: a header, 8 lines, the cursor's line. The running step and its tail take 7, the
        // newest finished vertex the last one.
        let frame = live(&view, at(t0, 3400), NARROW, 10);
        assert_eq!(frame.len(), 9, "{frame:#?}");
        assert_eq!(
            frame[1],
            " => CACHED [1/2] FROM docker.io/library/busybox:latest 0.0s"
        );
        assert!(frame[2].starts_with(" => [2/2] RUN"), "{frame:#?}");
        // Too short for the tail: the running step, and the newest finished vertex that fits.
        let frame = live(&view, at(t0, 3400), NARROW, 5);
        assert_eq!(
            frame,
            [
                "[+] Building 3.4s (2/3)",
                " => CACHED [1/2] FROM docker.io/library/busybox:latest 0.0s",
                " => [2/2] RUN for i in 1 2 3 4 5 6 7; do echo line $i; 2.4s",
            ]
        );
        // Narrower than the running rows: the newest lines.
        let frame = live(&view, at(t0, 3400), NARROW, 2);
        assert_eq!(frame, ["[+] Building 3.4s (2/3)"]);
    }

    #[test]
    fn the_last_frame_lists_everything_and_says_finished() {
        let t0 = Instant::now();
        let mut view = running_build(t0);
        view.apply(&done(3, 2500), at(t0, 3500));
        view.apply(&started(4, "exporting to image"), at(t0, 3500));
        view.apply(
            &log(4, LogStream::Status, "naming to docker.io/library/x:1 done"),
            at(t0, 3550),
        );
        view.apply(&done(4, 100), at(t0, 3600));
        assert_eq!(
            last(&view, at(t0, 3600), NARROW),
            [
                "[+] Building 3.6s (4/4) FINISHED",
                " => [internal] load build definition from Dockerfile   0.0s",
                " => => transferring dockerfile: 74B done",
                " => CACHED [1/2] FROM docker.io/library/busybox:latest 0.0s",
                " => [2/2] RUN for i in 1 2 3 4 5 6 7; do echo line $i; 2.5s",
                " => exporting to image                                 0.1s",
                " => => naming to docker.io/library/x:1 done",
            ]
        );
    }

    #[test]
    fn a_failed_vertex_shows_error_and_its_output_and_the_others_were_cancelled() {
        let t0 = Instant::now();
        let mut view = running_build(t0);
        view.apply(&started(4, "[other 1/1] RUN sleep 10"), at(t0, 1200));
        view.apply(
            &Event::Failed {
                id: VertexId(3),
                elapsed: Duration::from_millis(1300),
                error: "exit code: 1".into(),
            },
            at(t0, 2300),
        );
        let frame = last(&view, at(t0, 2300), NARROW);
        assert_eq!(frame[0], "[+] Building 2.3s (3/4)");
        assert_eq!(
            frame[4],
            " => ERROR [2/2] RUN for i in 1 2 3 4 5 6 7; do echo li 1.3s"
        );
        assert_eq!(frame[5], " => => # line 2");
        assert_eq!(frame[10], " => => # line 7");
        assert_eq!(
            frame[11],
            " => CANCELED [other 1/1] RUN sleep 10                  1.1s"
        );
        assert_eq!(frame.len(), 12, "{frame:#?}");
    }

    #[test]
    fn colour_marks_finished_failed_and_output_lines() {
        let t0 = Instant::now();
        let mut view = running_build(t0);
        view.apply(
            &Event::Failed {
                id: VertexId(3),
                elapsed: Duration::from_millis(1300),
                error: "exit code: 1".into(),
            },
            at(t0, 2300),
        );
        let layout = Layout {
            color: true,
            ..NARROW
        };
        let frame = last(&view, at(t0, 2300), layout);
        assert!(frame[0].starts_with("[+] Building"), "the header is not coloured");
        assert!(frame[1].starts_with("\x1b[34m => [internal]"), "{:?}", frame[1]);
        assert!(frame[4].starts_with("\x1b[31m => ERROR"), "{:?}", frame[4]);
        assert_eq!(frame[5], "\x1b[2m => => # line 2\x1b[0m");
    }
}
