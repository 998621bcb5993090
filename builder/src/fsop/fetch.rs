//! `ADD <url>`: the download, as BuildKit's HTTP source makes it. The file is named after the last
//! segment of the URL's path (`__unnamed__` when there is none), gets mode 0600 and, when the server
//! sends `Last-Modified`, that time as its mtime. Remote archives are never extracted. With
//! `--checksum`, content whose digest differs is refused.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest as _, Sha256, Sha384, Sha512};

use super::FsopError;

/// A downloaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Where it was written (`<dir>/<file_name>`).
    pub path: PathBuf,
    /// Its name, from the URL.
    pub file_name: String,
    /// `sha256:<hex>` of its content (what the cache key of an `ADD <url>` is made of).
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
    /// The server's `Last-Modified`, which is also the file's mtime.
    pub last_modified: Option<SystemTime>,
}

/// A `--checksum` value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Checksum {
    algorithm: Algorithm,
    hex: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    Sha256,
    Sha384,
    Sha512,
}

impl Checksum {
    fn parse(value: &str) -> Result<Checksum, FsopError> {
        let invalid = || FsopError::InvalidChecksum {
            value: value.to_owned(),
        };
        let (algorithm, hex) = value.split_once(':').ok_or_else(invalid)?;
        let (algorithm, len) = match algorithm {
            "sha256" => (Algorithm::Sha256, 64),
            "sha384" => (Algorithm::Sha384, 96),
            "sha512" => (Algorithm::Sha512, 128),
            _ => return Err(invalid()),
        };
        if hex.len() != len || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(invalid());
        }
        Ok(Checksum {
            algorithm,
            hex: hex.to_owned(),
        })
    }
}

/// Hashes as the content streams by: sha256 always, and the `--checksum` algorithm.
struct Hashers {
    sha256: Sha256,
    extra: Option<Extra>,
}

enum Extra {
    Sha384(Sha384),
    Sha512(Sha512),
}

impl Hashers {
    fn new(algorithm: Option<Algorithm>) -> Hashers {
        Hashers {
            sha256: Sha256::new(),
            extra: match algorithm {
                Some(Algorithm::Sha384) => Some(Extra::Sha384(Sha384::new())),
                Some(Algorithm::Sha512) => Some(Extra::Sha512(Sha512::new())),
                _ => None,
            },
        }
    }

    fn update(&mut self, data: &[u8]) {
        self.sha256.update(data);
        match &mut self.extra {
            Some(Extra::Sha384(h)) => h.update(data),
            Some(Extra::Sha512(h)) => h.update(data),
            None => {}
        }
    }

    /// `(sha256 hex, hex of the checksum algorithm)`.
    fn finish(self) -> (String, String) {
        let sha256 = hex::encode(self.sha256.finalize());
        let extra = match self.extra {
            Some(Extra::Sha384(h)) => hex::encode(h.finalize()),
            Some(Extra::Sha512(h)) => hex::encode(h.finalize()),
            None => sha256.clone(),
        };
        (sha256, extra)
    }
}

/// Downloads `url` into the directory `dir` (written under a temporary name, renamed once complete
/// and verified). `checksum` is `--checksum` (`sha256:<hex>`, or sha384/sha512).
///
/// Plain HTTP and HTTPS are both fetched; redirects are followed.
pub fn fetch(url: &str, dir: &Path, checksum: Option<&str>) -> Result<Fetched, FsopError> {
    let checksum = checksum.map(Checksum::parse).transpose()?;
    let fail = |source: Box<dyn std::error::Error + Send + Sync>| FsopError::Fetch {
        url: url.to_owned(),
        source,
    };
    let parsed = reqwest::Url::parse(url).map_err(|e| fail(Box::new(e)))?;
    let file_name = file_name(&parsed);
    let client = reqwest::blocking::Client::builder()
        .build()
        .map_err(|e| fail(Box::new(e)))?;
    let mut response = client.get(parsed).send().map_err(|e| fail(Box::new(e)))?;
    if !response.status().is_success() {
        return Err(FsopError::HttpStatus {
            url: url.to_owned(),
            status: response.status().as_u16(),
        });
    }
    let last_modified = response
        .headers()
        .get(reqwest::header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());

    let dir_text = dir.display().to_string();
    let mut temp = tempfile::Builder::new()
        .prefix(".kiln-fetch-")
        .tempfile_in(dir)
        .map_err(|e| FsopError::io("create a file in", &dir_text, e))?;
    let mut hashers = Hashers::new(checksum.as_ref().map(|c| c.algorithm));
    let mut buffer = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = response.read(&mut buffer).map_err(|e| fail(Box::new(e)))?;
        if n == 0 {
            break;
        }
        hashers.update(&buffer[..n]);
        temp.write_all(&buffer[..n])
            .map_err(|e| FsopError::io("write", &dir_text, e))?;
        size += n as u64;
    }
    let (sha256, actual) = hashers.finish();
    if let Some(checksum) = &checksum {
        if checksum.hex != actual {
            let prefix = match checksum.algorithm {
                Algorithm::Sha256 => "sha256",
                Algorithm::Sha384 => "sha384",
                Algorithm::Sha512 => "sha512",
            };
            return Err(FsopError::ChecksumMismatch {
                url: url.to_owned(),
                expected: format!("{prefix}:{}", checksum.hex),
                actual: format!("{prefix}:{actual}"),
            });
        }
    }
    let path = dir.join(&file_name);
    finish_file(temp.as_file(), last_modified)
        .map_err(|e| FsopError::io("write", &path.display().to_string(), e))?;
    temp.persist(&path)
        .map_err(|e| FsopError::io("write", &path.display().to_string(), e.error))?;
    Ok(Fetched {
        path,
        file_name,
        digest: format!("sha256:{sha256}"),
        size,
        last_modified,
    })
}

/// Mode 0600, the server's mtime, and the content on disk before the rename.
fn finish_file(file: &File, last_modified: Option<SystemTime>) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    if let Some(time) = last_modified {
        file.set_times(std::fs::FileTimes::new().set_modified(time).set_accessed(time))?;
    }
    file.sync_all()
}

/// Go's `path.Base` of the URL's (decoded) path, `__unnamed__` for none.
fn file_name(url: &reqwest::Url) -> String {
    let decoded = percent_decode(url.path());
    let trimmed = decoded.trim_end_matches('/');
    match trimmed.rsplit('/').next() {
        Some(base) if !base.is_empty() && base != "." && base != ".." => base.to_owned(),
        _ => "__unnamed__".to_owned(),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        if bytes[i] == b'%' {
            if let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_urls() {
        let name = |u: &str| file_name(&reqwest::Url::parse(u).unwrap());
        assert_eq!(name("http://h/a/b/tool.tar.gz"), "tool.tar.gz");
        assert_eq!(name("http://h/a/b/"), "b");
        assert_eq!(name("http://h/"), "__unnamed__");
        assert_eq!(name("http://h"), "__unnamed__");
        assert_eq!(name("http://h/x%20y.txt?q=1"), "x y.txt");
        assert_eq!(name("http://h/a/.."), "__unnamed__");
    }

    #[test]
    fn checksums() {
        assert!(Checksum::parse(&format!("sha256:{}", "a".repeat(64))).is_ok());
        assert!(Checksum::parse(&format!("sha512:{}", "0".repeat(128))).is_ok());
        for bad in [
            "sha256:abc",
            "md5:00",
            "deadbeef",
            &format!("sha256:{}", "A".repeat(64)),
        ] {
            assert!(Checksum::parse(bad).is_err(), "{bad}");
        }
    }
}
