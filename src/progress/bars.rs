//! Live progress bars on a terminal (indicatif): one line per item, redrawn in place.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Status;

/// A line per key, in the order keys first appear, drawn on stderr.
pub(crate) struct Bars {
    multi: MultiProgress,
    lines: HashMap<String, ProgressBar>,
    /// Keys in the order their lines appeared.
    order: Vec<String>,
    /// Whether the lines are on stderr (and so rewritten plain at the end).
    on_stderr: bool,
    text: ProgressStyle,
    moving: ProgressStyle,
}

impl Bars {
    pub(super) fn new(color: bool) -> Bars {
        Bars::with_target(ProgressDrawTarget::stderr(), color, true)
    }

    fn with_target(target: ProgressDrawTarget, color: bool, on_stderr: bool) -> Bars {
        // Docker's look: `a3ed95caeb02: Downloading [=====>    ]  12.3MB/45.6MB`, decimal units,
        // with a bar short enough (30) for the whole line to fit 80 columns.
        let bar = if color { "{bar:30.cyan/blue}" } else { "{bar:30}" };
        let moving = format!("{{prefix}}: {{msg:<11}} [{bar}] {{decimal_bytes:>9}}/{{decimal_total_bytes}}");
        Bars {
            multi: MultiProgress::with_draw_target(target),
            lines: HashMap::new(),
            order: Vec::new(),
            on_stderr,
            text: ProgressStyle::with_template("{prefix}: {msg}").expect("a valid template"),
            moving: ProgressStyle::with_template(&moving)
                .expect("a valid template")
                .progress_chars("=> "),
        }
    }

    pub(super) fn show(&mut self, key: &str, status: Status<'_>) {
        let bar = self.lines.entry(key.to_owned()).or_insert_with(|| {
            self.order.push(key.to_owned());
            let bar = ProgressBar::no_length()
                .with_style(self.text.clone())
                .with_prefix(key.to_owned());
            self.multi.add(bar)
        });
        if bar.is_finished() {
            return;
        }
        match status {
            Status::Waiting(text) | Status::Note(text) => bar.set_message(text.to_owned()),
            Status::Moving { text, done, total } => {
                bar.set_message(text.to_owned());
                if bar.length() != Some(total) {
                    bar.set_style(self.moving.clone());
                    bar.set_length(total);
                }
                bar.set_position(done);
            }
            Status::Settled(text) => {
                bar.set_style(self.text.clone());
                bar.finish_with_message(text.to_owned());
            }
        }
    }

    pub(super) fn message(&mut self, text: &str) {
        let _ = self.multi.println(text);
    }

    #[cfg(test)]
    fn snapshot(&self) -> Vec<(String, String, Option<u64>, bool)> {
        let mut lines: Vec<_> = self
            .lines
            .iter()
            .map(|(key, bar)| (key.clone(), bar.message(), bar.length(), bar.is_finished()))
            .collect();
        lines.sort();
        lines
    }
}

impl Drop for Bars {
    /// Replaces the live lines with plain ones, each line's last words (no bar), so the screen
    /// ends as a log would and what prints next starts on a line of its own. Lines still moving
    /// (the command failed) keep their last words too, and the error prints below them.
    fn drop(&mut self) {
        let _ = self.multi.clear();
        // Hidden first: dropping an unfinished bar would draw it once more.
        self.multi.set_draw_target(ProgressDrawTarget::hidden());
        if !self.on_stderr || self.order.is_empty() {
            return;
        }
        let mut text = String::new();
        for key in &self.order {
            let _ = writeln!(text, "{key}: {}", self.lines[key].message());
        }
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_moves_then_settles_and_no_longer_changes() {
        let mut bars = Bars::with_target(ProgressDrawTarget::hidden(), false, false);
        bars.show("aaaaaaaaaaaa", Status::Waiting("Pulling fs layer"));
        bars.show(
            "bbbbbbbbbbbb",
            Status::Moving {
                text: "Downloading",
                done: 5,
                total: 10,
            },
        );
        assert_eq!(
            bars.snapshot(),
            vec![
                ("aaaaaaaaaaaa".into(), "Pulling fs layer".into(), None, false),
                ("bbbbbbbbbbbb".into(), "Downloading".into(), Some(10), false),
            ]
        );
        bars.show("bbbbbbbbbbbb", Status::Settled("Pull complete"));
        bars.show("bbbbbbbbbbbb", Status::Note("Retrying (attempt 1)"));
        assert_eq!(
            bars.snapshot()[1],
            ("bbbbbbbbbbbb".into(), "Pull complete".into(), Some(10), true)
        );
    }
}
