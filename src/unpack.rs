//! Unpacking the images `pull`, `load` and `import` store, as containerd unpacks on pull: each
//! layer goes into the snapshot a build `FROM` the image starts from (see
//! [`Builder::unpack`]), so that build has no unpacking left to do.
//!
//! The image is named in the store first; unpacking is work done ahead of time, since a build
//! unpacks at `FROM` whatever it finds missing. So an unpack that fails neither fails the command
//! nor loses the image: kiln says so on stderr and exits 0.
//!
//! ```text
//! warning: image app:1 could not be unpacked: <why>; it will be unpacked when a build uses it
//! ```
//!
//! The unpacked layers are build cache, as those a build unpacks: `kiln builder du` lists them
//! and `kiln system df` counts them in its Build Cache row (the Images row counts the compressed
//! blobs only, so that is where the unpacked bytes show); `kiln builder prune` keeps them while a
//! stored image refers to them, and `--all` removes them (a later build unpacks them again).

use std::io::Write;

use kiln_builder::solver::{BuildError, Builder};
use kiln_builder::store::Image;
use tokio::signal::unix::{SignalKind, signal};

/// Unpacks `image`, which `label` names for the user; a failure is a warning on stderr.
///
/// Ctrl-C, SIGTERM and SIGHUP are held off while it runs: a layer being unpacked is mounted, and a
/// process killed then would leave the mount behind. The unpack runs to its end (removing what it
/// mounted), then kiln exits as the signal asked, with 128 + its number.
pub(crate) fn unpack_stored(builder: &Builder, image: &Image, label: &str) {
    let result = match deferring_signals(|| builder.unpack(image)) {
        Ok(result) => result,
        Err(error) => {
            warn(label, &anyhow::Error::from(error));
            return;
        }
    };
    let Err(error) = result else {
        return;
    };
    // The library's error about the image names it too: say the name once.
    let cause = match error {
        BuildError::BaseImage { source, .. } => anyhow::Error::from_boxed(source),
        other => anyhow::Error::from(other),
    };
    warn(label, &cause);
}

fn warn(label: &str, cause: &anyhow::Error) {
    // Nothing better to do if stderr is gone.
    let _ = writeln!(
        std::io::stderr().lock(),
        "warning: image {label} could not be unpacked: {cause:#}; it will be unpacked when a build uses it"
    );
}

/// Runs `work` on another thread with the stopping signals caught; one that came meanwhile ends
/// the process once `work` is done.
fn deferring_signals<T: Send>(work: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let kinds = [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
    ];
    // Caught from here on: tokio's handlers replace the default action (ending the process).
    let mut signals = {
        let _context = runtime.enter();
        kinds.map(signal)
    };
    let (result, caught) = std::thread::scope(|scope| {
        let (done, finished) = tokio::sync::oneshot::channel();
        scope.spawn(move || {
            let _ = done.send(work());
        });
        runtime.block_on(async {
            let mut caught = None;
            let mut finished = std::pin::pin!(finished);
            loop {
                let [int, term, hup] = &mut signals;
                tokio::select! {
                    result = &mut finished => return (result, caught),
                    Some(()) = recv(int) => caught = caught.or(Some(SignalKind::interrupt())),
                    Some(()) = recv(term) => caught = caught.or(Some(SignalKind::terminate())),
                    Some(()) = recv(hup) => caught = caught.or(Some(SignalKind::hangup())),
                }
            }
        })
    });
    if let Some(kind) = caught {
        std::process::exit(128 + kind.as_raw_value());
    }
    // The worker always sends unless it panicked, which the scope already re-raised.
    Ok(result.expect("the unpack thread finished"))
}

/// The next delivery of a signal whose handler installed; never, if it could not be.
async fn recv(signal: &mut std::io::Result<tokio::signal::unix::Signal>) -> Option<()> {
    match signal {
        Ok(signal) => signal.recv().await,
        Err(_) => std::future::pending().await,
    }
}
