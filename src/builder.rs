//! `kiln builder` (also `kiln buildx`): the build cache, as `docker builder prune` and `docker
//! buildx du` manage BuildKit's.
//!
//! What is dangling, what is in use and what each option removes is the library's call
//! (`kiln_builder::solver::prune`); this module parses the options, asks before removing and
//! prints what happened.

use std::io::Write;
use std::time::Duration;

use anyhow::{Result, bail};
use kiln_builder::solver::{Builder, CachePruneOptions};

use crate::Global;
use crate::format::{human_duration, human_size, tabulate};

/// The `builder` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Remove build cache.
    Prune(PruneArgs),
    /// Disk usage of the build cache.
    Du,
}

/// `kiln builder prune [OPTIONS]`
#[derive(Debug, clap::Args)]
pub(crate) struct PruneArgs {
    /// Remove all unused build cache, not just dangling ones.
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    force: bool,
    /// Only cache unused for a while: until=DURATION or unused-for=DURATION (`24h`, `90m`).
    #[arg(long = "filter", value_name = "FILTER")]
    filter: Vec<String>,
    /// Amount of disk space to keep for cache (`512MB`, `2g`: binary units, as Docker's).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    keep_storage: Option<u64>,
}

pub(crate) fn run(cmd: &Command, global: &Global) -> Result<()> {
    match cmd {
        Command::Prune(args) => prune(args, global),
        Command::Du => du(global),
    }
}

fn prune(args: &PruneArgs, global: &Global) -> Result<()> {
    let options = CachePruneOptions {
        all: args.all,
        unused_for: unused_for(&args.filter)?,
        keep_storage: args.keep_storage,
    };
    let warning = if args.all {
        "WARNING! This will remove all build cache. Are you sure you want to continue?"
    } else {
        "WARNING! This will remove all dangling build cache. Are you sure you want to continue?"
    };
    if !args.force && !crate::prune::confirm_warning(warning)? {
        return Ok(());
    }
    let builder = Builder::open(global.root())?;
    let report = builder.prune_cache(&options)?;
    let mut out = std::io::stdout().lock();
    if !report.removed.is_empty() {
        writeln!(out, "Deleted build cache objects:")?;
        for id in &report.removed {
            writeln!(out, "{id}")?;
        }
        writeln!(out)?;
    }
    writeln!(out, "Total reclaimed space: {}", human_size(report.reclaimed, 4))?;
    Ok(())
}

/// The `until=` / `unused-for=` filters as the one duration the prune keeps (the longest given).
fn unused_for(filters: &[String]) -> Result<Option<Duration>> {
    let mut longest = None;
    for spec in filters {
        let Some((key, value)) = spec.split_once('=') else {
            bail!("bad format of filter (expected name=value)");
        };
        if !matches!(key, "until" | "unused-for" | "unused_for") {
            bail!("invalid filter '{key}' (expected until or unused-for)");
        }
        let cutoff = crate::prune::until(value)?;
        let seconds = u64::try_from(crate::format::now().saturating_sub(cutoff)).unwrap_or(0);
        longest = longest.max(Some(Duration::from_secs(seconds)));
    }
    Ok(longest)
}

/// go-units' `RAMInBytes`: a number with an optional `k`, `m`, `g`, `t` or `p` (times 1024 each),
/// optionally followed by `i` and `b` (`512MB`, `1.5g`, `2GiB`, `100`).
fn parse_size(text: &str) -> Result<u64, String> {
    let invalid = || format!("invalid size: '{text}'");
    let lower = text.trim().to_ascii_lowercase();
    let digits = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits);
    let number: f64 = number.parse().map_err(|_| invalid())?;
    let unit = unit.trim_start();
    let unit = unit.strip_suffix('b').unwrap_or(unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let power = match unit {
        "" => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        "p" => 5,
        _ => return Err(invalid()),
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // sizes fit u64; no sign
    Ok((number * 1024f64.powi(power)) as u64)
}

/// `ID  RECLAIMABLE  SIZE  LAST ACCESSED`, then the reclaimable and total sizes, as `buildx du`.
fn du(global: &Global) -> Result<()> {
    let builder = Builder::open(global.root())?;
    let usage = builder.cache_usage()?;
    let now = std::time::SystemTime::now();
    let mut lines = vec!["ID\tRECLAIMABLE\tSIZE\tLAST ACCESSED".to_owned()];
    for entry in &usage.entries {
        let ago = now.duration_since(entry.last_used).unwrap_or_default().as_secs();
        lines.push(format!(
            "{}\t{}\t{}\t{} ago",
            entry.id,
            !entry.in_use,
            human_size(entry.size, 4),
            human_duration(i64::try_from(ago).unwrap_or(i64::MAX)),
        ));
    }
    let summary = [
        format!("Reclaimable:\t{}", human_size(usage.reclaimable(), 4)),
        format!("Total:\t{}", human_size(usage.size(), 4)),
    ];
    let mut out = std::io::stdout().lock();
    out.write_all(tabulate(&lines).as_bytes())?;
    out.write_all(tabulate(&summary).as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_units() {
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("1k"), Ok(1024));
        assert_eq!(parse_size("512MB"), Ok(512 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1.5g"), Ok(3 << 29));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn filters_give_the_longest_duration() {
        let filters = ["until=1h".to_owned(), "unused-for=90m".to_owned()];
        let unused = unused_for(&filters).unwrap().unwrap();
        assert!(unused.as_secs().abs_diff(5400) <= 2, "{unused:?}");
        assert_eq!(unused_for(&[]).unwrap(), None);
        assert!(unused_for(&["label=a".to_owned()]).is_err());
        assert!(unused_for(&["until".to_owned()]).is_err());
    }
}
