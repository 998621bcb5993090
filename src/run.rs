//! `kiln run --rm IMAGE [COMMAND] [ARG...]`: try what you built, with the executor `RUN` uses.
//!
//! kiln never keeps containers: every run happens in a throwaway snapshot removed when the process
//! ends, so `--rm` is the only mode (the flag is accepted so `docker run --rm` habits work). The
//! process's stdout and stderr go to kiln's, and kiln exits with its exit code (128 + signal when a
//! signal killed it).
//!
//! Signals are proxied as `docker run` does by default (`--sig-proxy=true`): SIGINT (Ctrl-C),
//! SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to kiln while the process runs are sent on to
//! it, and kiln waits for it to exit, cleans up and exits with its status. As PID 1 of its
//! container the process only sees signals it handles (a shell's `trap`); others do not stop it,
//! as with Docker. Unlike Docker there is no `docker kill` to turn to, so a third Ctrl-C kills the
//! process (exit 137), and kiln still cleans up. A signal that comes before the process started
//! cancels the run instead.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use anyhow::{Context as _, Result};
use kiln_builder::exec::{CancelToken, SignalProxy, WriteSink};
use kiln_builder::solver::{RunError, run_image};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::Global;

/// `kiln run [OPTIONS] IMAGE [COMMAND] [ARG...]`
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Remove the container when it exits (always so: kiln never keeps containers).
    #[arg(long)]
    rm: bool,
    /// The image: a name or an ID.
    image: String,
    /// The command and its arguments [default: the image's ENTRYPOINT and CMD].
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

pub(crate) fn run(args: &Args, global: &Global) -> Result<ExitCode> {
    let mut sink = WriteSink {
        stdout: std::io::stdout(),
        stderr: std::io::stderr(),
    };
    let cancel = CancelToken::new();
    let signals = SignalProxy::new();
    let caught = Arc::new(Caught::default());
    proxy_signals(&signals, &cancel, &caught)?;
    let status = match run_image(
        &global.root(),
        &args.image,
        &args.command,
        &mut sink,
        &cancel,
        &signals,
    ) {
        Ok(status) => status.code(),
        Err(RunError::Cancelled) if caught.forced.load(Ordering::SeqCst) => {
            crate::report(&anyhow::anyhow!(
                "killed the command after {FORCE_AFTER} interrupts"
            ));
            128 + SIGKILL
        }
        // Stopped by a signal before the process ran: exit as a shell does when that signal kills it.
        Err(RunError::Cancelled) => {
            crate::report(&anyhow::anyhow!("interrupted before the command started"));
            128 + caught.last.load(Ordering::SeqCst)
        }
        Err(error) => return Err(error.into()),
    };
    // Exit codes are 0..=255 on Linux; `code()` of a signal is 128 + its number, within that range.
    Ok(ExitCode::from(u8::try_from(status).unwrap_or(u8::MAX)))
}

/// The signals `docker run` proxies that a user sends by hand or from a terminal.
const PROXIED: [SignalKind; 6] = [
    SignalKind::interrupt(),
    SignalKind::terminate(),
    SignalKind::hangup(),
    SignalKind::quit(),
    SignalKind::user_defined1(),
    SignalKind::user_defined2(),
];

/// How many SIGINTs forwarded to a process that ignores them make kiln kill it.
const FORCE_AFTER: u32 = 3;

/// `SIGKILL`'s number, the same on every Linux architecture (the binary does not use libc directly).
const SIGKILL: i32 = 9;

/// What the signal thread saw.
#[derive(Debug, Default)]
struct Caught {
    /// The last signal caught (0 until one is).
    last: AtomicI32,
    /// Whether it cancelled a running process after [`FORCE_AFTER`] SIGINTs.
    forced: AtomicBool,
}

/// Catches the [`PROXIED`] signals from now on (their default action no longer ends kiln) and
/// forwards each to the running process; one that comes while no process runs cancels the run, and
/// so does the [`FORCE_AFTER`]th SIGINT. Records what it did in `caught`.
fn proxy_signals(signals: &SignalProxy, cancel: &CancelToken, caught: &Arc<Caught>) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("starting the signal handler")?;
    // Registered here, before the run starts, so no signal finds its default action in place.
    let streams = {
        let _context = runtime.enter();
        PROXIED
            .iter()
            .map(|kind| signal(*kind).map(|stream| (kind.as_raw_value(), stream)))
            .collect::<std::io::Result<Vec<(i32, Signal)>>>()
            .context("installing signal handlers")?
    };
    let (signals, cancel, caught) = (signals.clone(), cancel.clone(), Arc::clone(caught));
    let interrupt = SignalKind::interrupt().as_raw_value();
    std::thread::Builder::new()
        .name("kiln-signals".into())
        .spawn(move || {
            runtime.block_on(async move {
                let mut streams = streams;
                let mut interrupts = 0;
                loop {
                    let number = next_signal(&mut streams).await;
                    caught.last.store(number, Ordering::SeqCst);
                    if !signals.forward(number) {
                        cancel.cancel();
                    } else if number == interrupt {
                        interrupts += 1;
                        if interrupts == FORCE_AFTER {
                            caught.forced.store(true, Ordering::SeqCst);
                            cancel.cancel();
                        }
                    }
                }
            });
        })
        .context("starting the signal handler")?;
    Ok(())
}

/// The number of the next signal any of `streams` receives.
async fn next_signal(streams: &mut [(i32, Signal)]) -> i32 {
    std::future::poll_fn(|cx| {
        for (number, stream) in streams.iter_mut() {
            if stream.poll_recv(cx).is_ready() {
                return std::task::Poll::Ready(*number);
            }
        }
        std::task::Poll::Pending
    })
    .await
}
