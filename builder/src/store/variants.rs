//! Compressed copies of uncompressed layers, for images leaving the store.
//!
//! The layers a build writes are stored as plain tars (their digest is their diff ID): writing a
//! layer then costs one pass over the snapshot and no compression, and a local image is never
//! waiting on gzip, as with Docker's own image store and containers/storage. An image that leaves
//! the store (`kiln push`, `-o type=oci|docker`) gets its plain layers compressed with gzip, which
//! every registry and runtime reads: the copies are blobs of their own, recorded in the
//! `layer_variants` table so that pushing the same layer again (to another tag or registry)
//! compresses nothing, and kept by the garbage collector for as long as their source is. gzip is
//! deterministic here (the same bytes whatever the threads), so a copy made twice has one digest.

use std::io;

use super::manifest::parse_json;
use super::{Image, ImageStore, Lease, StoreError};
use crate::content::{BlobSource as _, ContentError, Digest};
use crate::layer::{Compression, LayerWriter, MEDIA_TYPE_TAR, MEDIA_TYPE_TAR_GZIP};

/// Docker's plain layer media type (images loaded from a classic `docker save`).
const DOCKER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// What `DOCKER_TAR` becomes with gzip.
const DOCKER_TAR_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// How many threads compress one layer (the bytes do not depend on it).
const COMPRESS_THREADS: usize = 2;

/// The gzip media type a plain layer's media type becomes, or `None` if it is not a plain layer.
fn gzip_media_type(media_type: &str) -> Option<&'static str> {
    match media_type {
        MEDIA_TYPE_TAR => Some(MEDIA_TYPE_TAR_GZIP),
        DOCKER_TAR => Some(DOCKER_TAR_GZIP),
        _ => None,
    }
}

impl ImageStore {
    /// `image` as it leaves the store: the same image (same config, same ID) with every plain-tar
    /// layer replaced by a gzip copy, under a new manifest that is stored too. An image without
    /// plain layers, or whose name points at a multi-platform index, is returned as it is.
    ///
    /// Every blob of the returned image (copies, new manifest) is added to `lease`. Copies made
    /// before are reused; the others are made now, which takes a pass of gzip over each layer.
    pub fn compressed(&self, image: &Image, lease: &Lease) -> Result<Image, StoreError> {
        if image.target.digest().as_ref() != image.manifest.as_str() {
            return Ok(image.clone());
        }
        let bytes = self.content.read(&image.manifest)?;
        let mut manifest: serde_json::Value = parse_json("manifest", &image.manifest, &bytes)?;
        let Some(layers) = manifest
            .get_mut("layers")
            .and_then(serde_json::Value::as_array_mut)
        else {
            return Ok(image.clone());
        };
        let mut changed = false;
        for layer in layers.iter_mut() {
            let Some(media_type) = layer
                .get("mediaType")
                .and_then(serde_json::Value::as_str)
                .and_then(gzip_media_type)
            else {
                continue;
            };
            let source = layer
                .get("digest")
                .and_then(serde_json::Value::as_str)
                .and_then(|d| Digest::parse(d).ok())
                .ok_or_else(|| StoreError::UnsupportedDigest {
                    owner: image.manifest.clone(),
                    digest: layer["digest"].to_string(),
                })?;
            let (digest, size) = self.gzip_variant(&source, media_type, lease)?;
            layer["mediaType"] = media_type.into();
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

    /// The gzip copy of the plain layer `source` (digest and size), made now unless a stored one
    /// is recorded. The copy is leased before it is looked at or committed.
    fn gzip_variant(
        &self,
        source: &Digest,
        media_type: &str,
        lease: &Lease,
    ) -> Result<(Digest, u64), StoreError> {
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
        let mut reader = self.content.open(source)?;
        let ingest = self.content.ingest(None)?;
        let temp = ingest.temp_path().to_owned();
        let write_error = |e: io::Error| StoreError::from(ContentError::io("write ingest", &temp, e));
        let mut writer =
            LayerWriter::new(ingest, Compression::GZIP, COMPRESS_THREADS).map_err(write_error)?;
        if let Err(error) = io::copy(&mut reader, &mut writer) {
            // A source that fails verification says so; any other error is the read or write itself.
            return Err(match error.downcast::<ContentError>() {
                Ok(content) => content.into(),
                Err(error) => write_error(error),
            });
        }
        let (descriptor, ingest) = writer.finish().map_err(write_error)?;
        if &descriptor.diff_id != source {
            return Err(ContentError::DigestMismatch {
                expected: source.clone(),
                actual: descriptor.diff_id,
            }
            .into());
        }
        lease.add(&descriptor.digest)?;
        ingest.commit()?;
        self.db.write(|tx| {
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
        Ok((descriptor.digest, descriptor.size))
    }
}
