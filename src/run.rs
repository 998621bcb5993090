//! `kiln run --rm IMAGE [COMMAND] [ARG...]`: try what you built, with the executor `RUN` uses.
//!
//! kiln never keeps containers: every run happens in a throwaway snapshot removed when the process
//! ends, so `--rm` is the only mode (the flag is accepted so `docker run --rm` habits work). The
//! process's stdout and stderr go to kiln's, and kiln exits with its exit code (128 + signal when a
//! signal killed it).

use std::process::ExitCode;

use anyhow::Result;
use kiln_builder::exec::{CancelToken, WriteSink};
use kiln_builder::solver::run_image;

use crate::Global;

/// `kiln run [OPTIONS] IMAGE [COMMAND] [ARG...]`
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Remove the container when it exits (always so: kiln never keeps containers).
    #[arg(long)]
    rm: bool,
    /// The image: a name or an ID.
    image: String,
    /// The command and its arguments [default: the image's ENTRYPOINT and CMD].
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

pub(crate) fn run(args: &Args, global: &Global) -> Result<ExitCode> {
    let mut sink = WriteSink {
        stdout: std::io::stdout(),
        stderr: std::io::stderr(),
    };
    let status = run_image(
        &global.root(),
        &args.image,
        &args.command,
        &mut sink,
        &CancelToken::new(),
    )?;
    // Exit codes are 0..=255 on Linux; `code()` of a signal is 128 + its number, within that range.
    Ok(ExitCode::from(u8::try_from(status.code()).unwrap_or(u8::MAX)))
}
