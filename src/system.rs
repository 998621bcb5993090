//! `kiln system df`: how much space images take, and how much could be reclaimed.

use std::collections::HashMap;
use std::io::Write;

use anyhow::Result;
use kiln_builder::content::Digest;
use kiln_builder::solver::Builder;
use serde_json::{Value, json};

use crate::Global;
use crate::format::{human_size, render_rows};

/// The `system` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Show disk usage.
    Df(DfArgs),
}

/// `kiln system df [OPTIONS]`
#[derive(Debug, clap::Args)]
pub(crate) struct DfArgs {
    /// Format output: `table`, `table TEMPLATE`, `json`, or a Go template.
    #[arg(long)]
    format: Option<String>,
}

const DEFAULT_TABLE: &str = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}";
const HEADERS: &[(&str, &str)] = &[
    ("Type", "TYPE"),
    ("TotalCount", "TOTAL"),
    ("Active", "ACTIVE"),
    ("Size", "SIZE"),
    ("Reclaimable", "RECLAIMABLE"),
];

pub(crate) fn run(cmd: &Command, global: &Global) -> Result<()> {
    match cmd {
        Command::Df(args) => df(args, global),
    }
}

/// Images count their blobs once however many images share them. No image is in use (kiln runs
/// no containers), so all of it is reclaimable. The build cache counts its entries (snapshots,
/// records without one, cache mounts); those a running build holds are active, the rest reclaimable.
/// The layers `pull`, `load` and `import` unpack are among them, as those a build unpacks at FROM:
/// Docker's containerd store counts unpacked layers under Images, but in kiln they are build cache,
/// which `builder prune --all` removes (and the next build unpacks again), so they show there.
fn df(args: &DfArgs, global: &Global) -> Result<()> {
    let builder = Builder::open(global.root())?;
    let store = builder.store();
    let images = store.list()?;
    let mut blobs: HashMap<Digest, u64> = HashMap::new();
    for image in &images {
        let manifest: Value = serde_json::from_slice(&store.content().read(&image.manifest)?)?;
        let descriptors =
            std::iter::once(&manifest["config"]).chain(manifest["layers"].as_array().into_iter().flatten());
        for descriptor in descriptors {
            if let (Some(digest), Some(size)) = (descriptor["digest"].as_str(), descriptor["size"].as_u64()) {
                blobs.insert(digest.parse()?, size);
            }
        }
    }
    let size: u64 = blobs.values().sum();
    let cache = builder.cache_usage()?;
    let mut cache_row = row("Build Cache", cache.entries.len(), cache.size(), 0);
    // Docker shows the build cache's reclaimable size without a percentage.
    cache_row["Active"] = cache.in_use().to_string().into();
    cache_row["Reclaimable"] = human_size(cache.reclaimable(), 4).into();
    let rows = [row("Images", images.len(), size, size), cache_row];
    let out = render_rows(args.format.as_deref(), DEFAULT_TABLE, HEADERS, &rows)?;
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(())
}

fn row(kind: &str, total: usize, size: u64, reclaimable: u64) -> Value {
    let reclaimable = match (reclaimable * 100).checked_div(size) {
        Some(percent) => format!("{} ({percent}%)", human_size(reclaimable, 4)),
        None => human_size(reclaimable, 4),
    };
    json!({
        "Type": kind,
        "TotalCount": total.to_string(),
        "Active": "0",
        "Size": human_size(size, 4),
        "Reclaimable": reclaimable,
    })
}
