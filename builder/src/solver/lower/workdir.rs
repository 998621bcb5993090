//! `WORKDIR`: sets the working directory and, unless it is `/`, creates it in a layer.

use super::{LowerError, Lowered, Scope, display_name, expand};
use crate::solver::op::{MkdirOp, Op};
use crate::solver::path;
use crate::solver::state::StageState;

/// `WORKDIR path`: expanded, taken relative to the current directory. A directory other than `/` is
/// created (with its parents, owned by the stage's USER) and the step makes a layer, as BuildKit's
/// mkdir file op does. History: `WORKDIR /app`.
pub(super) fn workdir(
    state: &mut StageState,
    requested: &str,
    original: &str,
    scope: &Scope<'_>,
) -> Result<Lowered, LowerError> {
    let requested = expand(requested, state, scope)?;
    let dir = path::workdir(state.workdir(), &requested);
    state.image.config.working_dir.clone_from(&dir);
    let layer = dir != "/";
    state.commit(format!("WORKDIR {dir}"), layer);
    if !layer {
        return Ok(Lowered::config_only());
    }
    Ok(Lowered {
        name: Some(display_name(original, scope.lexer, state)),
        op: Some(Op::Mkdir(MkdirOp {
            path: dir,
            user: state.image.config.user.clone(),
        })),
    })
}
