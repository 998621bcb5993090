//! The `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname` a step sees.
//!
//! They are written to a private directory outside the rootfs and bind-mounted read-only over the
//! rootfs's own, so they never end up in a layer (BuildKit does the same for hosts and resolv.conf).

use std::fmt::Write as _;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::ProcessSpec;

/// The three files, in a temporary directory removed on drop.
#[derive(Debug)]
pub(super) struct EtcFiles {
    _dir: tempfile::TempDir,
    /// `(file on the host, path inside the rootfs)`, in mount order.
    pub(super) files: [(PathBuf, &'static str); 3],
}

impl EtcFiles {
    /// Writes the files for `spec` into a new directory under `state_dir`.
    pub(super) fn write(state_dir: &Path, spec: &ProcessSpec) -> Result<Self, (PathBuf, io::Error)> {
        let dir = tempfile::Builder::new()
            .prefix("kiln-run-")
            .tempdir_in(state_dir)
            .map_err(|err| (state_dir.to_owned(), err))?;
        let contents = [
            (
                "hosts",
                "etc/hosts",
                hosts(spec.effective_hostname(), &spec.extra_hosts),
            ),
            ("resolv.conf", "etc/resolv.conf", resolv_conf_for_step()),
            (
                "hostname",
                "etc/hostname",
                format!("{}\n", spec.effective_hostname()),
            ),
        ];
        let files = contents.map(|(name, target, text)| (dir.path().join(name), target, text));
        for (path, _, text) in &files {
            // Readable by any user the step runs as; the bind mount shows this inode.
            std::fs::write(path, text).map_err(|err| (path.clone(), err))?;
            set_mode_0644(path).map_err(|err| (path.clone(), err))?;
        }
        Ok(Self {
            _dir: dir,
            files: files.map(|(path, target, _)| (path, target)),
        })
    }
}

fn set_mode_0644(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
}

/// BuildKit's hosts file: localhost and the step's hostname, IPv6 localhost names, then `--add-host`s.
pub(super) fn hosts(hostname: &str, extra: &[(String, IpAddr)]) -> String {
    let mut text = format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for (host, ip) in extra {
        let _ = writeln!(text, "{ip}\t{host}");
    }
    text
}

/// The host's resolver configuration, made usable from the step.
fn resolv_conf_for_step() -> String {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let host = read("/etc/resolv.conf").unwrap_or_default();
    // A host running systemd-resolved points at its stub (127.0.0.53); the real upstream servers are in
    // systemd's own file, as BuildKit and Docker know.
    let source = if only_loopback_nameservers(&host) {
        read("/run/systemd/resolve/resolv.conf").unwrap_or(host)
    } else {
        host
    };
    resolv_conf(&source)
}

fn nameserver(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace();
    (words.next() == Some("nameserver")).then(|| words.next().unwrap_or(""))
}

fn is_loopback(addr: &str) -> bool {
    addr.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn only_loopback_nameservers(text: &str) -> bool {
    let mut servers = text.lines().filter_map(nameserver).peekable();
    servers.peek().is_some() && servers.all(is_loopback)
}

/// libnetwork's filter, as BuildKit applies it: loopback nameservers are dropped (a stub resolver on the
/// host's loopback is not what a build step should depend on), everything else is kept; with no
/// nameserver left, Google's public resolvers are the default.
pub(super) fn resolv_conf(host: &str) -> String {
    let mut text = String::new();
    let mut servers = 0;
    for line in host.lines() {
        match nameserver(line) {
            Some(addr) if is_loopback(addr) => continue,
            Some(_) => servers += 1,
            None => {}
        }
        text.push_str(line);
        text.push('\n');
    }
    if servers == 0 {
        text.push_str(
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\nnameserver 2001:4860:4860::8888\nnameserver 2001:4860:4860::8844\n",
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_hosts_names_the_step() {
        let extra = [("db".to_owned(), "10.0.0.5".parse().unwrap())];
        assert_eq!(
            hosts("buildkitsandbox", &extra),
            "127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n10.0.0.5\tdb\n"
        );
    }

    #[test]
    fn exec_resolv_conf_drops_loopback_servers() {
        let host =
            "# generated\nnameserver 127.0.0.53\nnameserver 10.1.2.3\nsearch example.org\noptions edns0\n";
        assert_eq!(
            resolv_conf(host),
            "# generated\nnameserver 10.1.2.3\nsearch example.org\noptions edns0\n"
        );
    }

    #[test]
    fn exec_resolv_conf_defaults_when_only_a_stub_resolver_is_left() {
        let text = resolv_conf("nameserver 127.0.0.53\nnameserver ::1\nsearch lan\n");
        assert_eq!(
            text,
            "search lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n\
             nameserver 2001:4860:4860::8888\nnameserver 2001:4860:4860::8844\n"
        );
        assert!(only_loopback_nameservers("nameserver 127.0.0.53\n"));
        assert!(!only_loopback_nameservers(
            "nameserver 127.0.0.53\nnameserver 1.1.1.1\n"
        ));
        assert!(!only_loopback_nameservers("search lan\n"));
    }
}
