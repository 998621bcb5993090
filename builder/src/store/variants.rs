//! Compressed copies of uncompressed layers, for images leaving the store.
//!
//! The layers a build writes are stored as plain tars (their digest is their diff ID): writing a
//! layer then costs one pass over the snapshot and no compression, and a local image is never
//! waiting on gzip, as with Docker's own image store and containers/storage. An image that leaves
//! the store (`kiln push`, `-o type=oci|docker`) gets its plain layers compressed with gzip, which
//! every registry and runtime reads (an archive may ask for zstd, or for no compression): the
//! copies are blobs of their own, recorded in the `layer_variants` table so that pushing the same
//! layer again (to another tag or registry) compresses nothing, and kept by the garbage collector
//! for as long as their source is. The compressors are deterministic here (the same bytes whatever
//! the threads), so a copy made twice has one digest.

use std::io;

use super::manifest::parse_json;
use super::{Image, ImageStore, Lease, StoreError};
use crate::content::{BlobSource as _, ContentError, Digest};
use crate::layer::{Compression, LayerWriter, MEDIA_TYPE_TAR, MEDIA_TYPE_TAR_GZIP, MEDIA_TYPE_TAR_ZSTD};

/// Docker's media types for plain and gzip layers (images loaded from a classic `docker save`).
const DOCKER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
const DOCKER_TAR_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// How many threads compress one layer (the bytes do not depend on it).
const COMPRESS_THREADS: usize = 2;

/// What a layer media type says of its blob: whether it is Docker's kind, and its compression
/// (levels aside), or `None` for what is not a tar layer of either kind (foreign layers).
fn layer_kind(media_type: &str) -> Option<(bool, Compression)> {
    Some(match media_type {
        MEDIA_TYPE_TAR => (false, Compression::Uncompressed),
        MEDIA_TYPE_TAR_GZIP => (false, Compression::GZIP),
        MEDIA_TYPE_TAR_ZSTD => (false, Compression::ZSTD),
        DOCKER_TAR => (true, Compression::Uncompressed),
        DOCKER_TAR_GZIP => (true, Compression::GZIP),
        _ => return None,
    })
}

/// The media type of a layer compressed `compression`, in Docker's words for a Docker layer where
/// Docker has them (it has none for zstd).
fn media_type(docker: bool, compression: Compression) -> &'static str {
    match (docker, compression) {
        (true, Compression::Uncompressed) => DOCKER_TAR,
        (true, Compression::Gzip { .. }) => DOCKER_TAR_GZIP,
        _ => compression.media_type(),
    }
}

/// Whether two compressions are the same format (levels aside).
fn same_format(a: Compression, b: Compression) -> bool {
    std::mem::discriminant(&a) == std::mem::discriminant(&b)
}

impl ImageStore {
    /// `image` as it leaves the store: the same image (same config, same ID) with its plain-tar
    /// layers compressed `compression` (and, with `force`, its layers compressed another way too),
    /// under a new manifest that is stored as well. An image with nothing to convert, or whose
    /// name points at a multi-platform index, is returned as it is.
    ///
    /// Every blob of the returned image (copies, new manifest) is added to `lease`. Copies at the
    /// default levels ([`Compression::GZIP`], [`Compression::ZSTD`]) are recorded and reused; the
    /// others are made now, which takes a pass of the compressor over each layer.
    pub fn compressed(
        &self,
        image: &Image,
        compression: Compression,
        force: bool,
        lease: &Lease,
    ) -> Result<Image, StoreError> {
        if image.target.digest().as_ref() != image.manifest.as_str() {
            return Ok(image.clone());
        }
        let bytes = self.content.read(&image.manifest)?;
        let mut manifest: serde_json::Value = parse_json("manifest", &image.manifest, &bytes)?;
        let diff_ids = image.config.rootfs().diff_ids();
        let Some(layers) = manifest
            .get_mut("layers")
            .and_then(serde_json::Value::as_array_mut)
        else {
            return Ok(image.clone());
        };
        let mut changed = false;
        for (index, layer) in layers.iter_mut().enumerate() {
            let Some((docker, current)) = layer
                .get("mediaType")
                .and_then(serde_json::Value::as_str)
                .and_then(layer_kind)
            else {
                continue;
            };
            let plain = current == Compression::Uncompressed;
            if same_format(current, compression) || !(plain || force) {
                continue;
            }
            let bad_digest = |digest: String| StoreError::UnsupportedDigest {
                owner: image.manifest.clone(),
                digest,
            };
            let source = layer
                .get("digest")
                .and_then(serde_json::Value::as_str)
                .and_then(|d| Digest::parse(d).ok())
                .ok_or_else(|| bad_digest(layer["digest"].to_string()))?;
            let diff_id = diff_ids
                .get(index)
                .and_then(|d| Digest::parse(d).ok())
                .ok_or_else(|| bad_digest(format!("diff_ids[{index}]")))?;
            let target = media_type(docker, compression);
            let (digest, size) = self.variant(&source, &diff_id, compression, target, lease)?;
            layer["mediaType"] = target.into();
            layer["digest"] = digest.to_string().into();
            layer["size"] = size.into();
            changed = true;
        }
        if !changed {
            return Ok(image.clone());
        }
        let manifest_bytes = serde_json::to_vec(&manifest).expect("a manifest serialises");
        let digest = Digest::of(&manifest_bytes);
        lease.add(&digest)?;
        self.content.write_blob(&manifest_bytes)?;
        let mut target = image.target.clone();
        target.set_digest(
            digest
                .as_str()
                .parse()
                .map_err(|_| StoreError::UnsupportedDigest {
                    owner: image.manifest.clone(),
                    digest: digest.to_string(),
                })?,
        );
        target.set_size(manifest_bytes.len() as u64);
        let size = manifest["layers"]
            .as_array()
            .map_or(0, |l| l.iter().filter_map(|l| l["size"].as_u64()).sum::<u64>())
            + manifest["config"]["size"].as_u64().unwrap_or(0);
        Ok(Image {
            target,
            manifest: digest,
            size,
            ..image.clone()
        })
    }

    /// The copy of layer `source` (which unpacks to `diff_id`) compressed `compression`, as
    /// `media_type` (digest and size): made now unless a stored one is recorded. The copy is leased
    /// before it is looked at or committed.
    fn variant(
        &self,
        source: &Digest,
        diff_id: &Digest,
        compression: Compression,
        media_type: &str,
        lease: &Lease,
    ) -> Result<(Digest, u64), StoreError> {
        // Only the default levels are recorded: the table's key is the media type, not the level.
        let recorded_level =
            [Compression::Uncompressed, Compression::GZIP, Compression::ZSTD].contains(&compression);
        if recorded_level {
            let recorded: Option<(String, i64)> = self.db.read(|tx| {
                use rusqlite::OptionalExtension as _;
                Ok(tx
                    .query_row(
                        "SELECT digest, size FROM layer_variants WHERE source_digest = ?1 AND media_type = ?2",
                        [source.as_str(), media_type],
                        |row| Ok((row.get(0)?, row.get(1)?)),
                    )
                    .optional()?)
            })?;
            if let Some((digest, size)) = recorded
                && let Ok(digest) = Digest::parse(&digest)
            {
                lease.add(&digest)?;
                if self.content.exists(&digest)? {
                    return Ok((digest, u64::try_from(size).unwrap_or(0)));
                }
            }
        }
        let blob_path = self.content.blob_path(source);
        let read_error = |e: io::Error| StoreError::from(ContentError::io("read blob", &blob_path, e));
        let (mut reader, _) = crate::layer::decompress(self.content.open(source)?)
            .map_err(|e| read_error(io::Error::other(e)))?;
        let ingest = self.content.ingest(None)?;
        let temp = ingest.temp_path().to_owned();
        let write_error = |e: io::Error| StoreError::from(ContentError::io("write ingest", &temp, e));
        let mut writer = LayerWriter::new(ingest, compression, COMPRESS_THREADS).map_err(write_error)?;
        if let Err(error) = io::copy(&mut reader, &mut writer) {
            // A source that fails verification says so; any other error is the read or write itself.
            return Err(match error.downcast::<ContentError>() {
                Ok(content) => content.into(),
                Err(error) => write_error(error),
            });
        }
        let (descriptor, ingest) = writer.finish().map_err(write_error)?;
        if &descriptor.diff_id != diff_id {
            return Err(ContentError::DigestMismatch {
                expected: diff_id.clone(),
                actual: descriptor.diff_id,
            }
            .into());
        }
        lease.add(&descriptor.digest)?;
        ingest.commit()?;
        if recorded_level {
            self.db.write_unsynced(|tx| {
                tx.execute(
                    "INSERT OR REPLACE INTO layer_variants (source_digest, media_type, digest, size)
                     VALUES (?1, ?2, ?3, ?4)",
                    rusqlite::params![
                        source.as_str(),
                        media_type,
                        descriptor.digest.as_str(),
                        i64::try_from(descriptor.size).unwrap_or(i64::MAX)
                    ],
                )?;
                Ok(())
            })?;
        }
        Ok((descriptor.digest, descriptor.size))
    }
}
