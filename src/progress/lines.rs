//! Plain progress lines for logs: a line when an item settles or notes a retry, nothing else.

use std::io::Write;

use super::Status;

/// Prints `<key>: <text>` lines to a writer (stderr), each once, whole.
pub(crate) struct Lines {
    out: Box<dyn Write + Send>,
}

impl Lines {
    pub(super) fn new(out: Box<dyn Write + Send>) -> Lines {
        Lines { out }
    }

    pub(super) fn show(&mut self, key: &str, status: Status<'_>) {
        match status {
            // A log wants outcomes: a line per waiting item, or per chunk, would be noise.
            Status::Waiting(_) | Status::Moving { .. } => {}
            Status::Settled(text) | Status::Note(text) => self.print(&format!("{key}: {text}")),
        }
    }

    pub(super) fn message(&mut self, text: &str) {
        self.print(text);
    }

    /// Writes one line; progress is best effort, so a closed stderr is not an error.
    fn print(&mut self, line: &str) {
        let _ = writeln!(self.out, "{line}");
        let _ = self.out.flush();
    }
}
