//! The stage graph of a Dockerfile, as BuildKit's `dockerfile2llb` plans it before building.
//!
//! A Dockerfile is a list of [`Stage`]s, each starting at a FROM. A stage's [`Base`] is `scratch`,
//! an image, or an earlier stage named in FROM. Its other [`Input`]s come from `COPY --from`
//! (a stage name, a stage index or an image) and `RUN --mount=from=` (a stage name or an image).
//! [`Planner`] resolves all of this for one build: global ARGs (those before the first FROM) are
//! expanded, with `--build-arg` overrides and the automatic platform args, into FROM images and
//! `--platform`; the target (`--target`, or the last stage) picks the stages it needs, in
//! dependency order, and the rest are pruned. Everything else stays unexpanded for the builder,
//! which knows each image's environment. The graph is static: `--from` never holds a variable.
//!
//! [`BuildGraph::targets`] and [`BuildGraph::outline`] answer `--call=targets` and
//! `--call=outline`.

mod error;
mod expand;
mod outline;
mod plan;
mod platform;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

pub use error::Error;
pub use outline::{Outline, OutlineArg, OutlineSecret, TargetInfo, targets};
pub use plan::Planner;
pub use platform::{Platform, PlatformError};

use crate::instruction::{self, Step};
use crate::syntax::{Escape, Span};

/// A stage's position in the Dockerfile (0 for the first FROM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct StageId(pub usize);

impl StageId {
    /// The 0-based index of the stage.
    pub fn index(self) -> usize {
        self.0
    }
}

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// `FROM scratch`: an empty filesystem.
    Scratch,
    /// An image reference, with global ARGs expanded.
    Image(String),
    /// An earlier stage of the same Dockerfile.
    Stage(StageId),
}

/// Where a `COPY --from` or `RUN --mount=from=` takes files from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A stage of this Dockerfile.
    Stage(StageId),
    /// An image reference, as written.
    Image(String),
}

/// An edge of the graph: step `step` of a stage reads from `input`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// The index of the step in [`Stage::steps`].
    pub step: usize,
    /// Where it reads from.
    pub input: Input,
}

/// One FROM and the instructions up to the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Its position.
    pub id: StageId,
    /// The name after `AS`, lower case.
    pub name: Option<String>,
    /// What it starts from.
    pub base: Base,
    /// The `--platform`, expanded and parsed; `None` means the build's target platform.
    pub platform: Option<Platform>,
    /// The FROM instruction as written.
    pub from: instruction::From,
    /// The FROM's lines.
    pub span: Span,
    /// The instructions after FROM.
    pub steps: Vec<Step>,
    /// The `COPY --from` and `RUN --mount=from=` edges, in step order.
    pub dependencies: Vec<Dependency>,
    /// The global variables the FROM's image and platform refer to, sorted.
    pub from_args: Vec<String>,
}

impl Stage {
    /// The name BuildKit shows in progress: the stage's name, or `stage-N`.
    pub fn display_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("stage-{}", self.id.0))
    }
}

/// One global ARG (before the first FROM) after `--build-arg` overrides and expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalArg {
    /// The name.
    pub name: String,
    /// The value in force: the `--build-arg`, else the expanded default; `None` when neither.
    pub value: Option<String>,
    /// The default as written.
    pub default: Option<String>,
    /// The comment above the ARG that starts with the name.
    pub description: Option<String>,
    /// The ARG's line.
    pub line: usize,
    /// The other global variables its default refers to.
    pub uses: Vec<String>,
}

/// A planned build: every stage, the target, and the stages the target needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildGraph {
    /// Every stage, in file order (`stages[i].id == StageId(i)`).
    pub stages: Vec<Stage>,
    /// The stage to build.
    pub target: StageId,
    /// The stages the target needs (itself included), dependencies before dependents.
    pub needed: Vec<StageId>,
    /// The global ARGs, in file order.
    pub global_args: Vec<GlobalArg>,
    /// Every variable in force at global scope: the automatic platform args and the global ARGs
    /// with a value. Stages see these only through `ARG name` without a default.
    pub global_env: BTreeMap<String, String>,
    /// The `--build-arg` values given.
    pub build_args: BTreeMap<String, String>,
    /// The platform the build runs on.
    pub build_platform: Platform,
    /// The platform the build produces.
    pub target_platform: Platform,
    /// The escape token of the Dockerfile, which the builder's lexer needs.
    pub escape: Escape,
}

impl BuildGraph {
    /// The stage with this id.
    pub fn stage(&self, id: StageId) -> &Stage {
        &self.stages[id.0]
    }

    /// The target stage.
    pub fn target_stage(&self) -> &Stage {
        self.stage(self.target)
    }

    /// The stage named `name` (case-insensitive), if any.
    pub fn stage_by_name(&self, name: &str) -> Option<&Stage> {
        let name = crate::go::go_lower(name);
        self.stages
            .iter()
            .rev()
            .find(|s| s.name.as_deref() == Some(name.as_str()))
    }

    /// Whether the target needs this stage.
    pub fn is_needed(&self, id: StageId) -> bool {
        self.needed.contains(&id)
    }

    /// The images the needed stages read (bases, `COPY --from` and `--mount=from=` images), each
    /// once, in order of first use.
    pub fn images(&self) -> Vec<&str> {
        let mut images: Vec<&str> = Vec::new();
        for stage in self.needed.iter().map(|id| self.stage(*id)) {
            let base = match &stage.base {
                Base::Image(image) => Some(image.as_str()),
                Base::Scratch | Base::Stage(_) => None,
            };
            let inputs = stage.dependencies.iter().filter_map(|d| match &d.input {
                Input::Image(image) => Some(image.as_str()),
                Input::Stage(_) => None,
            });
            for image in base.into_iter().chain(inputs) {
                if !images.contains(&image) {
                    images.push(image);
                }
            }
        }
        images
    }

    /// The `--build-arg` names no ARG of the needed stages (or global scope) declares, sorted:
    /// Docker warns that they "were not consumed". Automatic and proxy args never count.
    pub fn unused_build_args(&self) -> Vec<&str> {
        let declared = |name: &str| {
            self.global_args.iter().any(|a| a.name == name)
                || self
                    .needed
                    .iter()
                    .flat_map(|id| &self.stage(*id).steps)
                    .any(|step| match &step.instruction {
                        instruction::Instruction::Arg(defs) => defs.iter().any(|d| d.name == name),
                        _ => false,
                    })
        };
        self.build_args
            .keys()
            .map(String::as_str)
            .filter(|name| !plan::is_builtin_arg(name) && !declared(name))
            .collect()
    }
}
