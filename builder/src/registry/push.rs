//! Pushing: blobs first (exists check, cross-repository mount, upload), then manifests.

use std::io::{Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

use futures_util::{StreamExt as _, TryStreamExt as _};
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION};
use reqwest::{Method, Response, StatusCode, Url};
use tokio::io::AsyncReadExt as _;
use tokio::sync::watch;

use super::client::{Body, Call};
use super::manifest::{self, Descriptor, Document, ManifestKind};
use super::{Client, Event, RegistryError, Reporter};
use crate::content::{BlobSource as _, ContentError, ContentStore, Digest};
use crate::reference::ImageRef;

/// What a push put in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The destination, as pushed.
    pub reference: ImageRef,
    /// The digest of the manifest or index the tag now names.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// One push: where to, with which scopes, mounting from where.
struct Destination<'a> {
    reference: &'a ImageRef,
    scopes: Vec<String>,
    mount_from: Option<&'a str>,
}

/// How a blob got into the registry.
enum Upload {
    Mounted,
    Uploaded,
}

impl Client {
    /// Pushes the image `target` names (a manifest or an index, stored in `content`) to
    /// `destination`, under its tag (or digest).
    ///
    /// For each blob: `HEAD` to skip what the repository has; else, when `mount_from` names
    /// another repository of the same registry holding the image, a cross-repository mount
    /// (`POST …/uploads/?mount=<digest>&from=<repository>`); else an upload streamed from the
    /// content store, in one `PUT`, or in `PATCH` chunks for blobs over the chunk size. An index's
    /// manifests are pushed by digest before the index. Uploads that fail on the network or
    /// with a 5xx restart from the beginning, up to the retry limit.
    pub async fn push(
        &self,
        content: &ContentStore,
        target: &Descriptor,
        destination: &ImageRef,
        mount_from: Option<&str>,
        reporter: &dyn Reporter,
    ) -> Result<Pushed, RegistryError> {
        let mount_from = mount_from.filter(|from| *from != destination.path());
        let mut scopes = vec![format!("repository:{}:pull,push", destination.path())];
        if let Some(from) = mount_from {
            scopes.push(format!("repository:{from}:pull"));
        }
        let to = Destination {
            reference: destination,
            scopes,
            mount_from,
        };
        // The blobs go up in parallel: learn the registry's challenge (and get the token) once,
        // first, rather than in each of the first parallel requests.
        let ping = self
            .base_url(destination.domain())
            .join("v2/")
            .expect("a valid path");
        self.send(&Client::call(&to, Method::GET, ping, Body::Empty, true))
            .await?;
        let bytes = content.read(&target.digest)?;
        let (media_type, document) = manifest::parse(target.digest.as_str(), &target.media_type, &bytes)?;
        if let Document::Index { manifests } = &document {
            for child in manifests {
                if manifest::kind_of(&child.media_type) != Some(ManifestKind::Manifest) {
                    continue;
                }
                let child_bytes = content.read(&child.digest)?;
                let (_, child_document) =
                    manifest::parse(child.digest.as_str(), &child.media_type, &child_bytes)?;
                self.push_blobs(content, &to, &child.digest, &child_document, reporter)
                    .await?;
                self.put_manifest(
                    &to,
                    child.digest.as_str(),
                    &child.media_type,
                    &child_bytes,
                    reporter,
                )
                .await?;
            }
        } else {
            self.push_blobs(content, &to, &target.digest, &document, reporter)
                .await?;
        }
        let tag_or_digest = destination
            .tag()
            .map_or_else(|| target.digest.to_string(), str::to_owned);
        let digest = self
            .put_manifest(&to, &tag_or_digest, &media_type, &bytes, reporter)
            .await?;
        Ok(Pushed {
            reference: destination.clone(),
            digest,
            size: bytes.len() as u64,
        })
    }

    async fn push_blobs(
        &self,
        content: &ContentStore,
        to: &Destination<'_>,
        manifest: &Digest,
        document: &Document,
        reporter: &dyn Reporter,
    ) -> Result<(), RegistryError> {
        let Document::Manifest { config, layers } = document else {
            return Ok(());
        };
        reporter.report(Event::Manifest {
            digest: manifest,
            config: &config.digest,
            layers,
        });
        futures_util::stream::iter(layers.iter().chain([config]))
            .map(|blob| self.push_blob(content, to, blob, reporter))
            .buffer_unordered(self.inner.settings.concurrency)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn push_blob(
        &self,
        content: &ContentStore,
        to: &Destination<'_>,
        blob: &Descriptor,
        reporter: &dyn Reporter,
    ) -> Result<(), RegistryError> {
        let digest = &blob.digest;
        // The blob must be here before anything is asked of the registry.
        let size = content.stat(digest)?.size;
        if size != blob.size {
            return Err(ContentError::SizeMismatch {
                digest: digest.clone(),
                expected: blob.size,
                actual: size,
            }
            .into());
        }
        if self.blob_exists(to, digest).await? {
            reporter.report(Event::BlobExists { digest });
            return Ok(());
        }
        reporter.report(Event::BlobStart { digest, size });
        let mut failures = 0;
        loop {
            match self.upload(content, to, blob, reporter).await {
                Ok(Upload::Mounted) => reporter.report(Event::BlobMounted {
                    digest,
                    from: to.mount_from.unwrap_or_default(),
                }),
                Ok(Upload::Uploaded) => reporter.report(Event::BlobDone { digest }),
                Err(error) if is_restartable(&error) && failures < self.inner.settings.retries => {
                    failures += 1;
                    reporter.report(Event::Retrying {
                        digest: Some(digest),
                        attempt: failures,
                    });
                    tokio::time::sleep(self.inner.settings.retry_delay * 2u32.saturating_pow(failures - 1))
                        .await;
                    continue;
                }
                Err(error) => return Err(error),
            }
            return Ok(());
        }
    }

    fn call<'a>(to: &'a Destination<'_>, method: Method, url: Url, body: Body<'a>, retry: bool) -> Call<'a> {
        Call {
            method,
            url,
            host: to.reference.domain(),
            scopes: &to.scopes,
            headers: HeaderMap::new(),
            body,
            retry,
        }
    }

    async fn blob_exists(&self, to: &Destination<'_>, digest: &Digest) -> Result<bool, RegistryError> {
        let reference = to.reference;
        let url = self.repository_url(reference.domain(), reference.path(), &format!("blobs/{digest}"));
        let call = Client::call(to, Method::HEAD, url, Body::Empty, true);
        let response = self.send(&call).await?;
        match response.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(push_denied(reference, response).await),
            _ => Err(Client::unexpected(&call, response).await),
        }
    }

    /// Starts an upload (mounting if it can), then sends the bytes.
    async fn upload(
        &self,
        content: &ContentStore,
        to: &Destination<'_>,
        blob: &Descriptor,
        reporter: &dyn Reporter,
    ) -> Result<Upload, RegistryError> {
        let reference = to.reference;
        let mut url = self.repository_url(reference.domain(), reference.path(), "blobs/uploads/");
        if let Some(from) = to.mount_from {
            url.query_pairs_mut()
                .append_pair("mount", blob.digest.as_str())
                .append_pair("from", from);
        }
        let call = Client::call(to, Method::POST, url, Body::Empty, true);
        let response = self.send(&call).await?;
        let mut location = match response.status() {
            // 201 to a mount: the registry linked the blob, nothing to send.
            StatusCode::CREATED => return Ok(Upload::Mounted),
            StatusCode::ACCEPTED => Client::location(&call, &response)?,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(push_denied(reference, response).await);
            }
            _ => return Err(Client::unexpected(&call, response).await),
        };
        let path = content.blob_path(&blob.digest);
        let (progress, mut watcher) = watch::channel(0u64);
        let progress = Arc::new(progress);
        let chunk_size = self.inner.settings.chunk_size;
        if blob.size > chunk_size {
            let mut offset = 0;
            while offset < blob.size {
                let len = chunk_size.min(blob.size - offset);
                let make = file_body(path.clone(), offset, len, Arc::clone(&progress));
                let mut call = Client::call(to, Method::PATCH, location.clone(), Body::Stream(&make), false);
                let range = format!("{offset}-{}", offset + len - 1);
                call.headers.insert(
                    CONTENT_RANGE,
                    HeaderValue::try_from(range).expect("a valid header"),
                );
                call.headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
                call.headers
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
                let response = self.send_reporting(&call, &mut watcher, blob, reporter).await?;
                if response.status() != StatusCode::ACCEPTED {
                    return Err(Client::unexpected(&call, response).await);
                }
                location = Client::location(&call, &response)?;
                offset += len;
            }
        }
        location
            .query_pairs_mut()
            .append_pair("digest", blob.digest.as_str());
        let make = file_body(path, 0, blob.size, progress);
        let body = if blob.size > chunk_size {
            Body::Empty
        } else {
            Body::Stream(&make)
        };
        let mut call = Client::call(to, Method::PUT, location, body, false);
        let length = if blob.size > chunk_size { 0 } else { blob.size };
        call.headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
        call.headers
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        let response = self.send_reporting(&call, &mut watcher, blob, reporter).await?;
        match response.status() {
            StatusCode::CREATED => Ok(Upload::Uploaded),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(push_denied(reference, response).await),
            _ => Err(Client::unexpected(&call, response).await),
        }
    }

    /// Sends an upload call, turning the body stream's byte count into progress events.
    async fn send_reporting(
        &self,
        call: &Call<'_>,
        watcher: &mut watch::Receiver<u64>,
        blob: &Descriptor,
        reporter: &dyn Reporter,
    ) -> Result<Response, RegistryError> {
        let send = self.send(call);
        tokio::pin!(send);
        loop {
            tokio::select! {
                response = &mut send => return response,
                Ok(()) = watcher.changed() => {
                    let done = *watcher.borrow_and_update();
                    reporter.report(Event::BlobProgress { digest: &blob.digest, done, total: blob.size });
                }
            }
        }
    }

    /// The upload URL a response's `Location` names (often relative to the registry).
    fn location(call: &Call<'_>, response: &Response) -> Result<Url, RegistryError> {
        let invalid = |location: &str| RegistryError::InvalidLocation {
            host: call.host.to_owned(),
            location: location.to_owned(),
        };
        let value = response
            .headers()
            .get(LOCATION)
            .ok_or_else(|| invalid(""))?
            .to_str()
            .map_err(|_| invalid("<not text>"))?;
        call.url.join(value).map_err(|_| invalid(value))
    }

    /// Puts a manifest under a tag or digest; returns the digest the registry stored it under.
    async fn put_manifest(
        &self,
        to: &Destination<'_>,
        tag_or_digest: &str,
        media_type: &str,
        bytes: &[u8],
        reporter: &dyn Reporter,
    ) -> Result<Digest, RegistryError> {
        let reference = to.reference;
        let url = self.repository_url(
            reference.domain(),
            reference.path(),
            &format!("manifests/{tag_or_digest}"),
        );
        let mut call = Client::call(to, Method::PUT, url, Body::Bytes(bytes), true);
        let content_type =
            HeaderValue::try_from(media_type).map_err(|_| RegistryError::UnsupportedMediaType {
                reference: tag_or_digest.to_owned(),
                media_type: media_type.to_owned(),
            })?;
        call.headers.insert(CONTENT_TYPE, content_type);
        let response = self.send(&call).await?;
        match response.status() {
            StatusCode::CREATED | StatusCode::OK => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(push_denied(reference, response).await);
            }
            _ => return Err(Client::unexpected(&call, response).await),
        }
        let digest = Digest::of(bytes);
        reporter.report(Event::ManifestPushed {
            reference: tag_or_digest,
            digest: &digest,
        });
        Ok(digest)
    }
}

async fn push_denied(reference: &ImageRef, response: Response) -> RegistryError {
    RegistryError::PushDenied {
        repository: reference.familiar(),
        source: Client::server_errors(response).await,
    }
}

/// Whether a failed upload is worth starting over: the network, or the server, not the request.
fn is_restartable(error: &RegistryError) -> bool {
    match error {
        RegistryError::Transfer { .. } | RegistryError::Connect { .. } => true,
        RegistryError::Status { status, .. } => status.is_server_error(),
        _ => false,
    }
}

/// A body factory streaming `len` bytes of the blob file from `offset`, counting into `progress`
/// (which counts from the start of the blob, so chunked uploads report the whole).
fn file_body(
    path: PathBuf,
    offset: u64,
    len: u64,
    progress: Arc<watch::Sender<u64>>,
) -> impl Fn() -> Result<reqwest::Body, RegistryError> + Send + Sync {
    move || {
        let io_error = |source| ContentError::Io {
            op: "read blob",
            path: path.clone(),
            source,
        };
        let mut file = std::fs::File::open(&path).map_err(io_error)?;
        file.seek(SeekFrom::Start(offset)).map_err(io_error)?;
        let reader = tokio::fs::File::from_std(file).take(len);
        let progress = Arc::clone(&progress);
        let stream = futures_util::stream::unfold((reader, offset), move |(mut reader, sent)| {
            let progress = Arc::clone(&progress);
            async move {
                let mut buffer = vec![0; 64 * 1024];
                match reader.read(&mut buffer).await {
                    Ok(0) => None,
                    Ok(n) => {
                        buffer.truncate(n);
                        let sent = sent + n as u64;
                        progress.send_replace(sent);
                        Some((Ok(buffer), (reader, sent)))
                    }
                    Err(error) => Some((Err(error), (reader, sent))),
                }
            }
        });
        Ok(reqwest::Body::wrap_stream(stream))
    }
}
