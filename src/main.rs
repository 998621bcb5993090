//! The `kiln` command line: a thin layer over kiln-builder.
//!
//! The binary owns stdout (data only), stderr (messages) and exit codes; every subcommand lives in its
//! own module and returns `anyhow::Result`, and `main` turns an error into one `error: ...` line and a
//! non-zero exit.

mod build;
mod builder;
mod debug;
mod format;
mod history;
mod image;
mod images;
mod import;
mod inspect;
mod load;
mod login;
mod progress;
mod prune;
mod pull;
mod push;
mod remote;
mod rmi;
mod run;
mod save;
mod system;
mod tag;
mod unpack;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// kiln builds OCI images from Dockerfiles, without a daemon.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every subcommand shares.
#[derive(Debug, clap::Args)]
pub(crate) struct Global {
    /// Where kiln keeps its images, blobs, snapshots and cache [default: /var/lib/kiln as root,
    /// $XDG_DATA_HOME/kiln otherwise].
    #[arg(long, global = true, env = "KILN_ROOT", value_name = "DIR")]
    root: Option<std::path::PathBuf>,
}

impl Global {
    /// The root directory in force.
    #[allow(dead_code)] // The store commands use it; the frontend commands do not.
    pub(crate) fn root(&self) -> std::path::PathBuf {
        self.root
            .clone()
            .unwrap_or_else(kiln_builder::store::default_root)
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build an image from a Dockerfile.
    Build(build::Args),
    /// Manage the build cache.
    #[command(subcommand, alias = "buildx")]
    Builder(builder::Command),
    /// Inspect what kiln sees: the Dockerfile's syntax tree, the build context.
    #[command(subcommand)]
    Debug(debug::Command),
    /// Manage images.
    #[command(subcommand)]
    Image(image::Command),
    /// List images.
    Images(images::Args),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(tag::Args),
    /// Remove one or more images.
    Rmi(rmi::Args),
    /// Display detailed information on one or more images.
    Inspect(inspect::Args),
    /// Show the history of an image.
    History(history::Args),
    /// Save one or more images to a tar archive (streamed to STDOUT by default).
    Save(save::Args),
    /// Load images from a tar archive or STDIN.
    Load(load::Args),
    /// Import the contents from a tarball to create a filesystem image.
    Import(import::Args),
    /// Download an image from a registry.
    Pull(pull::Args),
    /// Upload an image to a registry.
    Push(push::Args),
    /// Log in to a registry.
    Login(login::LoginArgs),
    /// Log out from a registry.
    Logout(login::LogoutArgs),
    /// Run a command in a throwaway container of an image (always removed afterwards).
    Run(run::Args),
    /// Manage kiln: disk usage.
    #[command(subcommand)]
    System(system::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build(args) => build::run(&args, &cli.global),
        Command::Builder(cmd) => builder::run(&cmd, &cli.global),
        Command::Debug(cmd) => debug::run(&cmd),
        Command::Image(cmd) => image::run(&cmd, &cli.global),
        Command::Images(args) => images::run(&args, &cli.global),
        Command::Tag(args) => tag::run(&args, &cli.global),
        Command::Rmi(args) => rmi::run(&args, &cli.global),
        Command::Inspect(args) => inspect::run(&args, &cli.global),
        Command::History(args) => history::run(&args, &cli.global),
        Command::Save(args) => save::run(&args, &cli.global),
        Command::Load(args) => load::run(&args, &cli.global),
        Command::Import(args) => import::run(&args, &cli.global),
        Command::System(cmd) => system::run(&cmd, &cli.global),
        Command::Pull(args) => pull::run(&args, &cli.global),
        Command::Push(args) => push::run(&args, &cli.global),
        Command::Login(args) => login::login(&args),
        Command::Logout(args) => login::logout(&args),
        // The process's exit code is kiln's; 125 (Docker's) when it could not be run at all.
        Command::Run(args) => {
            return run::run(&args, &cli.global).unwrap_or_else(|err| {
                report(&err);
                ExitCode::from(125)
            });
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            report(&err);
            ExitCode::FAILURE
        }
    }
}

/// Print an error with its causes on one line (`error: what: why`), the way users read them in CI
/// logs. Library errors keep their cause out of their own message, so nothing is said twice.
#[allow(clippy::print_stderr)]
fn report(err: &anyhow::Error) {
    eprintln!("error: {err:#}");
}
