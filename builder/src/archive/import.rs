//! `import`: a root filesystem tarball becomes a one-layer image, as `docker import` makes it.

use std::io::{self, Read, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use super::ArchiveError;
use super::change::{self, RunConfig};
use super::compress::{decompress, gzip_layer};
use super::layout::{Descriptor, MEDIA_TYPE_CONFIG, MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_MANIFEST, Manifest};
use crate::content::{ContentError, Digest};
use crate::reference::ImageRef;
use crate::store::{Image, ImageStore, host_platform};

/// How long an import may take before its lease lapses (it is released when the import ends).
const IMPORT_LEASE: Duration = Duration::from_secs(24 * 3600);

/// How to make the image around an imported root filesystem.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Dockerfile instructions applied to the config (`--change`), in order.
    pub changes: Vec<String>,
    /// The commit message (`-m`): the config's and the history entry's comment. Without one the
    /// comment is `Imported from <source>`.
    pub message: Option<String>,
    /// `os[/arch[/variant]]`; this machine's platform when `None`.
    pub platform: Option<String>,
    /// Where the tarball came from (a path, or `-` for standard input), for the default comment.
    pub source: String,
}

/// Imports a root filesystem tarball (plain, gzip or zstd) as a one-layer image named `names`
/// (dangling when there are none).
///
/// The tar stream is checked to be well formed and stored as it is, gzip-compressed; its
/// digest is the layer's diff_id. The config gets the platform, the `--change`s, and one history
/// entry.
pub fn import(
    store: &ImageStore,
    input: impl Read + Send,
    names: &[ImageRef],
    options: &ImportOptions,
) -> Result<Image, ArchiveError> {
    let mut config = RunConfig::default();
    change::apply(&mut config, &options.changes)?;
    let platform = Platform::parse(options.platform.as_deref())?;
    let lease = store.lease(IMPORT_LEASE)?;

    let ingest = store.content().ingest(None)?;
    let temp = ingest.temp_path().display().to_string();
    let mut layer = gzip_layer(ingest).map_err(|e| ContentError::io("write ingest", &temp, e))?;
    copy_tar(decompress(input)?, &mut layer, &temp)?;
    let (descriptor, mut ingest) = layer
        .finish()
        .map_err(|e| ContentError::io("write ingest", &temp, e))?;
    let diff_id = descriptor.diff_id;
    ingest
        .flush()
        .map_err(|e| ContentError::io("write ingest", &temp, e))?;
    lease.add(&ingest.digest())?;
    let layer = ingest.commit()?;

    let created = rfc3339(SystemTime::now());
    let comment = options
        .message
        .clone()
        .unwrap_or_else(|| format!("Imported from {}", options.source));
    let mut image_config = json!({
        "architecture": platform.architecture,
        "os": platform.os,
        "created": created,
        "comment": comment,
        "config": config,
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        "history": [{ "created": created, "comment": comment }],
    });
    if let Some(variant) = platform.variant {
        image_config["variant"] = json!(variant);
    }
    let config_bytes = serde_json::to_vec(&image_config).expect("a config serialises");
    lease.add(&Digest::of(&config_bytes))?;
    let config_blob = store.content().write_blob(&config_bytes)?;

    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_MANIFEST.to_owned()),
        config: Descriptor::new(MEDIA_TYPE_CONFIG, config_blob.digest, config_blob.size),
        layers: vec![Descriptor::new(MEDIA_TYPE_LAYER_GZIP, layer.digest, layer.size)],
    };
    let manifest = serde_json::to_vec(&manifest).expect("a manifest serialises");
    let image = store.put_image_or_dangling(names, &manifest)?;
    lease.release()?;
    Ok(image)
}

/// Copies a tar stream into `sink` whole, reading it as a tar on the way so that what is not
/// one (or ends early) is refused.
fn copy_tar(input: impl Read, sink: &mut impl Write, temp: &str) -> Result<(), ArchiveError> {
    let mut tee = Tee {
        inner: input,
        sink,
        sink_error: None,
        bytes: 0,
    };
    let result = read_tar(&mut tee);
    if let Some(error) = tee.sink_error.take() {
        return Err(ContentError::io("write ingest", temp, error).into());
    }
    result?;
    if tee.bytes == 0 {
        return Err(ArchiveError::read(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "empty input: not a tar archive",
        )));
    }
    Ok(())
}

fn read_tar(input: &mut impl Read) -> Result<(), ArchiveError> {
    let mut archive = tar::Archive::new(input);
    for entry in archive.entries().map_err(ArchiveError::read)? {
        let mut entry = entry.map_err(ArchiveError::read)?;
        let expected = entry.size();
        let actual = io::copy(&mut entry, &mut io::sink()).map_err(ArchiveError::read)?;
        if actual != expected {
            let name = entry.path().map(|p| p.display().to_string()).unwrap_or_default();
            return Err(ArchiveError::Truncated {
                entry: name,
                expected,
                actual,
            });
        }
    }
    // The end-of-archive blocks and any padding after them belong to the layer too.
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(ArchiveError::read)?;
    Ok(())
}

/// Hands on what it reads to a sink, keeping the sink's error apart from the input's.
struct Tee<'a, R, W> {
    inner: R,
    sink: &'a mut W,
    sink_error: Option<io::Error>,
    bytes: u64,
}

impl<R: Read, W: Write> Read for Tee<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Err(error) = self.sink.write_all(&buf[..n]) {
            let reported = io::Error::new(error.kind(), "layer write failed");
            self.sink_error = Some(error);
            return Err(reported);
        }
        self.bytes += n as u64;
        Ok(n)
    }
}

/// An image platform, as `--platform` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Platform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

impl Platform {
    fn parse(text: Option<&str>) -> Result<Platform, ArchiveError> {
        let (host_os, host_arch) = host_platform();
        let Some(text) = text else {
            return Ok(Platform {
                os: host_os.to_owned(),
                architecture: host_arch.to_owned(),
                variant: None,
            });
        };
        let invalid = || ArchiveError::InvalidPlatform {
            platform: text.to_owned(),
        };
        let parts: Vec<&str> = text.split('/').collect();
        let valid = |part: &&str| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        if parts.len() > 3 || !parts.iter().all(valid) {
            return Err(invalid());
        }
        Ok(Platform {
            os: parts[0].to_owned(),
            architecture: parts.get(1).map_or(host_arch, |arch| *arch).to_owned(),
            variant: parts.get(2).map(|variant| (*variant).to_owned()),
        })
    }
}

/// A time as RFC 3339 in UTC with nanoseconds, the form image configs use.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_nanos()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).expect("1..=31");
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).expect("1..=12");
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_format_as_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let time = UNIX_EPOCH + Duration::new(1_709_251_199, 5);
        assert_eq!(rfc3339(time), "2024-02-29T23:59:59.000000005Z");
    }

    #[test]
    fn platforms_parse_with_host_defaults() {
        let (os, arch) = host_platform();
        let host = Platform::parse(None).unwrap();
        assert_eq!((host.os.as_str(), host.architecture.as_str()), (os, arch));
        let arm = Platform::parse(Some("linux/arm64/v8")).unwrap();
        assert_eq!(arm.variant.as_deref(), Some("v8"));
        assert!(Platform::parse(Some("linux//x")).is_err());
        assert!(Platform::parse(Some("Linux")).is_err());
    }
}
