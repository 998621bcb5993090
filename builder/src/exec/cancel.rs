//! Cancelling running steps from another thread.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::event::{EventfdFlags, eventfd};

/// A shared "stop now" flag for one or more running steps.
///
/// Clones share the flag: cancel one and every [`Executor::run`](super::Executor::run) given any clone
/// kills its step (every process in it) and returns [`ExecError::Cancelled`](super::ExecError::Cancelled).
/// A token stays cancelled. The flag is an eventfd, so a run waits for output, exit and cancellation in
/// one `poll` without a helper thread.
#[derive(Debug, Clone)]
pub struct CancelToken {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cancelled: AtomicBool,
    /// Readable once cancelled; never read, so it stays readable for every waiter.
    event: OwnedFd,
}

impl CancelToken {
    /// A token that is not cancelled.
    ///
    /// # Panics
    /// If the process is out of file descriptors (an eventfd cannot be created).
    pub fn new() -> Self {
        let event = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .expect("creating an eventfd for a CancelToken");
        Self {
            inner: Arc::new(Inner {
                cancelled: AtomicBool::new(false),
                event,
            }),
        }
    }

    /// Cancels every run using this token (or a clone). Idempotent; safe from any thread.
    pub fn cancel(&self) {
        if !self.inner.cancelled.swap(true, Ordering::SeqCst) {
            // The counter cannot overflow: it is written once. A failed write leaves the flag set, which
            // runs check before they start; a running step would then only stop at its own exit.
            let _ = rustix::io::write(&self.inner.event, &1u64.to_ne_bytes());
        }
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// A guard that cancels this token when dropped: hold it in the future (or scope) that owns the
    /// build, so dropping the build kills its running steps.
    pub fn cancel_on_drop(&self) -> CancelOnDrop {
        CancelOnDrop {
            token: Some(self.clone()),
        }
    }

    /// Readable once cancelled (also polled by readers of a build context stream).
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.inner.event.as_fd()
    }
}

impl Default for CancelToken {
    fn default() -> Self {
        Self::new()
    }
}

/// Cancels its [`CancelToken`] when dropped, unless [`disarm`](Self::disarm)ed.
#[derive(Debug)]
#[must_use = "dropping the guard cancels the token at once"]
pub struct CancelOnDrop {
    token: Option<CancelToken>,
}

impl CancelOnDrop {
    /// Drops the guard without cancelling.
    pub fn disarm(mut self) {
        self.token = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(token) = self.token.take() {
            token.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::event::{PollFd, PollFlags, Timespec, poll};

    fn readable(token: &CancelToken) -> bool {
        let mut fds = [PollFd::new(&token.inner.event, PollFlags::IN)];
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        poll(&mut fds, Some(&zero)).unwrap() == 1
    }

    #[test]
    fn exec_cancel_token_is_shared_and_sticky() {
        let token = CancelToken::new();
        let clone = token.clone();
        assert!(!clone.is_cancelled() && !readable(&clone));
        token.cancel();
        token.cancel();
        assert!(clone.is_cancelled() && readable(&clone) && readable(&clone));
    }

    #[test]
    fn exec_cancel_on_drop_cancels_unless_disarmed() {
        let token = CancelToken::new();
        token.cancel_on_drop().disarm();
        assert!(!token.is_cancelled());
        drop(token.cancel_on_drop());
        assert!(token.is_cancelled());
    }
}
