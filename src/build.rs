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
use kiln_builder::frontend::instruction::csv_record;
use kiln_builder::frontend::syntax::Dockerfile;
use kiln_builder::layer::Compression;
use kiln_builder::platform::{self, Platform};
use kiln_builder::reference::ImageRef;
use kiln_builder::solver::{
    ArchiveOutput, BuildError, BuildRequest, Builder, Network, Output, SecretSource, SshSource, StepFailure,
};

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
    /// Give `RUN --mount=type=secret` a secret: `id=ID,src=PATH` (a file), `id=ID,env=VAR` (a
    /// variable), or `id=ID` alone (the variable ID if it is set, else the file ID).
    #[arg(long = "secret", value_name = "id=ID[,src=PATH|env=VAR]")]
    secrets: Vec<String>,
    /// Give `RUN --mount=type=ssh` an SSH agent: `ID=SOCKET`, or `ID` (`default`) for the agent of
    /// `$SSH_AUTH_SOCK`.
    #[arg(long = "ssh", value_name = "default|ID[=SOCKET]")]
    ssh: Vec<String>,
    /// Where the image goes: `type=docker,dest=F.tar`, `type=oci,dest=F.tar`, `type=local,dest=DIR`,
    /// `type=image` (the store), or a directory (local). Archives take
    /// `compression=uncompressed|gzip|zstd`, `compression-level=N`, `force-compression=true`.
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
    let printer = Printer::new(args.progress.resolve(args.quiet));
    let result = builder.build(&request, &printer);
    // The live view leaves its last frame before anything else prints.
    printer.finish();
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(BuildError::StepFailed(failure)) => {
            print_failure(&failure);
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
    for spec in &args.secrets {
        let (id, source) = parse_secret(spec).with_context(|| format!("invalid --secret {spec}"))?;
        request = request.secret(id, source);
    }
    for spec in &args.ssh {
        let (id, source) = parse_ssh(spec).with_context(|| format!("invalid --ssh {spec}"))?;
        request = request.ssh(id, source);
    }
    Ok(request.build())
}

/// The fields of a flag value that buildx reads as one CSV record (`-o`, `--secret`): split at commas,
/// where a field in double quotes may hold commas (`"src=/a,b"`) and `""` stands for a quote.
fn csv_fields(spec: &str) -> Result<Vec<String>> {
    csv_record(spec).with_context(|| format!("invalid value {spec:?}"))
}

/// `-o` as buildx reads it: `type=...,dest=...`, or a bare path for a local export. Archive
/// outputs also take BuildKit's `compression=uncompressed|gzip|zstd`, `compression-level=N` and
/// `force-compression=true|false`.
fn parse_output(spec: &str) -> Result<Output> {
    if !spec.contains('=') {
        return Ok(Output::Local(PathBuf::from(spec)));
    }
    let mut kind = None;
    let mut dest = None;
    let mut compression = None;
    let mut level = None;
    let mut force = None;
    for field in &csv_fields(spec)? {
        match field.split_once('=') {
            Some(("type", value)) => kind = Some(value.to_owned()),
            Some(("dest", value)) => dest = Some(PathBuf::from(value)),
            Some(("compression", value)) => compression = Some(value.to_owned()),
            Some(("compression-level", value)) => {
                level = Some(
                    value
                        .parse::<i32>()
                        .with_context(|| format!("invalid compression-level {value:?}: not a number"))?,
                );
            }
            Some(("force-compression", value)) => {
                force = Some(
                    value
                        .parse::<bool>()
                        .with_context(|| format!("invalid force-compression {value:?}: true or false"))?,
                );
            }
            _ => anyhow::bail!("unsupported output option {field:?} in {spec:?}"),
        }
    }
    let need_dest = |kind: &str| {
        dest.clone()
            .with_context(|| format!("output type {kind} needs dest=..."))
    };
    let archive = |kind: &str| -> Result<ArchiveOutput> {
        let compression = archive_compression(compression.as_deref(), level)?;
        Ok(ArchiveOutput {
            dest: need_dest(kind)?,
            compression,
            force_compression: force.unwrap_or(false),
        })
    };
    if !matches!(kind.as_deref(), Some("docker" | "oci"))
        && (compression.is_some() || level.is_some() || force.is_some())
    {
        anyhow::bail!("compression options apply to type=oci and type=docker outputs only, not {spec:?}");
    }
    Ok(match kind.as_deref() {
        Some("docker") => Output::DockerTar(archive("docker")?),
        Some("oci") => Output::OciTar(archive("oci")?),
        Some("local") => Output::Local(need_dest("local")?),
        Some("image") => Output::Store,
        other => anyhow::bail!("unsupported output type {:?}", other.unwrap_or_default()),
    })
}

/// An archive's layer compression from `compression=` and `compression-level=` (BuildKit's ranges:
/// gzip 0-9, zstd 1-22, default levels kiln's own).
fn archive_compression(name: Option<&str>, level: Option<i32>) -> Result<Compression> {
    let out_of_range = |name: &str, range: &str, level: i32| {
        anyhow::anyhow!("compression-level {level} is out of {name}'s range {range}")
    };
    Ok(match (name.unwrap_or("gzip"), level) {
        ("gzip", None) => Compression::GZIP,
        ("gzip", Some(level)) => Compression::Gzip {
            level: u32::try_from(level)
                .ok()
                .filter(|l| *l <= 9)
                .ok_or_else(|| out_of_range("gzip", "0-9", level))?,
        },
        ("zstd", None) => Compression::ZSTD,
        ("zstd", Some(level)) if (1..=22).contains(&level) => Compression::Zstd { level },
        ("zstd", Some(level)) => return Err(out_of_range("zstd", "1-22", level)),
        ("uncompressed", None) => Compression::Uncompressed,
        ("uncompressed", Some(_)) => anyhow::bail!("compression-level does not apply to uncompressed layers"),
        (other, _) => {
            anyhow::bail!("unsupported compression type {other:?} (uncompressed, gzip and zstd are)")
        }
    })
}

/// `--secret` as buildx reads it: `type=file|env`, `id`, `src`/`source` and `env` fields. Without
/// `src` or `env`, the id names a variable if one is set, else a file; a variable wins over a
/// file, and `type=env` makes `src` the variable's name. A file is checked now (and read when a
/// step mounts it).
fn parse_secret(spec: &str) -> Result<(String, SecretSource)> {
    let (mut id, mut src, mut env, mut env_type) = (None, None, None, false);
    for field in &csv_fields(spec)? {
        let Some((key, value)) = field.split_once('=') else {
            anyhow::bail!("invalid field '{field}' must be a key=value pair");
        };
        match key.to_ascii_lowercase().as_str() {
            "type" if value == "file" || value == "env" => env_type = value == "env",
            "type" => anyhow::bail!("unsupported secret type {value:?}"),
            "id" => id = Some(value.to_owned()),
            "source" | "src" => src = Some(value.to_owned()),
            "env" => env = Some(value.to_owned()),
            other => anyhow::bail!("unexpected key '{other}' in '{field}'"),
        }
    }
    if env_type && env.is_none() {
        env = src.take();
    }
    let id = id.filter(|id| !id.is_empty()).context("secret missing ID")?;
    let source = match (env, src) {
        (Some(name), _) => SecretSource::Env(name),
        (None, None) if std::env::var_os(&id).is_some() => SecretSource::Env(id.clone()),
        (None, src) => {
            let path = PathBuf::from(src.unwrap_or_else(|| id.clone()));
            std::fs::metadata(&path).with_context(|| format!("failed to stat {}", path.display()))?;
            SecretSource::File(std::path::absolute(&path)?)
        }
    };
    Ok((id, source))
}

/// `--ssh ID[=PATH]` as buildx reads it; kiln forwards agent sockets only, not key files. Without a
/// path, the agent is `$SSH_AUTH_SOCK`'s.
fn parse_ssh(spec: &str) -> Result<(String, SshSource)> {
    let (id, paths) = match spec.split_once('=') {
        Some((id, paths)) => (id, Some(paths)),
        None => (spec, None),
    };
    anyhow::ensure!(!id.is_empty(), "missing ID");
    let socket = match paths {
        Some(paths) => {
            anyhow::ensure!(
                !paths.contains(','),
                "one agent socket per ID is supported, not a list"
            );
            PathBuf::from(paths)
        }
        None => std::env::var_os("SSH_AUTH_SOCK")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .context("invalid empty ssh agent socket: make sure SSH_AUTH_SOCK is set")?,
    };
    let meta = std::fs::metadata(&socket).with_context(|| format!("failed to stat {}", socket.display()))?;
    anyhow::ensure!(
        std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()),
        "{} is not an agent socket: SSH key files are not supported, load the key with ssh-add and \
         pass the agent's socket",
        socket.display()
    );
    Ok((id.to_owned(), SshSource::Agent(std::path::absolute(&socket)?)))
}

/// BuildKit's report of a failed step: its last output lines and the Dockerfile lines around it.
#[allow(clippy::print_stderr)]
fn print_failure(failure: &StepFailure) {
    let mut text = String::from("------\n");
    let _ = writeln!(text, " > {}:", failure.vertex);
    for line in &failure.logs {
        let _ = writeln!(text, "{line}");
    }
    text.push_str("------\n");
    let (start, end) = failure.lines;
    if !failure.excerpt.is_empty() {
        let _ = writeln!(
            text,
            "{}:{}",
            failure.file,
            if start == end {
                start.to_string()
            } else {
                format!("{start}-{end}")
            }
        );
        text.push_str("--------------------\n");
        for (number, line) in &failure.excerpt {
            let marker = if (start..=end).contains(number) {
                ">>>"
            } else {
                "   "
            };
            let _ = writeln!(text, "{number:>4} | {marker} {line}");
        }
        text.push_str("--------------------\n");
    }
    eprint!("{text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_values_split_as_csv_records() {
        assert_eq!(csv_fields("id=a,src=b").unwrap(), ["id=a", "src=b"]);
        assert_eq!(csv_fields("id=a,\"src=/x,y\"").unwrap(), ["id=a", "src=/x,y"]);
        assert_eq!(csv_fields("\"a\"\"b\",c").unwrap(), ["a\"b", "c"]);
        assert_eq!(csv_fields("").unwrap(), [""]);
        assert_eq!(csv_fields("a,").unwrap(), ["a", ""]);
        assert!(csv_fields("\"open").is_err());
        assert!(csv_fields("a\"b").is_err());
        assert!(csv_fields("\"a\"b").is_err());
    }

    #[test]
    fn a_quoted_secret_source_may_hold_commas() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a,b");
        std::fs::write(&path, "value").unwrap();
        let (id, source) = parse_secret(&format!("id=tok,\"src={}\"", path.display())).unwrap();
        assert_eq!(id, "tok");
        assert_eq!(source, SecretSource::File(path));
    }
}
