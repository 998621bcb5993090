//! `kiln save` (`kiln image save`): images to a tarball that `docker load` and OCI tools read.
//!
//! On a terminal each layer gets a bar on stderr while it is written; otherwise a save prints
//! nothing on success, as `docker save` does (the archive may be on stdout).

use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use kiln_builder::archive::{self, SaveRequest};
use kiln_builder::reference::ImageRef;
use kiln_builder::store::{Image, ImageStore};

use crate::Global;
use crate::images::real_names;
use crate::progress::{Direction, Layers, Mode};

/// `kiln save [OPTIONS] IMAGE [IMAGE...]`
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Images: `repo:tag`, a repository (all its tags), or an ID (saved without names).
    #[arg(required = true)]
    images: Vec<String>,
    /// Write to a file, instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

pub(crate) fn run(args: &Args, global: &Global) -> Result<()> {
    if args.output.is_none() && std::io::stdout().is_terminal() {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let store = ImageStore::open(&global.root())?;
    let mut requests: Vec<SaveRequest> = Vec::new();
    for arg in &args.images {
        for (image, names) in select(&store, arg)? {
            match requests.iter_mut().find(|request| request.image.id == image.id) {
                Some(request) => request.names.extend(names),
                None => requests.push(SaveRequest { image, names }),
            }
        }
    }
    for request in &mut requests {
        request.names.sort();
        request.names.dedup();
    }
    let mode = match Mode::detect(false) {
        Mode::Lines => Mode::Silent,
        mode => mode,
    };
    let reporter = Layers::new(Direction::Save, mode);
    if let Some(path) = &args.output {
        return save_to_file(&store, &requests, path, &reporter);
    }
    let out = BufWriter::new(std::io::stdout().lock());
    archive::save(&store, &requests, out, &reporter)?.flush()?;
    Ok(())
}

/// What one argument selects, as `docker save` reads it: a name with a tag (or digest) is that
/// name; a repository alone is every tag of it; an ID is the image without names.
fn select(store: &ImageStore, arg: &str) -> Result<Vec<(Image, Vec<ImageRef>)>> {
    let last = arg.rsplit('/').next().unwrap_or(arg);
    let explicit = last.contains(':') || last.contains('@');
    if let (false, Ok(repository)) = (explicit, arg.parse::<ImageRef>()) {
        let mut selected = Vec::new();
        for image in store.list()? {
            let names: Vec<ImageRef> = real_names(&image)
                .filter(|name| name.name() == repository.name() && name.tag().is_some())
                .cloned()
                .collect();
            if !names.is_empty() {
                selected.push((image, names));
            }
        }
        if !selected.is_empty() {
            return Ok(selected);
        }
    }
    let image = store.resolve(arg)?;
    let by_name = arg
        .parse::<ImageRef>()
        .ok()
        .filter(|name| image.names.contains(name));
    Ok(vec![(image, by_name.into_iter().collect())])
}

/// Writes the archive under a temp name beside `path` and renames it in, so a failed save
/// leaves no partial file.
fn save_to_file(store: &ImageStore, requests: &[SaveRequest], path: &Path, reporter: &Layers) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let temp = tempfile::Builder::new()
        .prefix(".kiln-save-")
        .tempfile_in(dir)
        .with_context(|| format!("failed to save image: create a file in {}", dir.display()))?;
    let out = archive::save(store, requests, BufWriter::new(temp), reporter)?;
    let temp = out.into_inner().map_err(std::io::IntoInnerError::into_error)?;
    temp.as_file().sync_all()?;
    let temp_path = temp.path().to_owned();
    std::fs::set_permissions(&temp_path, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    temp.persist(path)
        .with_context(|| format!("failed to save image: write {}", path.display()))?;
    Ok(())
}
