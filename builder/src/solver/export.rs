//! Export: the target stage's state and layer chain become an image config and manifest in the
//! store, named by the request's tags, then written to the requested outputs.
//!
//! An untagged build still yields an image ID and keeps the image: the store keeps only named images,
//! so it is stored under its *dangling name* (`store::dangling_name`), which `kiln images` shows as
//! `<none>` and `kiln image prune` removes, as Docker keeps untagged build results. When the request
//! names outputs and the store is not one of them, the dangling name is dropped again after export,
//! leaving the blobs to the garbage collector (and the cache records, which keep the layers).

use std::io::Write as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::BuildOutcome;
use super::engine::{ActiveSnapshot, ExportLayer, LocalEngine};
use super::error::BuildError;
use super::image::ImageConfig;
use super::request::{BuildRequest, Output};
use super::scheduler::StageResult;
use crate::archive::{self, SaveRequest};
use crate::content::Digest;
use crate::store::{ImageStore, dangling_name};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// The final image config: the stage's config with the request's labels, the layers' diff IDs, and
/// creation times on the new history entries and the image.
///
/// As BuildKit does, a step's history entry shows when the step ran, kept from its cache record, so
/// a fully cached rebuild yields the very same image. Config-only entries and the image itself take
/// the newest of those times; `now` serves only a build that made no layer.
pub(crate) fn final_config(
    result: &StageResult,
    layers: &[ExportLayer],
    request: &BuildRequest,
    now: SystemTime,
) -> ImageConfig {
    let mut config = result.state.image.clone();
    config
        .config
        .labels
        .extend(request.labels().iter().map(|(k, v)| (k.clone(), v.clone())));
    config.rootfs.diff_ids = layers.iter().map(|l| l.layer.diff_id.to_string()).collect();
    let newest = layers.iter().filter_map(|l| l.created).max().unwrap_or(now);
    let mut layer_index = 0;
    for entry in &mut config.history {
        let layer_time = if entry.empty_layer {
            None
        } else {
            layer_index += 1;
            layers.get(layer_index - 1).and_then(|l| l.created)
        };
        if entry.created.is_none() {
            entry.created = Some(rfc3339(layer_time.unwrap_or(newest)));
        }
    }
    config.created = Some(rfc3339(newest));
    if let Some(platform) = request.platform() {
        platform.os().clone_into(&mut config.os);
        platform.architecture().clone_into(&mut config.architecture);
        config.variant = platform.variant().map(str::to_owned);
    }
    config
}

/// Stores the image and writes the outputs.
pub(crate) fn export(
    engine: &LocalEngine,
    result: &StageResult,
    layers: &[ExportLayer],
    request: &BuildRequest,
) -> Result<BuildOutcome, BuildError> {
    let store = &*engine.store;
    let config = final_config(result, layers, request, SystemTime::now());
    let config_bytes = serde_json::to_vec(&config).map_err(|e| export_error("the image config", e))?;
    let config_digest = Digest::of(&config_bytes);
    let descriptors: Vec<serde_json::Value> = layers
        .iter()
        .map(|ExportLayer { layer: l, .. }| {
            serde_json::json!({"mediaType": l.media_type, "digest": l.digest.to_string(), "size": l.size})
        })
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest.to_string(), "size": config_bytes.len()},
        "layers": descriptors,
    });
    let manifest_bytes = serde_json::to_vec(&manifest).map_err(|e| export_error("the manifest", e))?;
    let image = if let Some(image) = named_already(store, request, &Digest::of(&manifest_bytes))? {
        // A no-op rebuild: the names already point at this very image, whose blobs they keep.
        image
    } else {
        // One commit puts every blob of the image under the build's lease before it is named;
        // naming it checks that they are all there.
        let mut protect: Vec<&Digest> = layers.iter().map(|l| &l.layer.digest).collect();
        protect.push(&config_digest);
        engine.protect(&protect)?;
        store
            .content()
            .write_blob(&config_bytes)
            .map_err(|e| BuildError::Store(e.into()))?;
        store.put_image_or_dangling(request.tags(), &manifest_bytes)?
    };
    let manifest_digest = Digest::of(&manifest_bytes);
    let wants_store = request.outputs().is_empty() || request.outputs().contains(&Output::Store);
    for output in request.outputs() {
        match output {
            Output::Store => {}
            Output::DockerTar(archive) | Output::OciTar(archive) => {
                // Archives carry compressed layers (gzip unless asked otherwise), as BuildKit writes
                // them; the store keeps plain ones.
                let converted = store.compressed(
                    &image,
                    archive.compression,
                    archive.force_compression,
                    engine.lease.get()?,
                )?;
                save(store, &converted, request, &archive.dest)?;
            }
            Output::Local(dir) => local(engine, result, dir)?,
        }
    }
    if !wants_store && request.tags().is_empty() {
        // Best effort: a leftover dangling name is what `image prune` is for.
        let _ = store.untag(&dangling_name(&manifest_digest));
    }
    Ok(BuildOutcome {
        image_id: image.id,
        manifest_digest,
        names: request.tags().to_vec(),
        config,
    })
}

/// The stored image, if every name the build gives (its dangling name when it has none) already
/// points at the manifest `digest`.
fn named_already(
    store: &ImageStore,
    request: &BuildRequest,
    digest: &Digest,
) -> Result<Option<crate::store::Image>, BuildError> {
    let dangling = [dangling_name(digest)];
    let names = if request.tags().is_empty() {
        &dangling[..]
    } else {
        request.tags()
    };
    let mut found = None;
    for name in names {
        match store.resolve(&name.to_string()) {
            Ok(image) if image.target.digest().as_ref() == digest.as_str() => found = Some(image),
            Ok(_) | Err(crate::store::StoreError::ImageNotFound { .. }) => return Ok(None),
            Err(error) => return Err(error.into()),
        }
    }
    Ok(found)
}

/// `-o type=docker|oci,dest=F`: a `docker save` tarball (also an OCI layout), written atomically.
fn save(
    store: &ImageStore,
    image: &crate::store::Image,
    request: &BuildRequest,
    path: &Path,
) -> Result<(), BuildError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let temp =
        tempfile::NamedTempFile::new_in(dir).map_err(|e| export_error(&path.display().to_string(), e))?;
    let requests = [SaveRequest {
        image: image.clone(),
        names: request.tags().to_vec(),
    }];
    let mut file = archive::save(store, &requests, temp, &archive::NoProgress)
        .map_err(|e| export_error(&path.display().to_string(), e))?;
    file.flush()
        .map_err(|e| export_error(&path.display().to_string(), e))?;
    file.as_file()
        .sync_all()
        .map_err(|e| export_error(&path.display().to_string(), e))?;
    file.persist(path)
        .map_err(|e| export_error(&path.display().to_string(), e.error))?;
    Ok(())
}

/// `-o type=local,dest=DIR`: the final filesystem, copied out of a read-only view.
fn local(engine: &LocalEngine, result: &StageResult, dir: &Path) -> Result<(), BuildError> {
    std::fs::create_dir_all(dir).map_err(|e| export_error(&dir.display().to_string(), e))?;
    let Some(snapshot) = &result.chain.snapshot else {
        return Ok(());
    };
    let (_view, mounts) = ActiveSnapshot::view(&*engine.snapshotter, Some(snapshot))?;
    let source = tempfile::tempdir().map_err(|e| export_error("a mount point", e))?;
    let guard = kiln_snapshotter::mount::mount_all(&mounts, source.path())?;
    let mut spec = crate::fsop::CopySpec::new(["/"], "/");
    spec.ownership = crate::fsop::Ownership::from_stage(None);
    spec.follow_symlinks = false;
    crate::fsop::copy(source.path(), dir, &spec).map_err(|e| export_error(&dir.display().to_string(), e))?;
    guard.unmount()?;
    Ok(())
}

fn export_error(target: &str, source: impl std::error::Error + Send + Sync + 'static) -> BuildError {
    BuildError::Export {
        target: target.to_owned(),
        source: Box::new(source),
    }
}

/// A time as RFC 3339 in UTC with nanoseconds (Go's `time.RFC3339Nano`, as image configs write it).
pub(crate) fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let nanos = since.subsec_nanos();
    let fraction = if nanos == 0 {
        String::new()
    } else {
        format!(".{nanos:09}").trim_end_matches('0').to_owned()
    };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{fraction}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_as_go() {
        let t = UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 120_000_000);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.12Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + std::time::Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }
}
