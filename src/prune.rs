//! `kiln image prune`: remove dangling images (with `-a`, every image) and unused blobs.
//!
//! kiln keeps no image without a name: what Docker calls dangling are here the images stored under
//! a dangling name (an unnamed `import` or `load`). Without `-a` those go; with `-a` every image
//! does (kiln runs no containers, so none is in use). Either way the blobs no image needs any
//! more, such as leftovers of interrupted writes, are reclaimed and counted.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Result, bail};
use kiln_builder::store::{Image, ImageStore};

use crate::Global;
use crate::images::{created, real_names};
use crate::rmi::{collect, print_removal};

/// `kiln image prune [OPTIONS]`
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Remove all images, not just dangling ones.
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    force: bool,
    /// Only images created before: until=TIMESTAMP|DURATION; with (or without, `label!=`) a label:
    /// label=KEY[=VALUE].
    #[arg(long = "filter", value_name = "FILTER")]
    filter: Vec<String>,
}

enum Filter {
    Until(i64),
    Label {
        key: String,
        value: Option<String>,
        present: bool,
    },
}

pub(crate) fn run(args: &Args, global: &Global) -> Result<()> {
    let filters = parse_filters(&args.filter)?;
    if !args.force && !confirm(args.all)? {
        return Ok(());
    }
    let store = ImageStore::open(&global.root())?;
    let candidates: Vec<Image> = store
        .list()?
        .into_iter()
        .filter(|image| args.all || real_names(image).next().is_none())
        .filter(|image| matches(image, &filters))
        .collect();
    let mut out = std::io::stdout().lock();
    let mut header = false;
    for image in candidates {
        let removal = store.remove(image.id.as_str(), true)?;
        if !header {
            writeln!(out, "Deleted Images:")?;
            header = true;
        }
        print_removal(&mut out, &removal, "untagged", "deleted")?;
    }
    let reclaimed = collect(&store)?;
    if header {
        writeln!(out)?;
    }
    writeln!(
        out,
        "Total reclaimed space: {}",
        crate::format::human_size(reclaimed, 4)
    )?;
    Ok(())
}

fn parse_filters(specs: &[String]) -> Result<Vec<Filter>> {
    specs
        .iter()
        .map(|spec| {
            let Some((key, value)) = spec.split_once('=') else {
                bail!("bad format of filter (expected name=value)");
            };
            let (key, present) = match key.strip_suffix('!') {
                Some(key) => (key, false),
                None => (key, true),
            };
            Ok(match key {
                "until" if present => Filter::Until(until(value)?),
                "label" => {
                    let (key, value) = match value.split_once('=') {
                        Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                        None => (value.to_owned(), None),
                    };
                    Filter::Label { key, value, present }
                }
                _ => bail!("invalid filter '{}'", spec.split('=').next().unwrap_or_default()),
            })
        })
        .collect()
}

/// `until=`: an RFC 3339 time, unix seconds, or a Go duration before now (`24h`, `90m`, `1h30m`).
pub(crate) fn until(value: &str) -> Result<i64> {
    if let Some(time) = crate::format::Timestamp::parse(value) {
        return Ok(time.unix());
    }
    if let Ok(seconds) = value.parse::<i64>() {
        return Ok(seconds);
    }
    let mut total = 0f64;
    let mut number = String::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push(chars.next().unwrap_or_default());
        }
        let scale = match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => bail!("invalid filter 'until={value}': not a time or duration"),
        };
        let n: f64 = number
            .parse()
            .map_err(|_| anyhow::anyhow!("invalid filter 'until={value}'"))?;
        total += n * scale;
        number.clear();
    }
    if !number.is_empty() || value.is_empty() {
        bail!("invalid filter 'until={value}': not a time or duration");
    }
    #[allow(clippy::cast_possible_truncation)] // durations of images are far below i64 seconds
    Ok(crate::format::now() - total as i64)
}

fn matches(image: &Image, filters: &[Filter]) -> bool {
    let labels = image
        .config
        .config()
        .as_ref()
        .and_then(|config| config.labels().clone())
        .unwrap_or_default();
    filters.iter().all(|filter| match filter {
        Filter::Until(limit) => created(image) < *limit,
        Filter::Label { key, value, present } => {
            let has = labels
                .get(key)
                .is_some_and(|v| value.as_ref().is_none_or(|want| want == v));
            has == *present
        }
    })
}

/// Docker's image-prune prompt.
fn confirm(all: bool) -> Result<bool> {
    let what = if all {
        "all images without at least one container associated to them"
    } else {
        "all dangling images"
    };
    confirm_warning(&format!(
        "WARNING! This will remove {what}.\nAre you sure you want to continue?"
    ))
}

/// Docker's confirmation prompt (`{warning} [y/N] `), on stderr (stdout is for data); only `y` or
/// `yes` goes ahead.
#[allow(clippy::print_stderr)]
pub(crate) fn confirm_warning(warning: &str) -> Result<bool> {
    eprint!("{warning} [y/N] ");
    if !std::io::stdin().is_terminal() {
        eprintln!();
    }
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim().to_lowercase().as_str(), "y" | "yes"))
}
