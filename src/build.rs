//! `kiln build`: builds an image with kiln-builder's solver, or answers BuildKit's `--call=targets` and
//! `--call=outline` about a Dockerfile.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use kiln_builder::context::{ContextStream, StreamedContext};
use kiln_builder::dockerfile::{self, DockerfileSource, DockerfileText, Located};
use kiln_builder::exec::CancelToken;
use kiln_builder::frontend::graph::{self, Outline, Planner, TargetInfo};
use kiln_builder::frontend::syntax::Dockerfile;
use kiln_builder::platform::{self, Platform};
use kiln_builder::reference::ImageRef;
use kiln_builder::solver::{BuildError, BuildRequest, Builder, Network, Output};

use crate::Global;
use crate::progress::vertices::{self as progress, Printer};

/// `kiln build [OPTIONS] CONTEXT`
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The build context: a directory, or `-` for standard input: a tar archive of the context
    /// (plain, gzip, bzip2, xz or zstd), or else a Dockerfile alone (and no context files).
    #[arg(default_value = ".")]
    context: PathBuf,
    /// The Dockerfile, relative to the working directory (to the context root when the context is
    /// a tar archive on standard input; `-` reads it from standard input) [default: CONTEXT/Dockerfile].
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
    /// Name the image (`name:tag`); may be given several times.
    #[arg(short = 't', long = "tag", value_name = "NAME")]
    tags: Vec<String>,
    /// Set a label on the image: `KEY=VALUE`.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Do not use the build cache.
    #[arg(long)]
    no_cache: bool,
    /// Always pull base images, even when they are in the store.
    #[arg(long)]
    pull: bool,
    /// The network RUN steps get: `default`, `none` or `host`.
    #[arg(long, value_name = "MODE", default_value = "default")]
    network: NetworkArg,
    /// Where the image goes: `type=docker,dest=F.tar`, `type=oci,dest=F.tar`, `type=local,dest=DIR`,
    /// `type=image` (the store), or a directory (local).
    #[arg(short = 'o', long = "output", value_name = "OUTPUT")]
    outputs: Vec<String>,
    /// Write the image ID to this file.
    #[arg(long, value_name = "FILE")]
    iidfile: Option<PathBuf>,
    /// How progress is shown: `auto`, `plain`, `tty` or `rawjson`.
    #[arg(long, value_name = "MODE", default_value = "auto")]
    progress: progress::Mode,
    /// Print only the image ID.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum NetworkArg {
    Default,
    None,
    Host,
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

pub(crate) fn run(args: &Args, global: &Global) -> Result<()> {
    let context_from_stdin = context_from_stdin(args)?;
    if args.call.is_none() {
        return build(args, global);
    }
    let source = DockerfileSource::from_flag(args.file.as_deref());
    let text = if context_from_stdin {
        // The Dockerfile may be inside the archive: unpack it, into a directory gone after this.
        let stream = ContextStream::stdin().context("reading the build context from stdin")?;
        StreamedContext::unpack(&stream, &std::env::temp_dir(), &CancelToken::new())?.dockerfile(&source)?
    } else {
        dockerfile::read(&source, &args.context)?
    };
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
        None => unreachable!("handled above"),
    }
}

/// Whether the context is `-` (standard input), which the Dockerfile then cannot be too.
fn context_from_stdin(args: &Args) -> Result<bool> {
    if args.context.as_os_str() != "-" {
        return Ok(false);
    }
    if let DockerfileSource::Stdin = DockerfileSource::from_flag(args.file.as_deref()) {
        anyhow::bail!("invalid argument: can't use stdin for both build context and dockerfile");
    }
    Ok(true)
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

/// Builds the image the options describe.
#[allow(clippy::print_stdout)]
fn build(args: &Args, global: &Global) -> Result<()> {
    let request = request(args)?;
    let builder = Builder::open(global.root())?;
    let mode = match (args.quiet, args.progress) {
        (true, _) => progress::Mode::Quiet,
        (false, progress::Mode::Auto) if std::io::IsTerminal::is_terminal(&std::io::stderr()) => {
            progress::Mode::Tty
        }
        (false, progress::Mode::Auto) => progress::Mode::Plain,
        (false, mode) => mode,
    };
    let printer = Printer::new(mode);
    let outcome = match builder.build(&request, &printer) {
        Ok(outcome) => outcome,
        Err(BuildError::StepFailed(failure)) => {
            print_failure(&failure.vertex, &failure.file, failure.lines, &failure.logs);
            anyhow::bail!("failed to solve: {}", failure.message);
        }
        Err(error) => return Err(anyhow::Error::new(error).context("failed to solve")),
    };
    if let Some(path) = &args.iidfile {
        std::fs::write(path, outcome.image_id.to_string())
            .with_context(|| format!("writing the image ID to {}", path.display()))?;
    }
    if args.quiet {
        println!("{}", outcome.image_id);
    }
    Ok(())
}

/// The request the options describe.
fn request(args: &Args) -> Result<BuildRequest> {
    let mut request = if context_from_stdin(args)? {
        let stream = ContextStream::stdin().context("reading the build context from stdin")?;
        BuildRequest::builder_from_stream(stream)
    } else {
        BuildRequest::builder(&args.context)
    };
    request = request
        .dockerfile(DockerfileSource::from_flag(args.file.as_deref()))
        .no_cache(args.no_cache)
        .pull(args.pull)
        .cancel_on_ctrl_c(true)
        .network(match args.network {
            NetworkArg::Default => Network::Default,
            NetworkArg::None => Network::None,
            NetworkArg::Host => Network::Host,
        });
    for (name, value) in build_args(&args.build_arg) {
        request = request.build_arg(name, value);
    }
    if let Some(target) = &args.target {
        request = request.target(target);
    }
    if let Some(spec) = &args.platform {
        let platform =
            Platform::parse(spec, &platform::host()).with_context(|| format!("invalid --platform {spec}"))?;
        request = request.platform(platform);
    }
    for tag in &args.tags {
        let name = ImageRef::parse(tag).with_context(|| format!("invalid tag {tag:?}"))?;
        request = request.tag(name);
    }
    for label in &args.labels {
        let (key, value) = label.split_once('=').unwrap_or((label, ""));
        request = request.label(key, value);
    }
    for output in &args.outputs {
        request = request.output(parse_output(output)?);
    }
    Ok(request.build())
}

/// `-o` as buildx reads it: `type=...,dest=...`, or a bare path for a local export.
fn parse_output(spec: &str) -> Result<Output> {
    if !spec.contains('=') {
        return Ok(Output::Local(PathBuf::from(spec)));
    }
    let mut kind = None;
    let mut dest = None;
    for field in spec.split(',') {
        match field.split_once('=') {
            Some(("type", value)) => kind = Some(value.to_owned()),
            Some(("dest", value)) => dest = Some(PathBuf::from(value)),
            _ => anyhow::bail!("unsupported output option {field:?} in {spec:?}"),
        }
    }
    let need_dest = |kind: &str| {
        dest.clone()
            .with_context(|| format!("output type {kind} needs dest=..."))
    };
    Ok(match kind.as_deref() {
        Some("docker") => Output::DockerTar(need_dest("docker")?),
        Some("oci") => Output::OciTar(need_dest("oci")?),
        Some("local") => Output::Local(need_dest("local")?),
        Some("image") => Output::Store,
        other => anyhow::bail!("unsupported output type {:?}", other.unwrap_or_default()),
    })
}

/// BuildKit's report of a failed step: its last output lines and the Dockerfile lines around it.
#[allow(clippy::print_stderr)]
fn print_failure(vertex: &str, file: &str, (start, end): (usize, usize), logs: &[String]) {
    let mut text = String::from("------\n");
    let _ = writeln!(text, " > {vertex}:");
    for line in logs {
        let _ = writeln!(text, "{line}");
    }
    text.push_str("------\n");
    if let Ok(source) = std::fs::read_to_string(file) {
        let lines: Vec<&str> = source.lines().collect();
        let first = start.saturating_sub(2).max(1);
        let last = (end + 2).min(lines.len());
        let _ = writeln!(
            text,
            "{file}:{}",
            if start == end {
                start.to_string()
            } else {
                format!("{start}-{end}")
            }
        );
        text.push_str("--------------------\n");
        for number in first..=last {
            let marker = if (start..=end).contains(&number) {
                ">>>"
            } else {
                "   "
            };
            let _ = writeln!(text, "{number:>4} | {marker} {}", lines[number - 1]);
        }
        text.push_str("--------------------\n");
    }
    eprint!("{text}");
}
