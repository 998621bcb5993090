//! [`Planner`]: from a parsed Dockerfile and the build's options to a [`BuildGraph`], in the order
//! BuildKit's `toDispatchState` works (so the same input fails with the same message).

use std::collections::{BTreeMap, BTreeSet};

use super::expand::expand;
use super::{Base, BuildGraph, Dependency, Error, GlobalArg, Input, Platform, Stage, StageId};
use crate::instruction::suggest::suggest;
use crate::instruction::{self, Instruction, Step};
use crate::syntax::{Dockerfile, Escape};

/// Plans one build of a Dockerfile: options in, an immutable [`BuildGraph`] out.
///
/// The build platform is the machine the build runs on; the frontend never looks at the host
/// itself, so the caller says which it is.
///
/// ```
/// use kiln_frontend::graph::{Base, Planner, Platform};
/// use kiln_frontend::syntax;
///
/// let dockerfile = syntax::parse(
///     br#"ARG ALPINE=3.19
/// FROM alpine:${ALPINE} AS base
/// FROM busybox AS unused
/// ## release is the shipped image
/// FROM scratch AS release
/// COPY --from=base /etc/os-release /
/// "#,
/// )
/// .unwrap();
/// let host = Platform::new("linux", "amd64", None);
/// let graph = Planner::new(&dockerfile, host).build_arg("ALPINE", "3.20").plan().unwrap();
/// assert_eq!(graph.target_stage().name.as_deref(), Some("release"));
/// assert_eq!(graph.target_stage().base, Base::Scratch);
/// // `unused` is pruned; `base` is needed through COPY --from.
/// let needed: Vec<_> = graph.needed.iter().map(|id| graph.stage(*id).display_name()).collect();
/// assert_eq!(needed, ["base", "release"]);
/// assert_eq!(graph.images(), ["alpine:3.20"]);
///
/// // What `--call=outline` shows: the args the target uses, with their values.
/// let outline = graph.outline();
/// assert_eq!(outline.description.as_deref(), Some("is the shipped image"));
/// assert_eq!(outline.args[0].name, "ALPINE");
/// assert_eq!(outline.args[0].value.as_deref(), Some("3.20"));
/// ```
#[derive(Debug, Clone)]
pub struct Planner<'a> {
    dockerfile: &'a Dockerfile,
    build_platform: Platform,
    target_platform: Option<Platform>,
    target: Option<String>,
    build_args: BTreeMap<String, String>,
}

/// Global-scope names that `--build-arg` may set without any ARG declaring them.
const BUILTIN_ARGS: [&str; 22] = [
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "TARGETSTAGE",
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
    "SOURCE_DATE_EPOCH",
    "BUILDKIT_SBOM_SCAN_CONTEXT",
    "BUILDKIT_SBOM_SCAN_STAGE",
];

pub(super) fn is_builtin_arg(name: &str) -> bool {
    BUILTIN_ARGS.contains(&name)
}

impl<'a> Planner<'a> {
    /// A planner for `dockerfile` on a machine of platform `build_platform`.
    pub fn new(dockerfile: &'a Dockerfile, build_platform: Platform) -> Planner<'a> {
        Planner {
            dockerfile,
            build_platform,
            target_platform: None,
            target: None,
            build_args: BTreeMap::new(),
        }
    }

    /// Sets one `--build-arg`.
    #[must_use]
    pub fn build_arg(mut self, name: impl Into<String>, value: impl Into<String>) -> Planner<'a> {
        self.build_args.insert(name.into(), value.into());
        self
    }

    /// Sets several `--build-arg`s.
    #[must_use]
    pub fn build_args<I, K, V>(mut self, args: I) -> Planner<'a>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.build_args
            .extend(args.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Builds `name` (case-insensitive) instead of the last stage.
    #[must_use]
    pub fn target(mut self, name: impl Into<String>) -> Planner<'a> {
        self.target = Some(name.into());
        self
    }

    /// The platform to build for (`--platform`); the build platform by default.
    #[must_use]
    pub fn platform(mut self, platform: Platform) -> Planner<'a> {
        self.target_platform = Some(platform);
        self
    }

    /// Plans the build.
    pub fn plan(self) -> Result<BuildGraph, Error> {
        let escape = self.dockerfile.directives.escape;
        let (meta, raw) = split_stages(instruction::parse_all(self.dockerfile)?)?;
        let target_platform = self
            .target_platform
            .clone()
            .unwrap_or_else(|| self.build_platform.clone());
        let target_name = self
            .target
            .clone()
            .unwrap_or_else(|| raw.last().and_then(|s| s.from.name.clone()).unwrap_or_default());
        let mut env = automatic_args(
            &self.build_platform,
            &target_platform,
            &target_name,
            &self.build_args,
        );
        let global_args = global_args(&meta, &mut env, &self.build_args, escape)?;
        let mut stages = resolve_bases(raw, &env, &self.build_platform, escape)?;
        let target = match &self.target {
            None => StageId(stages.len() - 1),
            Some(name) => find_stage(&stages, name).ok_or_else(|| {
                let names: Vec<String> = stages.iter().map(Stage::display_name).collect();
                let suggestion = suggest(name, names.iter().map(String::as_str), true);
                Error::UnknownTarget {
                    target: name.clone(),
                    suggestion,
                }
            })?,
        };
        link_inputs(&mut stages)?;
        check_cycles(&stages)?;
        let needed = needed_stages(&stages, target);
        check_order(&stages, &needed)?;
        Ok(BuildGraph {
            stages,
            target,
            needed,
            global_args,
            global_env: env,
            build_args: self.build_args,
            build_platform: self.build_platform,
            target_platform,
            escape,
        })
    }
}

/// A FROM and the steps after it, before planning.
pub(super) struct RawStage {
    pub(super) from: instruction::From,
    pub(super) from_step: Step,
    pub(super) steps: Vec<Step>,
}

/// Groups steps into stages: the global ARGs, then each FROM with the steps after it.
pub(super) fn split_stages(steps: Vec<Step>) -> Result<(Vec<Step>, Vec<RawStage>), Error> {
    if steps.is_empty() {
        return Err(Error::NoInstructions);
    }
    let mut meta = Vec::new();
    let mut stages: Vec<RawStage> = Vec::new();
    for step in steps {
        match (&step.instruction, stages.last_mut()) {
            (Instruction::From(from), _) => stages.push(RawStage {
                from: from.clone(),
                from_step: step,
                steps: Vec::new(),
            }),
            (_, Some(stage)) => stage.steps.push(step),
            (Instruction::Arg(_), None) => meta.push(step),
            (_, None) => {
                return Err(Error::NoBuildStage {
                    line: step.span.start,
                });
            }
        }
    }
    if stages.is_empty() {
        return Err(Error::NoStages);
    }
    Ok((meta, stages))
}

/// BuildKit's `defaultArgs`: the platform args and TARGETSTAGE, each overridable by `--build-arg`.
fn automatic_args(
    build: &Platform,
    target: &Platform,
    target_stage: &str,
    overrides: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let defaults = [
        ("BUILDPLATFORM", build.to_string()),
        ("BUILDOS", build.os().to_owned()),
        ("BUILDARCH", build.architecture().to_owned()),
        ("BUILDVARIANT", build.variant().unwrap_or_default().to_owned()),
        ("TARGETPLATFORM", target.to_string()),
        ("TARGETOS", target.os().to_owned()),
        ("TARGETARCH", target.architecture().to_owned()),
        ("TARGETVARIANT", target.variant().unwrap_or_default().to_owned()),
        ("TARGETSTAGE", target_stage.to_owned()),
    ];
    defaults
        .into_iter()
        .map(|(name, value)| (name.to_owned(), overrides.get(name).cloned().unwrap_or(value)))
        .collect()
}

/// BuildKit's `buildMetaArgs`: each global ARG takes its `--build-arg`, else its default expanded
/// with what came before it; those with a value join `env`.
fn global_args(
    meta: &[Step],
    env: &mut BTreeMap<String, String>,
    build_args: &BTreeMap<String, String>,
    escape: Escape,
) -> Result<Vec<GlobalArg>, Error> {
    let mut out = Vec::new();
    for step in meta {
        let Instruction::Arg(defs) = &step.instruction else {
            continue;
        };
        for def in defs {
            let mut uses = Vec::new();
            let value = match (build_args.get(&def.name), &def.default) {
                (Some(given), _) => Some(given.clone()),
                (None, Some(default)) => {
                    let expanded = expand(default, env, escape, step.span.start)?;
                    // `ARG X=$X:more` refers to the earlier X: it inherits that one's uses.
                    for name in expanded.matched {
                        if name == def.name {
                            let earlier = out.iter().rev().find(|a: &&GlobalArg| a.name == def.name);
                            uses.extend(earlier.map(|a| a.uses.clone()).unwrap_or_default());
                        } else {
                            uses.push(name);
                        }
                    }
                    Some(expanded.value)
                }
                (None, None) => None,
            };
            if let Some(value) = &value {
                env.insert(def.name.clone(), value.clone());
            }
            out.push(GlobalArg {
                name: def.name.clone(),
                value,
                default: def.default.clone(),
                description: def.description.clone(),
                line: step.span.start,
                uses,
            });
        }
    }
    Ok(out)
}

/// Expands each FROM's image and platform and resolves the base: an earlier stage of that exact
/// name, `scratch`, or an image.
fn resolve_bases(
    raw: Vec<RawStage>,
    env: &BTreeMap<String, String>,
    build_platform: &Platform,
    escape: Escape,
) -> Result<Vec<Stage>, Error> {
    let mut stages: Vec<Stage> = Vec::with_capacity(raw.len());
    for (
        i,
        RawStage {
            from,
            from_step,
            steps,
        },
    ) in raw.into_iter().enumerate()
    {
        let line = from_step.span.start;
        let expanded = expand(&from.image, env, escape, line)?;
        let (image, mut from_args) = (expanded.value, expanded.matched);
        if image.is_empty() {
            return Err(Error::BlankBaseName {
                base: from.image.clone(),
                line,
            });
        }
        let platform = match &from.platform {
            None => None,
            Some(expression) => {
                let expanded = expand(expression, env, escape, line)?;
                from_args.extend(expanded.matched);
                let value = expanded.value;
                if value.is_empty() {
                    return Err(Error::EmptyPlatform {
                        expression: expression.clone(),
                        line,
                    });
                }
                let parsed = Platform::parse(&value, build_platform);
                Some(parsed.map_err(|reason| Error::InvalidPlatform {
                    expression: expression.clone(),
                    reason,
                    line,
                })?)
            }
        };
        // BuildKit looks the base up by its exact (expanded) name among the stages so far.
        let base = match stages
            .iter()
            .rev()
            .find(|s| s.name.as_deref() == Some(image.as_str()))
        {
            Some(stage) => Base::Stage(stage.id),
            None if image == "scratch" => Base::Scratch,
            None => Base::Image(image),
        };
        stages.push(Stage {
            id: StageId(i),
            name: from.name.clone(),
            base,
            platform,
            from,
            span: from_step.span,
            steps,
            dependencies: Vec::new(),
            from_args: from_args.into_iter().collect(),
        });
    }
    Ok(stages)
}

/// The last stage named `name`, case-insensitively.
fn find_stage(stages: &[Stage], name: &str) -> Option<StageId> {
    let name = crate::go::go_lower(name);
    stages
        .iter()
        .rev()
        .find(|s| s.name.as_deref() == Some(name.as_str()))
        .map(|s| s.id)
}

/// Fills in each stage's `COPY --from` and `RUN --mount=from=` inputs.
fn link_inputs(stages: &mut [Stage]) -> Result<(), Error> {
    for i in 0..stages.len() {
        let mut dependencies = Vec::new();
        for (index, step) in stages[i].steps.iter().enumerate() {
            match &step.instruction {
                Instruction::Copy(copy) => {
                    let Some(from) = &copy.from else { continue };
                    let input = match parse_go_int(from) {
                        Some(n) => match usize::try_from(n).ok().filter(|n| *n < stages.len()) {
                            Some(n) => Input::Stage(StageId(n)),
                            None => {
                                return Err(Error::InvalidStageIndex {
                                    index: n,
                                    line: step.span.start,
                                });
                            }
                        },
                        None => {
                            find_stage(stages, from).map_or_else(|| Input::Image(from.clone()), Input::Stage)
                        }
                    };
                    dependencies.push(Dependency { step: index, input });
                }
                Instruction::Run(run) => {
                    for from in run.mounts.iter().filter_map(|m| m.from.as_ref()) {
                        let input =
                            find_stage(stages, from).map_or_else(|| Input::Image(from.clone()), Input::Stage);
                        dependencies.push(Dependency { step: index, input });
                    }
                }
                _ => {}
            }
        }
        stages[i].dependencies = dependencies;
    }
    Ok(())
}

/// Go's `strconv.Atoi`: an optional sign and decimal digits.
fn parse_go_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The stages a stage reads from: its base stage, then its inputs in step order.
fn edges(stage: &Stage) -> impl Iterator<Item = StageId> + '_ {
    let base = match stage.base {
        Base::Stage(id) => Some(id),
        Base::Scratch | Base::Image(_) => None,
    };
    let inputs = stage.dependencies.iter().filter_map(|d| match d.input {
        Input::Stage(id) => Some(id),
        Input::Image(_) => None,
    });
    base.into_iter().chain(inputs)
}

/// BuildKit's `validateCircularDependency`: a depth-first walk over `COPY --from` and
/// `--mount=from=` edges (not FROM) from each stage in order; the error names the stage the walk
/// started from and points at the first instruction of the cycle's path.
fn check_cycles(stages: &[Stage]) -> Result<(), Error> {
    fn visit(
        stages: &[Stage],
        id: StageId,
        visited: &mut BTreeSet<StageId>,
        path: &mut BTreeSet<StageId>,
        lines: &[usize],
    ) -> Option<Vec<usize>> {
        if !visited.insert(id) {
            return None;
        }
        path.insert(id);
        let stage = &stages[id.0];
        for dep in &stage.dependencies {
            let Input::Stage(from) = dep.input else { continue };
            let mut next = lines.to_vec();
            next.push(stage.steps[dep.step].span.start);
            if path.contains(&from) {
                return Some(next);
            }
            if let Some(found) = visit(stages, from, visited, path, &next) {
                return Some(found);
            }
        }
        path.remove(&id);
        None
    }
    let mut visited = BTreeSet::new();
    for stage in stages {
        if let Some(lines) = visit(stages, stage.id, &mut visited, &mut BTreeSet::new(), &[]) {
            return Err(Error::CircularDependency {
                stage: stage.display_name(),
                line: lines[0],
            });
        }
    }
    Ok(())
}

/// The stages `target` reaches through bases and inputs, in file order (which is dependency
/// order once later-stage references are ruled out).
fn needed_stages(stages: &[Stage], target: StageId) -> Vec<StageId> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![target];
    while let Some(id) = todo.pop() {
        if seen.insert(id) {
            todo.extend(edges(&stages[id.0]));
        }
    }
    seen.into_iter().collect()
}

/// A needed stage may only read stages defined before it (BuildKit fails when it dispatches
/// the reading step).
fn check_order(stages: &[Stage], needed: &[StageId]) -> Result<(), Error> {
    let single = stages.len() == 1;
    for stage in needed.iter().map(|id| &stages[id.0]) {
        for dep in &stage.dependencies {
            let Input::Stage(from) = dep.input else { continue };
            if from <= stage.id {
                continue;
            }
            let step = &stage.steps[dep.step];
            let line = step.span.start;
            return Err(match &step.instruction {
                Instruction::Copy(copy) => Error::CopyFromLaterStage {
                    from: copy.from.clone().unwrap_or_default(),
                    // BuildKit leaves a lone stage unnamed.
                    stage: if single {
                        String::new()
                    } else {
                        stage.display_name()
                    },
                    line,
                },
                Instruction::Run(run) => {
                    let mount = run
                        .mounts
                        .iter()
                        .find(|m| m.from.as_deref().and_then(|f| find_stage(stages, f)) == Some(from));
                    Error::MountFromLaterStage {
                        from: mount.and_then(|m| m.from.clone()).unwrap_or_default(),
                        target: mount.and_then(|m| m.target.clone()).unwrap_or_default(),
                        line,
                    }
                }
                _ => unreachable!("only COPY and RUN have inputs"),
            });
        }
    }
    Ok(())
}
