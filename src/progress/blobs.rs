//! The registry client's [`Event`]s as Docker's per-layer lines.
//!
//! A pull or push first announces each manifest ([`Event::Manifest`]): its layers get a line
//! each, in the order Docker lists them (base first for a pull, top first for a push), and its
//! config blob is remembered so its events draw nothing, as Docker shows layers only. Then blob
//! events move and settle the lines.
//!
//! When a pull finds the image's config already stored, the image is already here: Docker then
//! lists no layer at all, only `Status: Image is up to date`, and so does kiln, unless a layer
//! turns out to be missing and really downloads.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use kiln_builder::content::Digest;
use kiln_builder::registry::{Event, Reporter};

use super::{Board, Mode, Status};

/// Which way blobs move, for the words on their lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transfer {
    /// From a registry into the store.
    Pull,
    /// From the store to a registry.
    Push,
}

impl Transfer {
    fn waiting(self) -> &'static str {
        match self {
            Transfer::Pull => "Pulling fs layer",
            Transfer::Push => "Preparing",
        }
    }

    fn moving(self) -> &'static str {
        match self {
            Transfer::Pull => "Downloading",
            Transfer::Push => "Pushing",
        }
    }

    fn complete(self) -> &'static str {
        match self {
            Transfer::Pull => "Pull complete",
            Transfer::Push => "Pushed",
        }
    }

    fn exists(self) -> &'static str {
        match self {
            Transfer::Pull => "Already exists",
            Transfer::Push => "Layer already exists",
        }
    }
}

/// A [`Reporter`] drawing a pull or push on a [`Board`].
pub(crate) struct Blobs<'a> {
    transfer: Transfer,
    state: Mutex<State>,
    stored: Option<Box<Stored<'a>>>,
}

/// Whether a blob is in the local store.
type Stored<'a> = dyn Fn(&Digest) -> bool + Send + Sync + 'a;

struct State {
    board: Board,
    /// Config blobs: not drawn.
    configs: HashSet<Digest>,
    /// The image was already stored: "already exists" lines are not drawn.
    muted: bool,
}

impl<'a> Blobs<'a> {
    /// A reporter for `transfer` drawing in `mode`.
    pub(crate) fn new(transfer: Transfer, mode: Mode) -> Blobs<'a> {
        Blobs::on(transfer, Board::new(mode))
    }

    /// A reporter drawing on `board`.
    pub(crate) fn on(transfer: Transfer, board: Board) -> Blobs<'a> {
        Blobs {
            transfer,
            state: Mutex::new(State {
                board,
                configs: HashSet::new(),
                muted: false,
            }),
            stored: None,
        }
    }

    /// For a pull: `stored` says whether a blob is in the local store already; a manifest whose
    /// config is stored lists no layers unless one downloads.
    #[must_use]
    pub(crate) fn skip_stored(mut self, stored: impl Fn(&Digest) -> bool + Send + Sync + 'a) -> Blobs<'a> {
        self.stored = Some(Box::new(stored));
        self
    }

    fn manifest(&self, state: &mut State, config: &Digest, layers: &[kiln_builder::registry::Descriptor]) {
        state.configs.insert(config.clone());
        if self.stored.as_ref().is_some_and(|stored| stored(config)) {
            state.muted = true;
            return;
        }
        let waiting = Status::Waiting(self.transfer.waiting());
        match self.transfer {
            Transfer::Pull => layers
                .iter()
                .for_each(|l| state.board.show(l.digest.short(), waiting)),
            Transfer::Push => layers
                .iter()
                .rev()
                .for_each(|l| state.board.show(l.digest.short(), waiting)),
        }
    }
}

impl Reporter for Blobs<'_> {
    fn report(&self, event: Event<'_>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let state = &mut *state;
        let words = self.transfer;
        let is_layer = |digest: &Digest| !state.configs.contains(digest);
        match event {
            Event::Manifest { config, layers, .. } => self.manifest(state, config, layers),
            Event::BlobStart { digest, size } if is_layer(digest) => {
                state.muted = false;
                let moving = Status::Moving {
                    text: words.moving(),
                    done: 0,
                    total: size,
                };
                state.board.show(digest.short(), moving);
            }
            Event::BlobProgress { digest, done, total } if is_layer(digest) => {
                let moving = Status::Moving {
                    text: words.moving(),
                    done,
                    total,
                };
                state.board.show(digest.short(), moving);
            }
            Event::BlobDone { digest } if is_layer(digest) => {
                state
                    .board
                    .show(digest.short(), Status::Settled(words.complete()));
            }
            Event::BlobExists { digest } if is_layer(digest) && !state.muted => {
                state.board.show(digest.short(), Status::Settled(words.exists()));
            }
            Event::BlobMounted { digest, from } if is_layer(digest) => {
                state
                    .board
                    .show(digest.short(), Status::Settled(&format!("Mounted from {from}")));
            }
            Event::Retrying {
                digest: Some(digest),
                attempt,
            } if is_layer(digest) => {
                let note = format!("Retrying (attempt {attempt})");
                state.board.show(digest.short(), Status::Note(&note));
            }
            Event::Retrying { attempt, .. } => {
                state.board.message(&format!("Retrying (attempt {attempt})"));
            }
            Event::Resolving { .. }
            | Event::Resolved { .. }
            | Event::ManifestPushed { .. }
            | Event::BlobStart { .. }
            | Event::BlobProgress { .. }
            | Event::BlobDone { .. }
            | Event::BlobExists { .. }
            | Event::BlobMounted { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;

    use kiln_builder::registry::Descriptor;

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

    impl Log {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn digest(seed: &str) -> Digest {
        Digest::of(seed.as_bytes())
    }

    fn layer(digest: &Digest) -> Descriptor {
        Descriptor {
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            digest: digest.clone(),
            size: 10,
            platform: None,
        }
    }

    fn blobs(transfer: Transfer) -> (Blobs<'static>, Log) {
        let log = Log::default();
        (Blobs::on(transfer, Board::lines_to(Box::new(log.clone()))), log)
    }

    #[test]
    fn a_pull_lists_layers_with_docker_words_and_hides_the_config() {
        let (config, base, top) = (digest("config"), digest("base"), digest("top"));
        let (reporter, log) = blobs(Transfer::Pull);
        let layers = [layer(&base), layer(&top)];
        reporter.report(Event::Manifest {
            digest: &digest("manifest"),
            config: &config,
            layers: &layers,
        });
        reporter.report(Event::BlobExists { digest: &base });
        for blob in [&config, &top] {
            reporter.report(Event::BlobStart {
                digest: blob,
                size: 10,
            });
            reporter.report(Event::BlobProgress {
                digest: blob,
                done: 10,
                total: 10,
            });
            reporter.report(Event::BlobDone { digest: blob });
        }
        reporter.report(Event::Retrying {
            digest: None,
            attempt: 1,
        });
        assert_eq!(
            log.text(),
            format!(
                "{}: Already exists\n{}: Pull complete\nRetrying (attempt 1)\n",
                base.short(),
                top.short()
            )
        );
    }

    #[test]
    fn a_stored_image_lists_no_layers_unless_one_downloads() {
        let (config, base, top) = (digest("config"), digest("base"), digest("top"));
        let log = Log::default();
        let stored = config.clone();
        let reporter = Blobs::on(Transfer::Pull, Board::lines_to(Box::new(log.clone())))
            .skip_stored(move |digest| *digest == stored);
        let layers = [layer(&base), layer(&top)];
        reporter.report(Event::Manifest {
            digest: &digest("manifest"),
            config: &config,
            layers: &layers,
        });
        reporter.report(Event::BlobExists { digest: &config });
        reporter.report(Event::BlobExists { digest: &base });
        assert_eq!(log.text(), "", "an image already here lists nothing");
        reporter.report(Event::BlobStart {
            digest: &top,
            size: 10,
        });
        reporter.report(Event::Retrying {
            digest: Some(&top),
            attempt: 2,
        });
        reporter.report(Event::BlobDone { digest: &top });
        assert_eq!(
            log.text(),
            format!("{0}: Retrying (attempt 2)\n{0}: Pull complete\n", top.short())
        );
    }

    #[test]
    fn a_push_says_pushed_exists_and_mounted() {
        let (config, a, b, c) = (digest("config"), digest("a"), digest("b"), digest("c"));
        let (reporter, log) = blobs(Transfer::Push);
        let layers = [layer(&a), layer(&b), layer(&c)];
        reporter.report(Event::Manifest {
            digest: &digest("manifest"),
            config: &config,
            layers: &layers,
        });
        reporter.report(Event::BlobExists { digest: &a });
        reporter.report(Event::BlobMounted {
            digest: &b,
            from: "library/busybox",
        });
        reporter.report(Event::BlobStart { digest: &c, size: 10 });
        reporter.report(Event::BlobDone { digest: &c });
        reporter.report(Event::BlobStart {
            digest: &config,
            size: 10,
        });
        reporter.report(Event::BlobDone { digest: &config });
        assert_eq!(
            log.text(),
            format!(
                "{}: Layer already exists\n{}: Mounted from library/busybox\n{}: Pushed\n",
                a.short(),
                b.short(),
                c.short()
            )
        );
    }
}
