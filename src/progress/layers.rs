//! The archive's [`Event`]s as Docker's per-layer lines: `a3ed95caeb02: Loading layer [==>  ]`.
//!
//! A layer gets its line when its bytes start moving (archives are read in one pass, so the
//! layers are not known ahead, unlike a pull's), a bar while they move, and settles when it is
//! written or verified.

use std::sync::{Mutex, PoisonError};

use kiln_builder::archive::{Event, Reporter};

use super::{Board, Mode, Status};

/// Which way layers move, for the words on their lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// From the store into an archive.
    Save,
    /// From an archive into the store.
    Load,
}

impl Direction {
    fn moving(self) -> &'static str {
        match self {
            Direction::Save => "Saving layer",
            Direction::Load => "Loading layer",
        }
    }

    fn complete(self) -> &'static str {
        match self {
            Direction::Save => "Save complete",
            Direction::Load => "Load complete",
        }
    }
}

/// A [`Reporter`] drawing a save or load on a [`Board`].
pub(crate) struct Layers {
    direction: Direction,
    board: Mutex<Board>,
}

impl Layers {
    /// A reporter for `direction` drawing in `mode`.
    pub(crate) fn new(direction: Direction, mode: Mode) -> Layers {
        Layers::on(direction, Board::new(mode))
    }

    /// A reporter drawing on `board`.
    pub(crate) fn on(direction: Direction, board: Board) -> Layers {
        Layers {
            direction,
            board: Mutex::new(board),
        }
    }
}

impl Reporter for Layers {
    fn report(&self, event: Event<'_>) {
        let mut board = self.board.lock().unwrap_or_else(PoisonError::into_inner);
        let text = self.direction.moving();
        match event {
            Event::LayerStart { id, size } => board.show(
                id,
                Status::Moving {
                    text,
                    done: 0,
                    total: size,
                },
            ),
            Event::LayerProgress { id, done, total } => {
                board.show(id, Status::Moving { text, done, total });
            }
            Event::LayerDone { id } => board.show(id, Status::Settled(self.direction.complete())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;

    use super::*;

    /// A writer tests read back.
    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<u8>>>);

    impl Write for Log {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn plain_lines_say_when_each_layer_is_done() {
        let log = Log::default();
        let layers = Layers::on(Direction::Load, Board::lines_to(Box::new(log.clone())));
        for id in ["aaaaaaaaaaaa", "bbbbbbbbbbbb"] {
            layers.report(Event::LayerStart { id, size: 10 });
            layers.report(Event::LayerProgress {
                id,
                done: 10,
                total: 10,
            });
        }
        layers.report(Event::LayerDone { id: "bbbbbbbbbbbb" });
        let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text, "bbbbbbbbbbbb: Load complete\n");
    }
}
