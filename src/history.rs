//! `kiln history` (`kiln image history`): how an image was made, newest step first.

use std::io::Write;

use anyhow::Result;
use kiln_builder::store::ImageStore;
use serde_json::{Value, json};

use crate::Global;
use crate::format::{self, Timestamp, render_rows};

const DEFAULT_TABLE: &str = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";
const HEADERS: &[(&str, &str)] = &[
    ("ID", "IMAGE"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("CreatedBy", "CREATED BY"),
    ("Size", "SIZE"),
    ("Comment", "COMMENT"),
];
/// How much of CREATED BY the table shows unless `--no-trunc`.
const CREATED_BY_WIDTH: usize = 45;

/// `kiln history [OPTIONS] IMAGE`
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The image: a name or an ID (prefix).
    image: String,
    /// Format output: `table`, `table TEMPLATE`, `json`, or a Go template.
    #[arg(long)]
    format: Option<String>,
    /// Print sizes and dates in human readable format.
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set)]
    human: bool,
    /// Don't truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// Only show image IDs.
    #[arg(short, long)]
    quiet: bool,
}

/// One entry of the config's `history`, with the size of its layer.
struct Step {
    created: Option<String>,
    created_by: String,
    comment: String,
    size: u64,
}

pub(crate) fn run(args: &Args, global: &Global) -> Result<()> {
    let store = ImageStore::open(&global.root())?;
    let image = store.resolve(&args.image)?;
    let config: Value = serde_json::from_slice(&store.content().read(&image.id)?)?;
    let manifest: Value = serde_json::from_slice(&store.content().read(&image.manifest)?)?;
    let sizes: Vec<u64> = manifest["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|layer| layer["size"].as_u64().unwrap_or(0))
        .collect();
    let steps = steps(&config, &sizes);
    let rows: Vec<Value> = steps
        .iter()
        .rev()
        .enumerate()
        .map(|(i, step)| {
            let id = if i == 0 {
                format::image_id(&image.id, args.no_trunc)
            } else {
                "<missing>".to_owned()
            };
            row(step, &id, args)
        })
        .collect();
    let format = if args.quiet {
        Some("{{.ID}}")
    } else {
        args.format.as_deref()
    };
    let out = render_rows(format, DEFAULT_TABLE, HEADERS, &rows)?;
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(())
}

/// The config's history, oldest first, each non-empty step matched to the next layer. An image
/// without history gets one step per layer.
fn steps(config: &Value, sizes: &[u64]) -> Vec<Step> {
    let history = config["history"].as_array().cloned().unwrap_or_default();
    if history.is_empty() {
        return sizes
            .iter()
            .map(|&size| Step {
                created: None,
                created_by: String::new(),
                comment: String::new(),
                size,
            })
            .collect();
    }
    let mut layers = sizes.iter();
    history
        .iter()
        .map(|entry| {
            let text = |key: &str| entry[key].as_str().unwrap_or_default().to_owned();
            let empty = entry["empty_layer"].as_bool().unwrap_or(false);
            Step {
                created: entry["created"].as_str().map(str::to_owned),
                created_by: text("created_by"),
                comment: text("comment"),
                size: if empty {
                    0
                } else {
                    layers.next().copied().unwrap_or(0)
                },
            }
        })
        .collect()
}

fn row(step: &Step, id: &str, args: &Args) -> Value {
    let created_by = step.created_by.replace('\t', " ");
    let created_by = if args.no_trunc {
        created_by
    } else {
        ellipsis(&created_by, CREATED_BY_WIDTH)
    };
    let created = step.created.as_deref();
    let (since, size) = if args.human {
        (format::created_since(created), format::human_size(step.size, 3))
    } else {
        let rfc3339 = created
            .and_then(Timestamp::parse)
            .map(Timestamp::rfc3339)
            .unwrap_or_default();
        (rfc3339, step.size.to_string())
    };
    json!({
        "ID": id,
        "CreatedSince": since,
        "CreatedAt": created.and_then(Timestamp::parse).map(Timestamp::rfc3339).unwrap_or_default(),
        "CreatedBy": created_by,
        "Size": size,
        "Comment": step.comment,
    })
}

/// Docker's `Ellipsis`: cut to `width` characters, the last one `…`.
fn ellipsis(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(width - 1).collect();
    cut.push('…');
    cut
}
