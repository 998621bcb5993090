//! A repository as a [`BlobSource`]: blobs read straight from the registry, verified as read.

use std::io::{self, Read};

use reqwest::header::{CONTENT_LENGTH, HeaderMap};
use reqwest::{Method, StatusCode};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use super::client::{Body, Call};
use super::resolve::{header_u64, pull_scope};
use super::{Client, RegistryError};
use crate::content::{BlobInfo, BlobSource, ContentError, Digest, VerifiedReader};
use crate::reference::ImageRef;

/// Chunks buffered between the download task and the reader: bounds memory per open blob.
const CHANNEL_CHUNKS: usize = 16;

/// The blobs of one repository, read over the network: a [`BlobSource`].
///
/// [`BlobSource`] is a blocking interface, so the requests run as tasks on a tokio runtime
/// (the `handle` given) and the bytes come through a bounded channel. Call it from a thread
/// that may block (a plain thread or `spawn_blocking`), never from inside an async task.
/// Reads are verified against the digest and the size the registry announced; a blob the
/// repository does not have is [`ContentError::NotFound`].
#[derive(Debug, Clone)]
pub struct RemoteBlobs {
    client: Client,
    repository: ImageRef,
    handle: Handle,
}

impl RemoteBlobs {
    /// The blobs of `repository` (its tag or digest does not matter), fetched on `handle`.
    pub fn new(client: Client, repository: ImageRef, handle: Handle) -> RemoteBlobs {
        RemoteBlobs {
            client,
            repository,
            handle,
        }
    }

    /// Runs `task` on the runtime and waits for its result from this (blocking) thread.
    fn block<T: Send + 'static>(
        &self,
        task: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, RegistryError> {
        let (tx, rx) = oneshot::channel();
        self.handle.spawn(async move {
            let _ = tx.send(task.await);
        });
        rx.blocking_recv().map_err(|_| RegistryError::TaskLost)
    }

    fn call(&self, method: Method, digest: &Digest) -> (Client, ImageRef, Method, String) {
        (
            self.client.clone(),
            self.repository.clone(),
            method,
            format!("blobs/{digest}"),
        )
    }
}

/// Sends one request for a blob; `Ok(None)` if the repository does not have it.
async fn request(
    client: &Client,
    repository: &ImageRef,
    method: Method,
    rest: &str,
) -> Result<Option<reqwest::Response>, RegistryError> {
    let scopes = pull_scope(repository);
    let call = Call {
        method,
        url: client.repository_url(repository.domain(), repository.path(), rest),
        host: repository.domain(),
        scopes: &scopes,
        headers: HeaderMap::new(),
        body: Body::Empty,
        retry: true,
    };
    let response = client.send(&call).await?;
    match response.status() {
        StatusCode::OK => Ok(Some(response)),
        StatusCode::NOT_FOUND => Ok(None),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(RegistryError::PullDenied {
            repository: repository.familiar(),
            source: Client::server_errors(response).await,
        }),
        _ => Err(Client::unexpected(&call, response).await),
    }
}

fn source_error(digest: &Digest, error: RegistryError) -> ContentError {
    ContentError::Source {
        digest: digest.clone(),
        source: Box::new(error),
    }
}

impl BlobSource for RemoteBlobs {
    fn open(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, ContentError> {
        let (client, repository, method, rest) = self.call(Method::GET, digest);
        let (chunks_tx, chunks_rx) = mpsc::channel(CHANNEL_CHUNKS);
        let head = self
            .block(async move {
                let Some(mut response) = request(&client, &repository, method, &rest).await? else {
                    return Ok(None);
                };
                let size = header_u64(response.headers(), CONTENT_LENGTH.as_str());
                // The body streams on after this task answers; the reader sees its end or error.
                tokio::spawn(async move {
                    loop {
                        let item = match response.chunk().await {
                            Ok(Some(chunk)) => Ok(chunk.to_vec()),
                            Ok(None) => break,
                            Err(error) => Err(io::Error::other(error)),
                        };
                        let failed = item.is_err();
                        if chunks_tx.send(item).await.is_err() || failed {
                            break;
                        }
                    }
                });
                Ok(Some(size))
            })
            .and_then(|result| result)
            .map_err(|error| source_error(digest, error))?;
        let Some(size) = head else {
            return Err(ContentError::NotFound {
                digest: digest.clone(),
            });
        };
        let reader = ChannelReader {
            chunks: chunks_rx,
            current: Vec::new(),
            position: 0,
        };
        Ok(Box::new(VerifiedReader::new(reader, digest.clone(), size)))
    }

    fn stat(&self, digest: &Digest) -> Result<BlobInfo, ContentError> {
        let (client, repository, method, rest) = self.call(Method::HEAD, digest);
        let size = self
            .block(async move {
                let response = request(&client, &repository, method, &rest).await?;
                Ok(response.map(|r| header_u64(r.headers(), CONTENT_LENGTH.as_str())))
            })
            .and_then(|result| result)
            .map_err(|error| source_error(digest, error))?;
        match size {
            None => Err(ContentError::NotFound {
                digest: digest.clone(),
            }),
            Some(size) => Ok(BlobInfo {
                digest: digest.clone(),
                size: size.unwrap_or_default(),
            }),
        }
    }
}

/// Reads the chunks a download task sends, blocking while it waits for the next.
struct ChannelReader {
    chunks: mpsc::Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    position: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.position == self.current.len() {
            match self.chunks.blocking_recv() {
                Some(chunk) => {
                    self.current = chunk?;
                    self.position = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.position);
        buf[..n].copy_from_slice(&self.current[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}
