//! Lowering: one function per instruction, each applying its effect to a [`StageState`] exactly as
//! BuildKit's `dockerfile2llb` dispatches it, and returning the filesystem [`Op`] it needs, if any.
//!
//! Every word is expanded against the stage environment as it was *before* the instruction (so
//! `ENV a=1 b=$a` sees the old `a`), with the Dockerfile's escape token. RUN, CMD, ENTRYPOINT, SHELL
//! and HEALTHCHECK commands are never expanded: the shell does that at run time. Each instruction
//! appends its history entry (`created_by` worded byte for byte as BuildKit words it; `empty_layer`
//! for config-only instructions).

mod config;
mod copy;
mod env;
mod error;
mod expose;
mod run;
#[cfg(test)]
mod tests;
mod workdir;

use std::collections::BTreeMap;

use kiln_frontend::graph::Input;
use kiln_frontend::instruction::{Instruction, Step};
use kiln_frontend::shell::Lexer;

pub(crate) use copy::{Remote, classify};
pub(crate) use error::LowerError;

use super::op::Op;
use super::state::StageState;

/// What lowering needs beyond the stage itself: build-wide values.
pub(crate) struct Scope<'a> {
    /// The Dockerfile's lexer (its escape token).
    pub(crate) lexer: &'a Lexer,
    /// Global scope: automatic platform args and global ARGs with a value. A stage's `ARG name`
    /// without a default takes its value from here.
    pub(crate) global_env: &'a BTreeMap<String, String>,
    /// `--build-arg` values.
    pub(crate) build_args: &'a BTreeMap<String, String>,
    /// Resolves a `COPY --from` or `RUN --mount=from=` name to a stage or an image.
    pub(crate) resolve: &'a dyn Fn(&str) -> Input,
}

/// A lowered instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lowered {
    /// The filesystem change it needs; `None` for config-only instructions.
    pub(crate) op: Option<Op>,
    /// For instructions that make a vertex, its name as progress shows it, without the
    /// `[stage n/m]` prefix: `RUN make`, `COPY . /src`.
    pub(crate) name: Option<String>,
}

impl Lowered {
    fn config_only() -> Lowered {
        Lowered { op: None, name: None }
    }
}

/// Applies `step` to `state`.
pub(crate) fn lower(state: &mut StageState, step: &Step, scope: &Scope<'_>) -> Result<Lowered, LowerError> {
    let original = step.original.as_str();
    match &step.instruction {
        Instruction::Env(pairs) => env::env(state, pairs, scope).map(|()| Lowered::config_only()),
        Instruction::Arg(defs) => env::arg(state, defs, scope).map(|()| Lowered::config_only()),
        Instruction::Label(pairs) => config::label(state, pairs, scope).map(|()| Lowered::config_only()),
        Instruction::Maintainer(name) => {
            config::maintainer(state, name);
            Ok(Lowered::config_only())
        }
        Instruction::Expose(ports) => expose::expose(state, ports, scope).map(|()| Lowered::config_only()),
        Instruction::Volume(paths) => config::volume(state, paths, scope).map(|()| Lowered::config_only()),
        Instruction::User(user) => config::user(state, user, scope).map(|()| Lowered::config_only()),
        Instruction::Stopsignal(signal) => {
            config::stopsignal(state, signal, scope).map(|()| Lowered::config_only())
        }
        Instruction::Shell(shell) => {
            config::shell(state, shell);
            Ok(Lowered::config_only())
        }
        Instruction::Cmd(command) => {
            config::cmd(state, command);
            Ok(Lowered::config_only())
        }
        Instruction::Entrypoint(command) => {
            config::entrypoint(state, command);
            Ok(Lowered::config_only())
        }
        Instruction::Healthcheck(check) => {
            config::healthcheck(state, check);
            Ok(Lowered::config_only())
        }
        Instruction::Onbuild(onbuild) => {
            config::onbuild(state, onbuild);
            Ok(Lowered::config_only())
        }
        Instruction::Workdir(path) => workdir::workdir(state, path, original, scope),
        Instruction::Run(run) => run::run(state, run, original, scope),
        Instruction::Copy(copy) => copy::copy(state, copy, original, scope),
        Instruction::Add(add) => copy::add(state, add, original, scope),
        Instruction::From(_) => Err(LowerError::FromInStage),
    }
}

/// Expands one word against the stage environment (BuildKit's `ProcessWord`).
fn expand(word: &str, state: &StageState, scope: &Scope<'_>) -> Result<String, LowerError> {
    scope
        .lexer
        .process_word(word, &state.env)
        .map_err(LowerError::Expand)
}

/// BuildKit's `uppercaseCmd(processCmdEnv(lexer, original, env))`: the progress name of a step,
/// variables expanded where possible (the text as written if expansion fails), keyword upper case.
fn display_name(original: &str, lexer: &Lexer, state: &StageState) -> String {
    let expanded = lexer
        .process_word(original, &state.env)
        .unwrap_or_else(|_| original.to_owned());
    match expanded.split_once(' ') {
        Some((keyword, rest)) => format!("{} {rest}", keyword.to_uppercase()),
        None => expanded.to_uppercase(),
    }
}
