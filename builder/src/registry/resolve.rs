//! Resolving a reference: fetch what a tag or digest names, and pick the platform's manifest.

use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};

use super::client::{Body, Call};
use super::manifest::{self, Descriptor, Document, MANIFEST_ACCEPT, MAX_MANIFEST_SIZE};
use super::{Client, Event, Platform, RegistryError, Reporter};
use crate::content::Digest;
use crate::reference::ImageRef;

/// What a reference names, resolved for one platform: the documents to store for a pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The reference resolved.
    pub reference: ImageRef,
    /// What the reference names: an index, or directly an image manifest.
    pub target: Descriptor,
    /// The target's bytes, exactly as served (their digest is `target.digest`).
    pub target_bytes: Vec<u8>,
    /// The image manifest for the platform (the target itself when it is a manifest).
    pub manifest: Descriptor,
    /// The manifest's bytes.
    pub manifest_bytes: Vec<u8>,
    /// The image config blob.
    pub config: Descriptor,
    /// The layer blobs, base first.
    pub layers: Vec<Descriptor>,
}

/// The scope a pull from `reference`'s repository needs.
pub(crate) fn pull_scope(reference: &ImageRef) -> Vec<String> {
    vec![format!("repository:{}:pull", reference.path())]
}

impl Client {
    /// Resolves `reference` to its manifest for `platform`, fetching (and verifying) the index
    /// and manifest but no blob.
    ///
    /// Errors as Docker words them: an unknown tag or digest is
    /// [`RegistryError::ManifestUnknown`], a refused or missing repository
    /// [`RegistryError::PullDenied`], an index without the platform
    /// [`RegistryError::NoMatchingPlatform`].
    pub async fn resolve(
        &self,
        reference: &ImageRef,
        platform: &Platform,
        reporter: &dyn Reporter,
    ) -> Result<Resolved, RegistryError> {
        let familiar = reference.familiar_string();
        reporter.report(Event::Resolving { reference: &familiar });
        let (target, target_bytes) = self.fetch_manifest(reference, None).await?;
        reporter.report(Event::Resolved {
            reference: &familiar,
            digest: &target.digest,
        });
        let (_, document) = manifest::parse(&familiar, &target.media_type, &target_bytes)?;
        let (manifest, manifest_bytes, document) = match document {
            Document::Manifest { .. } => (target.clone(), target_bytes.clone(), document),
            Document::Index { manifests } => {
                let chosen = manifest::pick(&manifests, platform).ok_or_else(|| {
                    RegistryError::NoMatchingPlatform {
                        reference: familiar.clone(),
                        platform: platform.clone(),
                    }
                })?;
                let (manifest, bytes) = self.fetch_manifest(reference, Some(chosen)).await?;
                let (_, document) = manifest::parse(manifest.digest.as_str(), &manifest.media_type, &bytes)?;
                (manifest, bytes, document)
            }
        };
        let Document::Manifest { config, layers } = document else {
            return Err(RegistryError::UnsupportedMediaType {
                reference: manifest.digest.to_string(),
                media_type: manifest.media_type,
            });
        };
        reporter.report(Event::Manifest {
            digest: &manifest.digest,
            config: &config.digest,
            layers: &layers,
        });
        Ok(Resolved {
            reference: reference.clone(),
            target,
            target_bytes,
            manifest,
            manifest_bytes,
            config,
            layers,
        })
    }

    /// Fetches a manifest: the one `reference` names, or `child` (an index entry) by digest.
    /// The bytes are verified against the digest asked for or announced, and bounded in size.
    pub(crate) async fn fetch_manifest(
        &self,
        reference: &ImageRef,
        child: Option<&Descriptor>,
    ) -> Result<(Descriptor, Vec<u8>), RegistryError> {
        let familiar = reference.familiar_string();
        let wanted: Option<&Digest> = child.map(|c| &c.digest).or(reference.digest());
        if let Some(child) = child.filter(|c| c.size > MAX_MANIFEST_SIZE) {
            return Err(RegistryError::ManifestTooLarge {
                reference: child.digest.to_string(),
                size: child.size,
                limit: MAX_MANIFEST_SIZE,
            });
        }
        let tag_or_digest = match (wanted, reference.tag()) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.to_owned(),
            (None, None) => unreachable!("an ImageRef has a tag or a digest"),
        };
        let (served_type, announced, bytes) = self.get_manifest(reference, &tag_or_digest).await?;
        let actual = Digest::of(&bytes);
        if let Some(expected) = wanted
            .or(announced.as_ref())
            .filter(|expected| **expected != actual)
        {
            return Err(RegistryError::ManifestDigestMismatch {
                reference: familiar,
                expected: expected.clone(),
                actual,
            });
        }
        let (media_type, _) = manifest::parse(&tag_or_digest, &served_type, &bytes)?;
        let descriptor = Descriptor {
            media_type,
            size: bytes.len() as u64,
            digest: actual,
            platform: child.and_then(|c| c.platform.clone()),
        };
        Ok((descriptor, bytes))
    }

    /// GETs a manifest by tag or digest, bounded in size; returns the served `Content-Type`,
    /// the announced `Docker-Content-Digest` and the bytes.
    async fn get_manifest(
        &self,
        reference: &ImageRef,
        tag_or_digest: &str,
    ) -> Result<(String, Option<Digest>, Vec<u8>), RegistryError> {
        let scopes = pull_scope(reference);
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
        let call = Call {
            method: Method::GET,
            url: self.repository_url(
                reference.domain(),
                reference.path(),
                &format!("manifests/{tag_or_digest}"),
            ),
            host: reference.domain(),
            scopes: &scopes,
            headers,
            body: Body::Empty,
            retry: true,
        };
        let mut response = self.send(&call).await?;
        if response.status() != StatusCode::OK {
            return Err(manifest_error(&call, reference, response).await);
        }
        let too_large = |size| RegistryError::ManifestTooLarge {
            reference: tag_or_digest.to_owned(),
            size,
            limit: MAX_MANIFEST_SIZE,
        };
        let declared = header_u64(response.headers(), CONTENT_LENGTH.as_str());
        if let Some(size) = declared.filter(|size| *size > MAX_MANIFEST_SIZE) {
            return Err(too_large(size));
        }
        let served_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let announced = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Digest::parse(v).ok());
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|source| Client::transport_error(&call, source))?
        {
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > MAX_MANIFEST_SIZE {
                return Err(too_large(bytes.len() as u64));
            }
        }
        Ok((served_type, announced, bytes))
    }
}

/// The error for a manifest request that did not answer 200, as Docker words it.
async fn manifest_error(call: &Call<'_>, reference: &ImageRef, response: reqwest::Response) -> RegistryError {
    match response.status() {
        StatusCode::NOT_FOUND => {
            let errors = Client::server_errors(response).await;
            if errors.has_code("NAME_UNKNOWN") {
                RegistryError::PullDenied {
                    repository: reference.familiar(),
                    source: errors,
                }
            } else {
                RegistryError::ManifestUnknown {
                    reference: reference.familiar_string(),
                }
            }
        }
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => RegistryError::PullDenied {
            repository: reference.familiar(),
            source: Client::server_errors(response).await,
        },
        _ => Client::unexpected(call, response).await,
    }
}

/// A header's value as a number, if it is one.
pub(crate) fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}
