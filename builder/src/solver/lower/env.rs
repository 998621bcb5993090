//! `ENV` and `ARG`: the two instructions that change the stage environment.

use std::fmt::Write as _;

use kiln_frontend::instruction::{ArgDef, KeyValue};

use super::{LowerError, Scope, expand};
use crate::solver::state::StageState;

/// ARGs that configure BuildKit itself and never enter the environment (`nonEnvArgs`).
const NON_ENV_ARGS: [&str; 2] = ["BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"];

/// `ENV k=v ...`: keys and values expanded (all against the environment before the instruction),
/// then set in the stage environment and the config. History: `ENV k=v k2=v2`.
pub(super) fn env(state: &mut StageState, pairs: &[KeyValue], scope: &Scope<'_>) -> Result<(), LowerError> {
    let expanded = expand_pairs(state, pairs, scope)?;
    let mut message = String::from("ENV");
    for (key, value) in &expanded {
        let _ = write!(message, " {key}={value}");
        state.set_env(key, value);
        state.image.set_env(key, value);
    }
    state.commit(message, false);
    Ok(())
}

/// Expands the keys and values of ENV or LABEL pairs against the environment as it stands.
pub(super) fn expand_pairs(
    state: &StageState,
    pairs: &[KeyValue],
    scope: &Scope<'_>,
) -> Result<Vec<(String, String)>, LowerError> {
    pairs
        .iter()
        .map(|pair| {
            Ok((
                expand(&pair.key, state, scope)?,
                expand(&pair.value, state, scope)?,
            ))
        })
        .collect()
}

/// `ARG name[=default] ...`, as BuildKit's `dispatchArg`: the value is the `--build-arg` if given,
/// else the default expanded now, else (for a bare `ARG name`) the global-scope value. A value enters
/// the stage environment, never the config. History: `ARG name=value name2`.
pub(super) fn arg(state: &mut StageState, defs: &[ArgDef], scope: &Scope<'_>) -> Result<(), LowerError> {
    let mut words = Vec::with_capacity(defs.len());
    for def in defs {
        let value = match (scope.build_args.get(&def.name), &def.default) {
            (Some(given), _) => Some(given.clone()),
            (None, Some(default)) => Some(expand(default, state, scope)?),
            (None, None) => scope.global_env.get(&def.name).cloned(),
        };
        if let Some(value) = &value {
            if !NON_ENV_ARGS.contains(&def.name.as_str()) {
                state.set_env(&def.name, value);
            }
        }
        words.push(match &value {
            Some(value) => format!("{}={value}", def.name),
            None => def.name.clone(),
        });
        state.args.push((def.name.clone(), value));
    }
    state.commit(format!("ARG {}", words.join(" ")), false);
    Ok(())
}
