//! `kiln login` and `kiln logout`: save or forget a registry's credentials, as Docker does.
//!
//! Credentials go where Docker keeps them (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`, or the credential helper it names), so kiln and Docker share logins.
//! `login` first checks them against the registry (`GET /v2/`, with a token exchange if the
//! registry asks for bearer tokens) and saves nothing the registry refuses. The server defaults to
//! Docker Hub (`docker.io`); a URL (`https://registry.example:5000/v2/`) is reduced to its host.
//!
//! The password comes from `-p` (with Docker's warning), `--password-stdin`, or a prompt that does
//! not echo when stdin is a terminal. Messages and prompts go to stderr; `Login Succeeded` and
//! logout's result go to stdout, as Docker prints them there.

use std::io::{BufRead, IsTerminal, Read, Write};

use anyhow::{Context, Result, bail};
use kiln_builder::reference::DEFAULT_DOMAIN;
use kiln_builder::registry::credentials::server_key;
use kiln_builder::registry::{CredentialStore, Credentials};

use crate::remote::{RegistryArgs, block_on, host_of};

/// `kiln login [OPTIONS] [SERVER]`
#[derive(Debug, clap::Args)]
pub(crate) struct LoginArgs {
    /// The registry (default: Docker Hub).
    server: Option<String>,
    /// The user name.
    #[arg(short, long)]
    username: Option<String>,
    /// The password (insecure: it shows in the process list and shell history).
    #[arg(short, long)]
    password: Option<String>,
    /// Take the password from standard input.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// `kiln logout [SERVER]`
#[derive(Debug, clap::Args)]
pub(crate) struct LogoutArgs {
    /// The registry (default: Docker Hub).
    server: Option<String>,
}

pub(crate) fn login(args: &LoginArgs) -> Result<()> {
    let host = registry_host(args.server.as_deref())?;
    if args.password.is_some() {
        if args.password_stdin {
            bail!("--password and --password-stdin are mutually exclusive");
        }
        warn("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    let stdin_password = if args.password_stdin {
        if args.username.is_none() {
            bail!("Must provide --username with --password-stdin");
        }
        Some(read_password_stdin()?)
    } else {
        None
    };
    let username = match &args.username {
        Some(username) => username.trim().to_owned(),
        None => prompt_username()?,
    };
    if username.is_empty() {
        bail!("Non-null Username Required");
    }
    let password = match args.password.clone().or(stdin_password) {
        Some(password) => password,
        None => prompt_password()?,
    };
    if password.is_empty() {
        bail!("Password Required");
    }
    let store = CredentialStore::from_env()?;
    let client = args.registry.client()?;
    let credentials = Credentials::Basic { username, password };
    block_on(client.login(&host, &credentials, &store))??;
    if stored_in_clear(&store, &host) {
        warn(&format!(
            "WARNING! Your password will be stored unencrypted in {}.\nConfigure a credential helper \
             to remove this warning. See\nhttps://docs.docker.com/engine/reference/commandline/login/#credentials-store\n",
            store.config_path().display()
        ));
    }
    writeln!(std::io::stdout().lock(), "Login Succeeded")?;
    Ok(())
}

pub(crate) fn logout(args: &LogoutArgs) -> Result<()> {
    let host = registry_host(args.server.as_deref())?;
    let store = CredentialStore::from_env()?;
    let shown = server_key(&host);
    let mut out = std::io::stdout().lock();
    if store.erase(&host)? {
        writeln!(out, "Removing login credentials for {shown}")?;
    } else {
        writeln!(out, "Not logged in to {shown}")?;
    }
    Ok(())
}

/// The registry host a `SERVER` argument names: Docker Hub under any of its names, else the host
/// (and port) of what may be a URL.
fn registry_host(server: Option<&str>) -> Result<String> {
    let Some(server) = server.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(DEFAULT_DOMAIN.to_owned());
    };
    Ok(match host_of(server) {
        "" => bail!("invalid registry address {server:?}"),
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => DEFAULT_DOMAIN.to_owned(),
        host => host.to_owned(),
    })
}

/// The whole of stdin, less the line ending a shell or `echo` adds.
fn read_password_stdin() -> Result<String> {
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("read the password from stdin")?;
    let trimmed = password.strip_suffix('\n').unwrap_or(&password);
    Ok(trimmed.strip_suffix('\r').unwrap_or(trimmed).to_owned())
}

fn prompt_username() -> Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("Cannot perform an interactive login from a non TTY device");
    }
    eprint_flush("Username: ");
    let mut line = String::new();
    stdin.lock().read_line(&mut line).context("read the user name")?;
    Ok(line.trim().to_owned())
}

fn prompt_password() -> Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!("Cannot perform an interactive login from a non TTY device");
    }
    rpassword::prompt_password("Password: ").context("read the password")
}

/// Whether the login went into `config.json` itself (base64, not encrypted) rather than a helper.
fn stored_in_clear(store: &CredentialStore, host: &str) -> bool {
    std::fs::read(store.config_path())
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .is_some_and(|config| config["auths"][server_key(host)].get("auth").is_some())
}

fn warn(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

fn eprint_flush(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{text}");
    let _ = err.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_name_hosts_and_docker_hub_has_many_names() {
        for hub in [
            None,
            Some(""),
            Some("docker.io"),
            Some("https://index.docker.io/v1/"),
        ] {
            assert_eq!(registry_host(hub).unwrap(), "docker.io", "{hub:?}");
        }
        assert_eq!(
            registry_host(Some("http://localhost:5000/v2/")).unwrap(),
            "localhost:5000"
        );
        assert!(registry_host(Some("https://")).is_err());
    }
}
