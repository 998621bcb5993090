//! An OCI distribution client: resolve, pull and push images, log in and out.
//!
//! The model is the distribution API (`/v2/`) as Docker speaks it. A [`Client`] talks to any
//! number of registries; an [`ImageRef`](crate::reference::ImageRef) says which (its domain; `docker.io` is
//! served at [`DOCKER_HUB_REGISTRY`]) and which repository. Loopback registries and those named
//! [`insecure_registry`](ClientBuilder::insecure_registry) speak plain HTTP, all others HTTPS.
//!
//! - **Resolve** ([`Client::resolve`]): a tag or digest names a manifest or an index (OCI or
//!   Docker schema 2 media types, all four accepted); from an index the entry for the wanted
//!   [`Platform`] is chosen. Manifests are bounded in size ([`MAX_MANIFEST_SIZE`]) and
//!   verified against their digest.
//! - **Pull** ([`Client::pull`]): the manifests, config and layers go into a
//!   [`ContentStore`](crate::content::ContentStore) through its verifying ingest, layers in
//!   parallel and streamed, blobs already stored skipped, each blob [`Retain`]ed first so a
//!   garbage collector cannot race the pull. Naming the image is left to the caller.
//! - **Push** ([`Client::push`]): exists-check, cross-repository mount, or upload for every blob,
//!   then the manifests.
//! - **Blobs on demand**: [`RemoteBlobs`] is a repository as a
//!   [`BlobSource`](crate::content::BlobSource).
//! - **Auth**: anonymous, Basic, and Bearer tokens fetched as the registry's
//!   `WWW-Authenticate` challenge says (with the scopes of the operation, and `pull` on a
//!   mount's source repository), with credentials from Docker's `config.json`
//!   and credential helpers ([`CredentialStore`]). [`Client::login`] checks credentials and saves
//!   them; [`Client::logout`] forgets them.
//!
//! Transient failures (connection errors, 5xx, 429) are retried with exponential backoff; a
//! download that drops mid-blob resumes with a `Range` request. Progress goes to a
//! [`Reporter`] as [`Event`]s; this module never prints. Errors are [`RegistryError`], worded
//! as Docker prints them ("pull access denied for app, repository does not exist or may
//! require 'docker login'", "manifest for app:1 not found: manifest unknown").
//!
//! This module depends on nothing in kiln but [`content`](crate::content),
//! [`reference`](crate::reference) and the frontend's [`Platform`] (one type for `--platform`
//! everywhere).
//!
//! ```
//! use kiln_builder::registry::{Client, Platform};
//!
//! let client = Client::builder().anonymous().build()?;
//! assert_eq!(client.base_url("docker.io").as_str(), "https://registry-1.docker.io/");
//! assert_eq!(client.base_url("127.0.0.1:5000").as_str(), "http://127.0.0.1:5000/");
//! let host = Platform::new("linux", "amd64", None);
//! assert_eq!(Platform::parse("linux/arm64/v8", &host)?.to_string(), "linux/arm64");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A pull into a content store (needs a registry, so not run here):
//!
//! ```no_run
//! use kiln_builder::content::ContentStore;
//! use kiln_builder::platform;
//! use kiln_builder::registry::{Client, NoProgress, NoRetain};
//!
//! # async fn pull() -> Result<(), Box<dyn std::error::Error>> {
//! let content = ContentStore::open("/tmp/kiln-root")?;
//! let client = Client::builder().build()?;
//! let reference = "localhost:5000/app:1".parse()?;
//! let pulled = client.pull(&reference, &platform::host(), &content, &NoRetain, &NoProgress).await?;
//! println!("{} layers, config {}", pulled.layers.len(), pulled.config.digest);
//! # Ok(())
//! # }
//! ```

mod auth;
mod client;
pub mod credentials;
mod error;
mod login;
pub mod manifest;
mod progress;
mod pull;
mod push;
mod resolve;
mod source;

pub use client::{Client, ClientBuilder, DOCKER_HUB_REGISTRY};
pub use credentials::{CredentialStore, Credentials, CredentialsError};
pub use error::{AuthError, RegistryError, ServerErrors};
pub use kiln_frontend::graph::{Platform, PlatformError};
pub use manifest::{Descriptor, MAX_MANIFEST_SIZE};
pub use progress::{Event, NoProgress, Reporter};
pub use pull::{NoRetain, Retain};
pub use push::Pushed;
pub use resolve::Resolved;
pub use source::RemoteBlobs;
