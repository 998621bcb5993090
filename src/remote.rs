//! What the registry commands (`pull`, `push`, `login`) share: `--insecure-registry`, the
//! registry client, and the tokio runtime they run on.
//!
//! The client reads credentials as Docker does (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`, and the credential helpers they name). Loopback registries
//! (`localhost`, `127.0.0.0/8`, `::1`) always speak plain HTTP; `--insecure-registry` adds others.

use std::future::Future;

use anyhow::{Context, Result};
use kiln_builder::registry::Client;

/// The registry options of `pull`, `push` and `login`.
#[derive(Debug, clap::Args)]
pub(crate) struct RegistryArgs {
    /// Talk plain HTTP to this registry (`host` or `host:port`); may be repeated. Loopback
    /// registries always get plain HTTP.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    insecure: Vec<String>,
}

impl RegistryArgs {
    /// A client with Docker's defaults, credentials from Docker's config, and these options.
    pub(crate) fn client(&self) -> Result<Client> {
        let builder = self.insecure.iter().fold(Client::builder(), |builder, host| {
            builder.insecure_registry(host_of(host))
        });
        Ok(builder.build()?)
    }
}

/// `host[:port]` from what a user may write: `http://host:5000/` is `host:5000`.
pub(crate) fn host_of(server: &str) -> &str {
    let server = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))
        .unwrap_or(server);
    server.split('/').next().unwrap_or(server)
}

/// Runs `future` to completion on a runtime made for this command.
///
/// Two worker threads: blobs are hashed and written on the async threads as they arrive, so a
/// second worker lets two downloads verify at once; more would only contend for the disk (and
/// the CPUs of a small machine).
pub(crate) fn block_on<F: Future>(future: F) -> Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the async runtime")?;
    Ok(runtime.block_on(future))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lose_scheme_and_path() {
        assert_eq!(host_of("http://registry.local:5000/"), "registry.local:5000");
        assert_eq!(host_of("https://index.docker.io/v1/"), "index.docker.io");
        assert_eq!(host_of("localhost:5000"), "localhost:5000");
    }
}
