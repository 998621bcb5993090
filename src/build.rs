//! `kiln build`: for now, what BuildKit's `--call=targets` and `--call=outline` answer about a
//! Dockerfile (the build itself lands with its issue).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use kiln_builder::dockerfile::{self, DockerfileSource, DockerfileText, Located};
use kiln_builder::frontend::graph::{self, Outline, Planner, TargetInfo};
use kiln_builder::frontend::syntax::Dockerfile;
use kiln_builder::platform::{self, Platform};

/// `kiln build [OPTIONS] CONTEXT`
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The build context: a directory.
    #[arg(default_value = ".")]
    context: PathBuf,
    /// The Dockerfile, relative to the working directory (`-` reads it from standard input)
    /// [default: CONTEXT/Dockerfile].
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    /// The stage to build [default: the last one].
    #[arg(long, value_name = "STAGE")]
    target: Option<String>,
    /// Set a build-time variable: `NAME=VALUE`, or `NAME` to take it from the environment.
    #[arg(long = "build-arg", value_name = "NAME[=VALUE]")]
    build_arg: Vec<String>,
    /// The platform to build for (`linux/amd64`) [default: the host's].
    #[arg(long, value_name = "PLATFORM")]
    platform: Option<String>,
    /// Answer a question about the Dockerfile instead of building: `targets` lists the stages a
    /// build can target, `outline` shows the target's stages and the build args it uses.
    #[arg(long, value_name = "QUESTION")]
    call: Option<Call>,
    /// How `--call` answers: `text` (a table) or `json`.
    #[arg(long, value_name = "FORMAT", default_value = "text", requires = "call")]
    format: Format,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Call {
    Targets,
    Outline,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

pub(crate) fn run(args: &Args) -> Result<()> {
    let text = dockerfile::read(&DockerfileSource::from_flag(args.file.as_deref()), &args.context)?;
    let tree = text.parse()?;
    match args.call {
        Some(Call::Targets) => {
            let targets = graph::targets(&tree).map_err(|e| locate(&text, e))?;
            print_targets(&targets, args.format)
        }
        Some(Call::Outline) => {
            let outline = plan(args, &text, &tree)?.outline();
            print_outline(&outline, args.format)
        }
        None => {
            plan(args, &text, &tree)?;
            anyhow::bail!(
                "building images is not supported by this version of kiln yet; \
                 `--call=targets` and `--call=outline` are"
            )
        }
    }
}

/// Plan the build the options describe.
fn plan(args: &Args, text: &DockerfileText, tree: &Dockerfile) -> Result<graph::BuildGraph> {
    let host = platform::host();
    let mut planner = Planner::new(tree, host.clone()).build_args(build_args(&args.build_arg));
    if let Some(target) = &args.target {
        planner = planner.target(target);
    }
    if let Some(spec) = &args.platform {
        let platform = Platform::parse(spec, &host).with_context(|| format!("invalid --platform {spec}"))?;
        planner = planner.platform(platform);
    }
    Ok(planner.plan().map_err(|e| locate(text, e))?)
}

fn locate(text: &DockerfileText, error: graph::Error) -> Located<graph::Error> {
    Located {
        file: text.name.clone(),
        line: error.line(),
        error,
    }
}

/// `--build-arg` values as Docker reads them: `NAME=VALUE`, or `NAME` alone for the environment's
/// value (skipped when the environment has none).
fn build_args(raw: &[String]) -> BTreeMap<String, String> {
    raw.iter()
        .filter_map(|arg| match arg.split_once('=') {
            Some((name, value)) => Some((name.to_owned(), value.to_owned())),
            None => std::env::var(arg).ok().map(|value| (arg.clone(), value)),
        })
        .collect()
}

#[allow(clippy::print_stdout)]
fn print_targets(targets: &[TargetInfo], format: Format) -> Result<()> {
    if let Format::Json = format {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "targets": targets }))?
        );
        return Ok(());
    }
    let rows: Vec<[String; 2]> = targets
        .iter()
        .filter_map(|t| {
            let name = t.name.clone()?;
            let name = if t.default {
                format!("{name} (default)")
            } else {
                name
            };
            Some([name, t.description.clone().unwrap_or_default()])
        })
        .collect();
    print_table(&["TARGET", "DESCRIPTION"], &rows)
}

#[allow(clippy::print_stdout)]
fn print_outline(outline: &Outline, format: Format) -> Result<()> {
    if let Format::Json = format {
        println!("{}", serde_json::to_string_pretty(outline)?);
        return Ok(());
    }
    if let Some(name) = &outline.name {
        println!("TARGET:      {name}");
    }
    if let Some(description) = &outline.description {
        println!("DESCRIPTION: {description}");
    }
    println!();
    let rows: Vec<[String; 3]> = outline
        .args
        .iter()
        .map(|a| {
            [
                a.name.clone(),
                a.value.clone().unwrap_or_else(|| "<UNSET>".to_owned()),
                a.description.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print_table(&["BUILD ARG", "VALUE", "DESCRIPTION"], &rows)?;
    for (title, list) in [("SECRET", &outline.secrets), ("SSH", &outline.ssh)] {
        if !list.is_empty() {
            println!();
            let rows: Vec<[String; 2]> = list
                .iter()
                .map(|s| {
                    [
                        s.name.clone(),
                        if s.required { "required" } else { "" }.to_owned(),
                    ]
                })
                .collect();
            print_table(&[title, "REQUIRED"], &rows)?;
        }
    }
    Ok(())
}

/// Print rows in columns three spaces apart, as `docker buildx` lays out its tables.
fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> Result<()> {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = std::io::stdout().lock();
    let mut line = |cells: Vec<&str>| -> std::io::Result<()> {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == N {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<w$}   ");
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(header.to_vec())?;
    for row in rows {
        line(row.iter().map(String::as_str).collect())?;
    }
    Ok(())
}
