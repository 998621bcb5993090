//! Forwarding signals to a running process, as `docker run`'s signal proxy does.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, PoisonError};

use rustix::event::{EventfdFlags, eventfd};

/// Signals a caller caught, on their way to the process of a run (`docker run`'s `--sig-proxy`).
///
/// The vocabulary: a run is *attached* to the proxy while its process runs (from the moment it is
/// spawned until it has exited); [`forward`](Self::forward) hands a signal to the attached run, which
/// sends it to the step's PID 1 and goes on waiting. What the process does with it is its own
/// business: as PID 1 of its pid namespace it only receives signals it installed a handler for (a
/// shell's `trap`), exactly as in `docker run`. Give the proxy to an executor with
/// [`NamespaceExecutor::with_signal_proxy`](super::NamespaceExecutor::with_signal_proxy).
///
/// A signal forwarded while no run is attached (before the process started, after it exited) is
/// dropped and `forward` says so, so the caller can cancel the run instead (see
/// [`CancelToken`](super::CancelToken)). Clones share the proxy; one run at a time should be attached.
#[derive(Debug, Clone)]
pub struct SignalProxy {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    /// Readable while signals are pending; the attached run polls it with the process's pipes.
    event: OwnedFd,
}

#[derive(Debug, Default)]
struct State {
    attached: bool,
    pending: Vec<i32>,
}

impl SignalProxy {
    /// A proxy with no run attached.
    ///
    /// # Panics
    /// If the process is out of file descriptors (an eventfd cannot be created).
    pub fn new() -> SignalProxy {
        let event = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .expect("creating an eventfd for a SignalProxy");
        SignalProxy {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                event,
            }),
        }
    }

    /// Hands `signal` (a signal number, such as `libc::SIGINT`) to the attached run. Returns `false`
    /// when no run is attached, and the signal goes nowhere. Safe from any thread.
    pub fn forward(&self, signal: i32) -> bool {
        let mut state = self.lock();
        if !state.attached {
            return false;
        }
        state.pending.push(signal);
        // Cannot overflow in practice (one increment per signal); a failed write only delays the
        // signal to the next one.
        let _ = rustix::io::write(&self.inner.event, &1u64.to_ne_bytes());
        true
    }

    /// Attaches the calling run until the guard is dropped.
    pub(super) fn attach(&self) -> Attached<'_> {
        self.lock().attached = true;
        Attached { proxy: self }
    }

    /// Readable while signals are pending.
    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.inner.event.as_fd()
    }

    /// The pending signals, oldest first; the proxy is empty (and its fd not readable) afterwards.
    pub(super) fn take(&self) -> Vec<i32> {
        // Reset the counter first: a signal forwarded in between is taken below, and the count it
        // leaves behind only causes one spurious wake-up.
        let mut count = [0u8; 8];
        let _ = rustix::io::read(&self.inner.event, &mut count);
        std::mem::take(&mut self.lock().pending)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for SignalProxy {
    fn default() -> SignalProxy {
        SignalProxy::new()
    }
}

/// A run attached to a [`SignalProxy`]; detaches it (dropping what was not delivered) on drop.
pub(super) struct Attached<'a> {
    proxy: &'a SignalProxy,
}

impl Drop for Attached<'_> {
    fn drop(&mut self) {
        let mut state = self.proxy.lock();
        state.attached = false;
        state.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::event::{PollFd, PollFlags, Timespec, poll};

    fn readable(proxy: &SignalProxy) -> bool {
        let mut fds = [PollFd::from_borrowed_fd(proxy.fd(), PollFlags::IN)];
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        poll(&mut fds, Some(&zero)).unwrap() == 1
    }

    #[test]
    fn exec_signal_proxy_delivers_only_while_attached() {
        let proxy = SignalProxy::new();
        assert!(!proxy.forward(libc::SIGINT), "nothing attached yet");
        assert!(!readable(&proxy));
        let attached = proxy.attach();
        assert!(proxy.clone().forward(libc::SIGINT));
        assert!(proxy.forward(libc::SIGTERM));
        assert!(readable(&proxy));
        assert_eq!(proxy.take(), [libc::SIGINT, libc::SIGTERM]);
        assert!(!readable(&proxy));
        assert!(proxy.forward(libc::SIGHUP));
        drop(attached);
        assert!(!proxy.forward(libc::SIGINT), "detached");
        let _ = proxy.take();
        assert!(proxy.take().is_empty(), "what was pending at detach is dropped");
    }
}
