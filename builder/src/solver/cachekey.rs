//! Cache keys: one function per kind of step, each a sha256 over a canonical, version-tagged encoding.
//!
//! A key names the *result* of a step: the filesystem after it. It chains: every key but a base's
//! starts with its parent's key, so a change anywhere invalidates everything after it, as in BuildKit's
//! solver where a vertex digest combines the op with its inputs' keys.
//!
//! # Encoding
//! The bytes hashed are `kiln.cachekey.v1`, a kind tag, then each field as its length (u64, big
//! endian) and bytes; lists are their length then their items; optional fields a presence byte first.
//! Nothing is ambiguous (`["ab"]` and `["a","b"]` differ) and nothing depends on Rust's `Debug` or
//! on map iteration order. Changing what goes into a key means bumping the version tag, which misses
//! every old record instead of matching it wrongly.
//!
//! # Left out, on purpose
//! - Timestamps (file mtimes, build time): touching a file must not miss; COPY keys take the
//!   *content* checksum of exactly the files selected (names, modes, owners, sizes, content, link
//!   targets, xattrs) from the context module.
//! - Proxy variables (`HTTP_PROXY`...): BuildKit keeps them out of the key so that a build behind a
//!   proxy shares its cache with one without.
//! - The progress name, history wording, tags, labels and outputs: they do not change the filesystem
//!   (the image config is recomputed from the Dockerfile on every build, cached steps included).
//! - The hostname (always `buildkitsandbox`) and the executor's fixed setup.
//! - A `COPY --from=<stage>`'s *content*: the source stage's key stands for it, which is coarser
//!   (any change in that stage misses) but never wrong.
//! - An `ADD <url>`'s content, unless `--checksum` pins it: the URL is the identity.

use std::fmt;

use kiln_frontend::instruction::{Chmod, Mount, Network, Security};
use sha2::{Digest as _, Sha256};

use super::op::{CopyOp, MkdirOp, RunOp};
use crate::content::Digest;

/// The version tag every key starts with.
const VERSION: &str = "kiln.cachekey.v1";

/// The key of a step's result.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(Digest);

impl CacheKey {
    /// The key as a digest.
    pub fn digest(&self) -> &Digest {
        &self.0
    }

    /// Rebuilds a key from its stored form.
    pub(crate) fn from_digest(digest: Digest) -> CacheKey {
        CacheKey(digest)
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({})", self.0)
    }
}

/// What a COPY's sources are, for its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CopyInputKey<'a> {
    /// The context: the checksum of exactly the files the sources select.
    Context(&'a Digest),
    /// Another stage (or an image base's chain): its result's key.
    Result(&'a CacheKey),
}

/// `FROM scratch` for a platform.
pub(crate) fn scratch(platform: &str) -> CacheKey {
    let mut e = Encoder::new("scratch");
    e.str(platform);
    e.finish()
}

/// `FROM image`: the image's manifest (which names its layers) for a platform.
pub(crate) fn image(manifest: &Digest, platform: &str) -> CacheKey {
    let mut e = Encoder::new("image");
    e.str(manifest.as_str());
    e.str(platform);
    e.finish()
}

/// `RUN`: the parent, the argv, the environment (proxy variables left out), working directory, user,
/// network and security modes, the mounts with the keys of what they mount, and a heredoc script.
pub(crate) fn run(parent: &CacheKey, op: &RunOp, mount_inputs: &[Option<CacheKey>]) -> CacheKey {
    let mut e = Encoder::new("run");
    e.key(parent);
    e.strs(&op.args);
    let env: Vec<&(String, String)> = op.env.iter().filter(|(k, _)| !is_proxy(k)).collect();
    e.len(env.len());
    for (k, v) in env {
        e.str(k);
        e.str(v);
    }
    e.str(&op.cwd);
    e.str(&op.user);
    e.str(match op.network {
        Network::Default => "default",
        Network::None => "none",
        Network::Host => "host",
    });
    e.str(match op.security {
        Security::Sandbox => "sandbox",
        Security::Insecure => "insecure",
    });
    e.len(op.mounts.len());
    for (mount, input) in op.mounts.iter().zip(mount_inputs) {
        mount_fields(&mut e, &mount.mount);
        e.opt(input.as_ref().map(|k| k.digest().as_str()));
    }
    e.opt(op.script.as_ref().map(|s| s.name.as_str()));
    e.opt(op.script.as_ref().map(|s| s.content.as_str()));
    e.finish()
}

/// `COPY`/`ADD`: the parent, what the sources are, and every flag.
pub(crate) fn copy(parent: &CacheKey, op: &CopyOp, input: CopyInputKey<'_>) -> CacheKey {
    let mut e = Encoder::new(if op.add { "add" } else { "copy" });
    e.key(parent);
    match input {
        CopyInputKey::Context(checksum) => {
            e.str("context");
            e.str(checksum.as_str());
        }
        CopyInputKey::Result(key) => {
            e.str("result");
            e.key(key);
        }
    }
    e.strs(&op.sources);
    e.len(op.inline.len());
    for (name, content) in &op.inline {
        e.str(name);
        e.str(content);
    }
    e.str(&op.dest);
    e.opt(op.chown.as_deref());
    e.opt(
        op.chmod
            .as_ref()
            .map(|c| match c {
                Chmod::Octal(mode) => format!("octal:{mode:o}"),
                Chmod::Symbolic(s) => format!("symbolic:{s}"),
            })
            .as_deref(),
    );
    e.flag(op.link);
    e.flag(op.parents);
    e.strs(&op.excludes);
    e.opt(op.checksum.as_deref());
    e.flag(op.unpack);
    e.flag(op.keep_git_dir);
    e.finish()
}

/// `WORKDIR`'s directory: the parent, the path and the owner it is made for.
pub(crate) fn mkdir(parent: &CacheKey, op: &MkdirOp) -> CacheKey {
    let mut e = Encoder::new("mkdir");
    e.key(parent);
    e.str(&op.path);
    e.str(&op.user);
    e.finish()
}

fn mount_fields(e: &mut Encoder, mount: &Mount) {
    e.str(mount.kind.as_str());
    e.opt(mount.target.as_deref());
    e.opt(mount.source.as_deref());
    e.opt(mount.from.as_deref());
    e.opt(mount.id.as_deref());
    e.flag(mount.read_only);
    e.opt(mount.sharing.map(|s| format!("{s:?}")).as_deref());
    e.flag(mount.required);
    e.opt(mount.size.map(|n| n.to_string()).as_deref());
    e.opt(mount.mode.map(|n| n.to_string()).as_deref());
    e.opt(mount.uid.map(|n| n.to_string()).as_deref());
    e.opt(mount.gid.map(|n| n.to_string()).as_deref());
    e.opt(mount.env.as_deref());
}

/// Whether `name` is one of the proxy variables BuildKit keeps out of cache keys.
fn is_proxy(name: &str) -> bool {
    ["http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "all_proxy"]
        .iter()
        .any(|p| name.eq_ignore_ascii_case(p))
}

/// The canonical encoding, hashed as it is written.
struct Encoder {
    hasher: Sha256,
}

impl Encoder {
    fn new(kind: &str) -> Encoder {
        let mut e = Encoder {
            hasher: Sha256::new(),
        };
        e.str(VERSION);
        e.str(kind);
        e
    }

    fn len(&mut self, n: usize) {
        self.hasher.update((n as u64).to_be_bytes());
    }

    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.hasher.update(s.as_bytes());
    }

    fn strs(&mut self, items: &[String]) {
        self.len(items.len());
        for item in items {
            self.str(item);
        }
    }

    fn opt(&mut self, s: Option<&str>) {
        match s {
            None => self.hasher.update([0]),
            Some(s) => {
                self.hasher.update([1]);
                self.str(s);
            }
        }
    }

    fn flag(&mut self, yes: bool) {
        self.hasher.update([u8::from(yes)]);
    }

    fn key(&mut self, key: &CacheKey) {
        self.str(key.digest().as_str());
    }

    fn finish(self) -> CacheKey {
        let hex = hex::encode(self.hasher.finalize());
        CacheKey(Digest::from_hex(&hex).expect("sha256 hex is a digest"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::solver::op::CopySource;

    fn run_op() -> RunOp {
        RunOp {
            args: vec!["/bin/sh".into(), "-c".into(), "make".into()],
            env: vec![("PATH".into(), "/bin".into()), ("V".into(), "1".into())],
            proxy_env: vec![],
            cwd: "/".into(),
            user: String::new(),
            network: Network::Default,
            security: Security::Sandbox,
            mounts: vec![],
            script: None,
        }
    }

    fn copy_op() -> CopyOp {
        CopyOp {
            add: false,
            source: CopySource::Context,
            sources: vec!["src".into()],
            inline: vec![],
            dest: "/app/".into(),
            chown: None,
            chmod: None,
            link: false,
            parents: false,
            excludes: vec![],
            checksum: None,
            unpack: false,
            keep_git_dir: false,
        }
    }

    #[test]
    fn keys_are_stable_and_chain() {
        let base = scratch("linux/amd64");
        // Pinned: a change here is a change of encoding, which needs a new version tag.
        assert_eq!(
            base.to_string(),
            "sha256:7137cc9d663f0ee2a8e070064fa80982efa4c2033ccc976df3b3d7aef0e97d27"
        );
        assert_ne!(base, scratch("linux/arm64"));
        let a = run(&base, &run_op(), &[]);
        let b = run(&a, &run_op(), &[]);
        assert_ne!(a, b, "the parent is part of the key");
    }

    #[test]
    fn run_keys_see_env_but_not_proxies() {
        let base = scratch("linux/amd64");
        let plain = run(&base, &run_op(), &[]);
        let mut other = run_op();
        other.env[1].1 = "2".into();
        assert_ne!(plain, run(&base, &other, &[]));
        let mut proxied = run_op();
        proxied
            .env
            .push(("HTTP_PROXY".into(), "http://proxy:3128".into()));
        proxied
            .proxy_env
            .push(("http_proxy".into(), "http://proxy:3128".into()));
        assert_eq!(plain, run(&base, &proxied, &[]));
        let mut offline = run_op();
        offline.network = Network::None;
        assert_ne!(plain, run(&base, &offline, &[]));
    }

    #[test]
    fn copy_keys_see_content_and_flags() {
        let base = scratch("linux/amd64");
        let one = Digest::of(b"one");
        let two = Digest::of(b"two");
        let k = copy(&base, &copy_op(), CopyInputKey::Context(&one));
        assert_eq!(k, copy(&base, &copy_op(), CopyInputKey::Context(&one)));
        assert_ne!(k, copy(&base, &copy_op(), CopyInputKey::Context(&two)));
        let mut chowned = copy_op();
        chowned.chown = Some("app".into());
        assert_ne!(k, copy(&base, &chowned, CopyInputKey::Context(&one)));
        let mut split = copy_op();
        split.sources = vec!["sr".into(), "c".into()];
        assert_ne!(k, copy(&base, &split, CopyInputKey::Context(&one)));
        let mut add = copy_op();
        add.add = true;
        assert_ne!(k, copy(&base, &add, CopyInputKey::Context(&one)));
    }
}
