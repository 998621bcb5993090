//! A build whose context comes from a stream (`kiln build -`): the stream is read first, as the
//! `[internal] load build context` vertex, since the Dockerfile may be inside it; the walked context
//! then goes to the engine, and its directory lives as long as the build.

use std::path::Path;
use std::sync::Arc;

use super::engine::blocking;
use super::error::BuildError;
use super::progress::{LogStream, Progress};
use super::request::DockerfileInput;
use crate::context::{Context, ContextStream, StreamError, StreamedContext};
use crate::dockerfile::DockerfileText;
use crate::exec::CancelToken;

/// Where unpacked contexts go, under the kiln root: on the same filesystem as the snapshots (a
/// context can be large) and private to kiln.
pub(super) const TMP_DIR: &str = "tmp-v1";

/// A context read from a stream, its Dockerfile, and the context as COPY sees it.
pub(super) struct Loaded {
    /// The unpacked directory; removed when this is dropped (the build ended, failed or was
    /// interrupted).
    pub(super) streamed: StreamedContext,
    /// The Dockerfile: the stream itself, or a file of the context.
    pub(super) text: DockerfileText,
    /// The context, walked with its ignore patterns.
    pub(super) context: Arc<Context>,
}

/// Reads `stream` into a directory below the kiln `root`, finds the Dockerfile `input` names and
/// walks the context, reporting the bytes read as the `[internal] load build context` vertex.
pub(super) async fn load(
    root: &Path,
    stream: &ContextStream,
    input: &DockerfileInput,
    progress: &Progress,
) -> Result<Loaded, BuildError> {
    let vertex = progress.start("[internal] load build context");
    // Let `Builder::build` install its Ctrl-C handler before reading starts: a Ctrl-C from now on
    // must stop the read below (and remove what it unpacked), not end kiln on the spot.
    tokio::task::yield_now().await;
    let cancel = CancelToken::new();
    // Dropping this future (the build was interrupted) stops the read, even one waiting for input.
    let stop = cancel.cancel_on_drop();
    let (stream, parent, input) = (stream.clone(), root.join(TMP_DIR), input.clone());
    let loaded = blocking(move || {
        let fail = |e: StreamError| BuildError::Context(Box::new(e));
        let streamed = StreamedContext::unpack(&stream, &parent, &cancel).map_err(fail)?;
        let text = match input {
            DockerfileInput::Source(source) => streamed.dockerfile(&source).map_err(fail)?,
            DockerfileInput::Text(_) if !streamed.is_archive() => {
                return Err(fail(StreamError::AmbiguousDockerfile {
                    name: stream.name().to_owned(),
                }));
            }
            DockerfileInput::Text(text) => text,
        };
        let ignore = streamed.ignore(&text).map_err(fail)?;
        // No stat cache: its rows are per context directory, and this one is new every build.
        let context = Context::builder(streamed.dir())
            .ignore(ignore)
            .open()
            .map_err(|e| BuildError::Context(Box::new(e)))?;
        Ok(Loaded {
            streamed,
            text,
            context: Arc::new(context),
        })
    })
    .await
    .inspect_err(|e| vertex.failed(&e.to_string()))?;
    stop.disarm();
    // A stream that was the Dockerfile left the context empty (its bytes show as the definition's).
    let bytes = if loaded.streamed.is_archive() {
        loaded.streamed.transferred()
    } else {
        0
    };
    vertex.log(LogStream::Status, format!("transferring context: {bytes}B done"));
    vertex.done();
    Ok(loaded)
}
