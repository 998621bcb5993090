//! What `--call=targets` and `--call=outline` print, computed as BuildKit's `ListTargets` and
//! `Outline` do.

use std::collections::{BTreeMap, BTreeSet};

use super::plan::split_stages;
use super::{Base, BuildGraph, Error, Input, StageId};
use crate::instruction::{self, Instruction, MountType};
use crate::syntax::Dockerfile;

/// One stage as `--call=targets` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TargetInfo {
    /// The stage name, if it has one.
    pub name: Option<String>,
    /// The comment above FROM that starts with the name.
    pub description: Option<String>,
    /// The FROM image as written (unexpanded).
    pub base: String,
    /// The `--platform` as written.
    pub platform: Option<String>,
    /// Whether this is the stage built without `--target` (the last).
    pub default: bool,
    /// The FROM's line.
    pub line: usize,
}

/// Every stage of a Dockerfile for `--call=targets`. Like BuildKit this needs no planning (no
/// args, no target), only instructions that parse.
pub fn targets(dockerfile: &Dockerfile) -> Result<Vec<TargetInfo>, Error> {
    let (_, stages) = split_stages(instruction::parse_all(dockerfile)?)?;
    let last = stages.len() - 1;
    Ok(stages
        .into_iter()
        .enumerate()
        .map(|(i, stage)| TargetInfo {
            name: stage.from.name,
            description: stage.from.description,
            base: stage.from.image,
            platform: stage.from.platform,
            default: i == last,
            line: stage.from_step.span.start,
        })
        .collect())
}

/// What a build of the target takes from outside: `--call=outline`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Outline {
    /// The target stage's name.
    pub name: Option<String>,
    /// The target stage's description.
    pub description: Option<String>,
    /// The build args the needed stages use, by line.
    pub args: Vec<OutlineArg>,
    /// The secrets mounted by needed stages, by line.
    pub secrets: Vec<OutlineSecret>,
    /// The SSH sockets mounted by needed stages, by line.
    pub ssh: Vec<OutlineSecret>,
}

/// A build arg the target uses.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OutlineArg {
    /// The name.
    pub name: String,
    /// Its value: the `--build-arg` if given, else the default (expanded for global ARGs, as
    /// written for stage ARGs, whose expansion needs the image's environment).
    pub value: Option<String>,
    /// The comment above the ARG that starts with the name.
    pub description: Option<String>,
    /// The line of the ARG that defines it.
    pub line: usize,
    /// The needed stages that use it, in order.
    pub stages: Vec<StageId>,
}

/// A secret or SSH socket a RUN mounts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OutlineSecret {
    /// The id (unexpanded): `id`, else `source`, else the target's file name for secrets;
    /// `default` for SSH without an id.
    pub name: String,
    /// Whether the build fails without it.
    pub required: bool,
    /// The RUN's line.
    pub line: usize,
}

/// What one stage knows about an arg: value, description, line.
type ArgInfo = (Option<String>, Option<String>, usize);

impl BuildGraph {
    /// The stages for `--call=targets`.
    pub fn targets(&self) -> Vec<TargetInfo> {
        let last = self.stages.len() - 1;
        self.stages
            .iter()
            .map(|s| TargetInfo {
                name: s.name.clone(),
                description: s.from.description.clone(),
                base: s.from.image.clone(),
                platform: s.from.platform.clone(),
                default: s.id.0 == last,
                line: s.span.start,
            })
            .collect()
    }

    /// The target's outline for `--call=outline`.
    ///
    /// A stage uses the global args its FROM (and its base stage's FROM) refers to, the args those
    /// refer to in turn, and every ARG it declares. Where a name is known several ways, the first
    /// stage visited wins (the target, then its base, then its inputs), as in BuildKit.
    pub fn outline(&self) -> Outline {
        let mut visited_stages = BTreeSet::new();
        let mut listed: BTreeMap<String, OutlineArg> = BTreeMap::new();
        self.collect_args(self.target, &mut visited_stages, &mut listed);
        let mut args: Vec<OutlineArg> = listed.into_values().collect();
        args.sort_by_key(|a| a.line);
        let (secrets, ssh) = self.mounted_secrets();
        let target = self.target_stage();
        Outline {
            name: target.name.clone(),
            description: target.from.description.clone(),
            args,
            secrets,
            ssh,
        }
    }

    fn collect_args(
        &self,
        id: StageId,
        visited: &mut BTreeSet<StageId>,
        listed: &mut BTreeMap<String, OutlineArg>,
    ) {
        if !visited.insert(id) {
            return;
        }
        let stage = self.stage(id);
        let mut known: BTreeMap<&str, ArgInfo> = self
            .global_args
            .iter()
            .map(|a| (a.name.as_str(), (a.value.clone(), a.description.clone(), a.line)))
            .collect();
        let mut used: BTreeSet<&str> = BTreeSet::new();
        let mut base = Some(stage);
        while let Some(s) = base {
            used.extend(s.from_args.iter().map(String::as_str));
            base = match s.base {
                Base::Stage(b) => Some(self.stage(b)),
                Base::Scratch | Base::Image(_) => None,
            };
        }
        for step in &stage.steps {
            let Instruction::Arg(defs) = &step.instruction else {
                continue;
            };
            for def in defs {
                used.insert(&def.name);
                let given = self.build_args.get(&def.name);
                // `ARG NAME` with no default takes the global value and keeps its description.
                if given.is_none() && def.default.is_none() && self.global_env.contains_key(&def.name) {
                    continue;
                }
                let value = given.cloned().or_else(|| def.default.clone());
                // A redeclared global without a comment of its own keeps the global's description.
                let description = def
                    .description
                    .clone()
                    .or_else(|| known.get(def.name.as_str()).and_then(|k| k.1.clone()));
                known.insert(&def.name, (value, description, step.span.start));
            }
        }
        self.add_uses(&mut used);
        for name in used {
            if let Some(arg) = listed.get_mut(name) {
                if !arg.stages.contains(&id) {
                    arg.stages.push(id);
                }
            } else if let Some((value, description, line)) = known.get(name) {
                let arg = OutlineArg {
                    name: name.to_owned(),
                    value: value.clone(),
                    description: description.clone(),
                    line: *line,
                    stages: vec![id],
                };
                listed.insert(name.to_owned(), arg);
            }
        }
        if let Base::Stage(b) = stage.base {
            self.collect_args(b, visited, listed);
        }
        for dep in &stage.dependencies {
            if let Input::Stage(d) = dep.input {
                self.collect_args(d, visited, listed);
            }
        }
    }

    /// Adds the global args that used global args refer to, transitively.
    fn add_uses<'a>(&'a self, used: &mut BTreeSet<&'a str>) {
        let mut todo: Vec<&str> = used.iter().copied().collect();
        while let Some(name) = todo.pop() {
            for arg in self.global_args.iter().filter(|a| a.name == name) {
                for other in &arg.uses {
                    if used.insert(other) {
                        todo.push(other);
                    }
                }
            }
        }
    }

    fn mounted_secrets(&self) -> (Vec<OutlineSecret>, Vec<OutlineSecret>) {
        let (mut secrets, mut ssh): (Vec<OutlineSecret>, Vec<OutlineSecret>) = (Vec::new(), Vec::new());
        for step in self.needed.iter().flat_map(|id| &self.stage(*id).steps) {
            let Instruction::Run(run) = &step.instruction else {
                continue;
            };
            for mount in &run.mounts {
                let (list, name) = match mount.kind {
                    MountType::Secret => {
                        let base = mount
                            .target
                            .as_deref()
                            .map(|t| t.rsplit('/').next().unwrap_or(t).to_owned());
                        (
                            &mut secrets,
                            mount.source.clone().or_else(|| mount.id.clone()).or(base),
                        )
                    }
                    MountType::Ssh => (
                        &mut ssh,
                        Some(mount.id.clone().unwrap_or_else(|| "default".to_owned())),
                    ),
                    MountType::Bind | MountType::Cache | MountType::Tmpfs => continue,
                };
                let Some(name) = name else { continue };
                if !list.iter().any(|s| s.name == name) {
                    list.push(OutlineSecret {
                        name,
                        required: mount.required,
                        line: step.span.start,
                    });
                }
            }
        }
        (secrets, ssh)
    }
}
