//! Pulling: resolve, then fetch every blob into the content store, verified, in parallel.

use std::error::Error;
use std::io::{self, Write};

use futures_util::StreamExt as _;
use reqwest::header::{CONTENT_RANGE, HeaderMap, HeaderValue, RANGE};
use reqwest::{Method, Response, StatusCode};

use super::client::{Body, Call};
use super::manifest::Descriptor;
use super::resolve::{Resolved, pull_scope};
use super::{Client, Event, Platform, RegistryError, Reporter};
use crate::content::{ContentError, ContentStore, Digest, Ingest};
use crate::reference::ImageRef;

/// Keeps blobs from the garbage collector while a pull writes them.
///
/// The pull calls [`retain`](Retain::retain) for every blob *before* it commits it to the
/// content store (or finds it already there), as the image store's GC protocol asks of writers;
/// an image store lease is the usual implementation.
pub trait Retain: Send + Sync {
    /// Protects `digest` from garbage collection.
    fn retain(&self, digest: &Digest) -> Result<(), Box<dyn Error + Send + Sync>>;
}

/// A [`Retain`] that protects nothing: for content stores no collector runs on.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRetain;

impl Retain for NoRetain {
    fn retain(&self, _digest: &Digest) -> Result<(), Box<dyn Error + Send + Sync>> {
        Ok(())
    }
}

/// A failure while streaming a body: a dropped connection is worth resuming, the rest is not.
enum StreamError {
    Network(reqwest::Error),
    Fatal(RegistryError),
}

impl Client {
    /// Pulls `reference` for `platform` into `content`: the target (index or manifest), the
    /// platform's manifest, its config and layers.
    ///
    /// Every blob is written through an [`Ingest`] that checks its size and digest, so nothing
    /// unverified is ever stored; blobs already in the store are not fetched. Layers download
    /// in parallel (see [`ClientBuilder::concurrency`](super::ClientBuilder::concurrency)),
    /// streamed to disk. A dropped download resumes with a `Range` request where the registry
    /// allows it, else restarts. Naming the image is the caller's business (the image store's
    /// `put_image` with [`Resolved::target_bytes`]).
    pub async fn pull(
        &self,
        reference: &ImageRef,
        platform: &Platform,
        content: &ContentStore,
        retain: &dyn Retain,
        reporter: &dyn Reporter,
    ) -> Result<Resolved, RegistryError> {
        let resolved = self.resolve(reference, platform, reporter).await?;
        let blobs: Vec<&Descriptor> = std::iter::once(&resolved.config)
            .chain(&resolved.layers)
            .collect();
        // On the first failure no new blob starts, but the ones in flight run to their end: a
        // dropped download would leave its ingest to a blocking thread still committing, and the
        // caller must see no half-written state once this returns.
        let failed = std::sync::atomic::AtomicBool::new(false);
        let results: Vec<Result<(), RegistryError>> = futures_util::stream::iter(blobs)
            .map(|blob| async {
                if failed.load(std::sync::atomic::Ordering::Relaxed) {
                    return Ok(());
                }
                let result = self.fetch_blob(reference, blob, content, retain, reporter).await;
                if result.is_err() {
                    failed.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                result
            })
            .buffer_unordered(self.inner.settings.concurrency)
            .collect()
            .await;
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        // Documents last: whoever finds the manifest stored may assume its blobs are.
        if resolved.manifest.digest != resolved.target.digest {
            store_bytes(
                content,
                retain,
                &resolved.manifest.digest,
                &resolved.manifest_bytes,
            )?;
        }
        store_bytes(content, retain, &resolved.target.digest, &resolved.target_bytes)?;
        Ok(resolved)
    }

    /// Downloads one blob into the store unless it is there already.
    async fn fetch_blob(
        &self,
        reference: &ImageRef,
        blob: &Descriptor,
        content: &ContentStore,
        retain: &dyn Retain,
        reporter: &dyn Reporter,
    ) -> Result<(), RegistryError> {
        let digest = &blob.digest;
        protect(retain, digest)?;
        if content.exists(digest)? {
            reporter.report(Event::BlobExists { digest });
            return Ok(());
        }
        reporter.report(Event::BlobStart {
            digest,
            size: blob.size,
        });
        let ingest = self.download(reference, blob, content, reporter).await?;
        // Commit fsyncs and renames: off the async threads.
        tokio::task::spawn_blocking(move || ingest.commit())
            .await
            .map_err(|_| RegistryError::TaskLost)??;
        reporter.report(Event::BlobDone { digest });
        Ok(())
    }

    /// Streams a blob into a new ingest, resuming (or restarting) when the connection drops.
    async fn download(
        &self,
        reference: &ImageRef,
        blob: &Descriptor,
        content: &ContentStore,
        reporter: &dyn Reporter,
    ) -> Result<Ingest, RegistryError> {
        let digest = &blob.digest;
        let scopes = pull_scope(reference);
        let url = self.repository_url(reference.domain(), reference.path(), &format!("blobs/{digest}"));
        let mut ingest = content.ingest(Some((digest.clone(), blob.size)))?;
        let mut failures = 0;
        loop {
            let written = ingest.written();
            let mut headers = HeaderMap::new();
            if written > 0 {
                let range = HeaderValue::try_from(format!("bytes={written}-")).expect("a valid header");
                headers.insert(RANGE, range);
            }
            let call = Call {
                method: Method::GET,
                url: url.clone(),
                host: reference.domain(),
                scopes: &scopes,
                headers,
                body: Body::Empty,
                retry: true,
            };
            let response = self.send(&call).await?;
            match response.status() {
                StatusCode::OK => {
                    if written > 0 {
                        // The registry ignored the range: start over.
                        ingest = content.ingest(Some((digest.clone(), blob.size)))?;
                    }
                }
                StatusCode::PARTIAL_CONTENT if range_start(&response) == Some(written) => {}
                StatusCode::PARTIAL_CONTENT => {
                    ingest = content.ingest(Some((digest.clone(), blob.size)))?;
                    continue;
                }
                _ => return Err(blob_error(&call, reference, digest, response).await),
            }
            match stream_into(response, &mut ingest, blob, reporter).await {
                Ok(()) => return Ok(ingest),
                Err(StreamError::Fatal(error)) => return Err(error),
                Err(StreamError::Network(source)) => {
                    if failures >= self.inner.settings.retries {
                        return Err(Client::transport_error(&call, source));
                    }
                    failures += 1;
                    reporter.report(Event::Retrying {
                        digest: Some(digest),
                        attempt: failures,
                    });
                    tokio::time::sleep(self.inner.settings.retry_delay * 2u32.saturating_pow(failures - 1))
                        .await;
                }
            }
        }
    }
}

/// The error for a blob request that did not answer 200 or 206.
async fn blob_error(
    call: &Call<'_>,
    reference: &ImageRef,
    digest: &Digest,
    response: Response,
) -> RegistryError {
    match response.status() {
        StatusCode::NOT_FOUND => RegistryError::BlobUnknown {
            repository: reference.familiar(),
            digest: digest.clone(),
        },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => RegistryError::PullDenied {
            repository: reference.familiar(),
            source: Client::server_errors(response).await,
        },
        _ => Client::unexpected(call, response).await,
    }
}

/// Writes a response body into the ingest, reporting progress.
async fn stream_into(
    mut response: Response,
    ingest: &mut Ingest,
    blob: &Descriptor,
    reporter: &dyn Reporter,
) -> Result<(), StreamError> {
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => return Ok(()),
            Err(error) => return Err(StreamError::Network(error)),
        };
        // A local write: the disk, not the network, is the bottleneck, and the ingest refuses
        // bytes past the expected size at once.
        ingest
            .write_all(&chunk)
            .map_err(|error| StreamError::Fatal(write_error(error, ingest).into()))?;
        reporter.report(Event::BlobProgress {
            digest: &blob.digest,
            done: ingest.written(),
            total: blob.size,
        });
    }
}

/// The [`ContentError`] an ingest write failed with.
fn write_error(error: io::Error, ingest: &Ingest) -> ContentError {
    if error
        .get_ref()
        .is_some_and(<dyn Error + Send + Sync>::is::<ContentError>)
    {
        if let Some(Ok(inner)) = error
            .into_inner()
            .map(<dyn Error + Send + Sync>::downcast::<ContentError>)
        {
            return *inner;
        }
        unreachable!("the inner error was checked to be a ContentError");
    }
    ContentError::Io {
        op: "write ingest",
        path: ingest.temp_path().to_owned(),
        source: error,
    }
}

/// Where a 206 answer's `Content-Range: bytes START-END/TOTAL` starts.
fn range_start(response: &Response) -> Option<u64> {
    let value = response.headers().get(CONTENT_RANGE)?.to_str().ok()?;
    let range = value.strip_prefix("bytes ")?;
    range.split('-').next()?.trim().parse().ok()
}

fn protect(retain: &dyn Retain, digest: &Digest) -> Result<(), RegistryError> {
    retain.retain(digest).map_err(|source| RegistryError::Retain {
        digest: digest.clone(),
        source,
    })
}

/// Stores manifest bytes already verified against `digest`.
fn store_bytes(
    content: &ContentStore,
    retain: &dyn Retain,
    digest: &Digest,
    bytes: &[u8],
) -> Result<(), RegistryError> {
    protect(retain, digest)?;
    let mut ingest = content.ingest(Some((digest.clone(), bytes.len() as u64)))?;
    ingest
        .write_all(bytes)
        .map_err(|error| RegistryError::Content(write_error(error, &ingest)))?;
    ingest.commit()?;
    Ok(())
}
