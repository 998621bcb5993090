//! The scheduler: runs the stages the target needs, each as soon as the stages it reads are done.
//!
//! Every needed stage is a future; they all run concurrently on one thread (the work that blocks runs
//! on tokio's blocking pool, inside the [`Engine`]). A stage waits for its FROM stage and for the
//! stages its `COPY --from` and `RUN --mount=from=` read, then lowers its instructions one by one:
//! config-only instructions just change its state; the others get a cache key and are either found in
//! the cache or executed. Identical work runs once per build: two stages resolving the same image, or
//! reaching the same cache key, share one result. The first failure ends the build: the other
//! stages' futures are dropped, which drops the guards of the work they had in flight (the engine
//! kills running processes and removes active snapshots when its futures are dropped).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;

use futures_util::future::try_join_all;
use kiln_frontend::graph::{Base, BuildGraph, Input, Platform, Stage, StageId};
use kiln_frontend::instruction::{self, Instruction, MountType, Network, Step};
use kiln_frontend::shell::Lexer;
use kiln_frontend::syntax;
use tokio::sync::{OnceCell, watch};

use super::cache::{CacheRecord, Layer};
use super::cachekey::{self, CacheKey, CopyInputKey};
use super::error::BuildError;
use super::image::ImageConfig;
use super::lower::{self, LowerError, Scope};
use super::op::{CopyOp, CopySource, Op};
use super::progress::{Progress, Vertex};
use super::state::{StageState, Start};
use crate::content::Digest;

/// A filesystem as a chain of layers: the key of its last step, the committed snapshot holding it
/// (`None` for an empty filesystem) and its layers, bottom first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chain {
    pub(crate) key: CacheKey,
    pub(crate) snapshot: Option<String>,
    pub(crate) layers: Vec<ChainLayer>,
}

/// One layer of a [`Chain`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ChainLayer {
    /// A base image's layer: its blob is in the store.
    Image(Layer),
    /// A step's result, whose layer blob is written when an image needs it (`record.layer` is `None`
    /// until then).
    Step {
        /// The step's cache key.
        key: CacheKey,
        /// Its record.
        record: CacheRecord,
    },
}

/// A base image after resolution: what FROM shows and starts from.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedImage {
    /// The name progress shows: `docker.io/library/busybox:latest@sha256:...`.
    pub(crate) name: String,
    /// The image's manifest digest.
    pub(crate) manifest: Digest,
    /// Its config.
    pub(crate) config: ImageConfig,
}

/// A resolved image and its unpacked layers.
type BaseImage = (ResolvedImage, Chain);

/// What a stage hands to the stages that read it, and the target to the exporter.
#[derive(Debug, Clone)]
pub(crate) struct StageResult {
    pub(crate) state: StageState,
    pub(crate) chain: Chain,
}

/// A step to execute, with everything it reads.
pub(crate) struct Job<'a> {
    /// The filesystem it starts from.
    pub(crate) parent: &'a Chain,
    /// What to do.
    pub(crate) op: &'a Op,
    /// The key its result is recorded under.
    pub(crate) key: &'a CacheKey,
    /// The filesystems of the stages and images it reads (`COPY --from`, `--mount=from=`).
    pub(crate) inputs: &'a [(Input, Chain)],
    /// Where its output goes.
    pub(crate) vertex: &'a Vertex,
    /// Whether its result is a layer of the image being built (its stage is the target or one the
    /// target starts FROM): the engine may start writing the layer blob right away.
    pub(crate) exported: bool,
}

/// The work the scheduler orders: resolving images, the cache, running steps. The real engine drives
/// the store, registry, snapshotter and executor; tests drive a fake.
pub(crate) trait Engine {
    /// Finds (pulling if needed) the image `reference` for `platform`.
    async fn resolve(&self, reference: &str, platform: &Platform) -> Result<ResolvedImage, BuildError>;
    /// Makes the image's layers available as a committed snapshot; `Ok(true)` if work was needed.
    async fn unpack(&self, image: &ResolvedImage, key: &CacheKey) -> Result<(Chain, bool), BuildError>;
    /// The checksum of the context files `sources` select (minus `excludes`).
    async fn context_checksum(&self, sources: &[String], excludes: &[String]) -> Result<Digest, BuildError>;
    /// A usable cache record for `key`: recorded, and its snapshot and layer still present.
    async fn lookup(&self, key: &CacheKey) -> Result<Option<CacheRecord>, BuildError>;
    /// Runs a step and records its result under its key.
    async fn execute(&self, job: Job<'_>) -> Result<CacheRecord, BuildError>;
}

/// Build-wide settings the scheduler applies.
pub(crate) struct Settings<'a> {
    /// The Dockerfile's display name, for errors.
    pub(crate) file: &'a str,
    /// Run every step, ignoring the cache.
    pub(crate) no_cache: bool,
    /// The network RUN gets when it does not say.
    pub(crate) network: Network,
}

/// One build's scheduling state.
pub(crate) struct Scheduler<'a, E> {
    engine: &'a E,
    graph: &'a BuildGraph,
    settings: Settings<'a>,
    progress: Progress,
    lexer: Lexer,
    stages: HashMap<StageId, watch::Sender<Option<Arc<StageResult>>>>,
    images: RefCell<HashMap<String, Rc<OnceCell<Arc<BaseImage>>>>>,
    steps: RefCell<HashMap<CacheKey, Rc<OnceCell<CacheRecord>>>>,
    /// The stages whose steps become layers of the image: the target and the stages it is FROM.
    exported: HashSet<StageId>,
    /// Whether progress names carry the stage name (BuildKit drops it when there is one stage).
    named: bool,
}

impl<'a, E: Engine> Scheduler<'a, E> {
    pub(crate) fn new(
        engine: &'a E,
        graph: &'a BuildGraph,
        settings: Settings<'a>,
        progress: Progress,
    ) -> Self {
        let stages = graph
            .needed
            .iter()
            .map(|id| (*id, watch::channel(None).0))
            .collect();
        Scheduler {
            engine,
            graph,
            settings,
            progress,
            lexer: Lexer::new(graph.escape.as_char()),
            stages,
            images: RefCell::new(HashMap::new()),
            steps: RefCell::new(HashMap::new()),
            exported: exported_stages(graph),
            named: state_count(graph) > 1,
        }
    }

    /// Runs every needed stage; returns the target's result.
    pub(crate) async fn run(&self) -> Result<Arc<StageResult>, BuildError> {
        let futures = self.graph.needed.iter().map(|id| self.stage(*id));
        let results = try_join_all(futures).await?;
        let position = self.graph.needed.iter().position(|id| *id == self.graph.target);
        Ok(Arc::clone(&results[position.expect("the target is needed")]))
    }

    async fn stage(&self, id: StageId) -> Result<Arc<StageResult>, BuildError> {
        let stage = self.graph.stage(id);
        let platform = stage
            .platform
            .clone()
            .unwrap_or_else(|| self.graph.target_platform.clone());
        let mut counter = StepCounter::new(self, stage);
        let (start, mut chain) = match &stage.base {
            Base::Scratch => (StageState::scratch(&platform), scratch_chain(&platform)),
            Base::Stage(base) => {
                let base = self.wait(*base).await?;
                (StageState::from_stage(&base.state), base.chain.clone())
            }
            Base::Image(reference) => {
                let image = self.image(reference, &platform, Some(&mut counter)).await?;
                (StageState::from_image(image.0.config.clone()), image.1.clone())
            }
        };
        let Start { mut state, triggers } = start;
        let triggers = self.parse_triggers(stage, &triggers)?;
        counter.total += triggers.len();
        let resolve = |name: &str| resolve_input(self.graph, name);
        let scope = Scope {
            lexer: &self.lexer,
            global_env: &self.graph.global_env,
            build_args: &self.graph.build_args,
            resolve: &resolve,
        };
        let steps = triggers
            .iter()
            .map(|s| (s, true))
            .chain(stage.steps.iter().map(|s| (s, false)));
        for (step, onbuild) in steps {
            let lowered = lower::lower(&mut state, step, &scope)
                .map_err(|e| BuildError::instruction(self.settings.file, step.span.start, e))?;
            let Some(mut op) = lowered.op else { continue };
            if let Op::Run(run) = &mut op {
                if run.network == Network::Default {
                    run.network = self.settings.network;
                }
            }
            let name = counter.name(lowered.name.as_deref().unwrap_or_default(), onbuild);
            let exported = self.exported.contains(&id);
            chain = self.step(step, &op, chain, &platform, name, exported).await?;
        }
        let result = Arc::new(StageResult { state, chain });
        // `send_replace` stores the value even when no one has subscribed yet (`send` would not).
        self.stages[&id].send_replace(Some(Arc::clone(&result)));
        Ok(result)
    }

    /// Waits for a stage's result.
    async fn wait(&self, id: StageId) -> Result<Arc<StageResult>, BuildError> {
        // Only an ONBUILD trigger can name a stage the plan did not include.
        let sender = self.stages.get(&id).ok_or_else(|| BuildError::Unsupported {
            what: format!(
                "an ONBUILD trigger reading stage {:?}, which the target does not otherwise need",
                self.graph.stage(id).display_name()
            ),
        })?;
        let mut rx = sender.subscribe();
        let value = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| BuildError::Interrupted)?;
        Ok(Arc::clone(value.as_ref().expect("waited for a value")))
    }

    /// Resolves and unpacks an image once per build. `counter` is the stage whose FROM it is, which
    /// numbers the FROM vertex.
    async fn image(
        &self,
        reference: &str,
        platform: &Platform,
        counter: Option<&mut StepCounter>,
    ) -> Result<Arc<BaseImage>, BuildError> {
        let cell_key = format!("{reference}\0{platform}");
        let cell = Rc::clone(self.images.borrow_mut().entry(cell_key).or_default());
        let from_name = counter.map(StepCounter::reserve);
        cell.get_or_try_init(|| async {
            let metadata = self
                .progress
                .start(format!("[internal] load metadata for {}", display_ref(reference)));
            let resolved = self
                .engine
                .resolve(reference, platform)
                .await
                .inspect_err(|e| metadata.failed(&e.to_string()))?;
            metadata.done();
            let key = cachekey::image(&resolved.manifest, &platform.to_string());
            let vertex = self.progress.start(match &from_name {
                Some(prefix) => format!("{prefix}FROM {}", resolved.name),
                None => format!("FROM {}", resolved.name),
            });
            let (chain, worked) = self
                .engine
                .unpack(&resolved, &key)
                .await
                .inspect_err(|e| vertex.failed(&e.to_string()))?;
            if worked {
                vertex.done();
            } else {
                vertex.cached();
            }
            Ok(Arc::new((resolved, chain)))
        })
        .await
        .map(Arc::clone)
    }

    /// Keys one step, then takes it from the cache or runs it.
    async fn step(
        &self,
        step: &Step,
        op: &Op,
        parent: Chain,
        platform: &Platform,
        name: String,
        exported: bool,
    ) -> Result<Chain, BuildError> {
        let inputs = self.inputs(op, platform).await?;
        let key = match self.key(op, &parent, &inputs).await {
            Ok(key) => key,
            // What the step reads from the context is missing or unreadable: as in BuildKit, the
            // step fails (with its Dockerfile lines) before it runs.
            Err(BuildError::Context(cause)) => {
                let vertex = self.progress.start(name.clone());
                let error = BuildError::step(
                    format!("failed to compute cache key: {}", super::error::chain(&*cause)),
                    Vec::new(),
                );
                vertex.failed(&error.to_string());
                return Err(self.locate(error, step, name));
            }
            Err(error) => return Err(error),
        };
        let cell = Rc::clone(self.steps.borrow_mut().entry(key.clone()).or_default());
        let vertex = self.progress.start(name.clone());
        let mut ran = false;
        let record = cell
            .get_or_try_init(|| async {
                if !self.settings.no_cache {
                    if let Some(record) = self.engine.lookup(&key).await? {
                        return Ok(record);
                    }
                }
                ran = true;
                let job = Job {
                    parent: &parent,
                    op,
                    key: &key,
                    inputs: &inputs,
                    vertex: &vertex,
                    exported,
                };
                self.engine.execute(job).await
            })
            .await;
        let record = match record {
            Ok(record) => record.clone(),
            Err(error) => {
                vertex.failed(&error.to_string());
                return Err(self.locate(error, step, name));
            }
        };
        if ran {
            vertex.done();
        } else {
            vertex.cached();
        }
        let snapshot = Some(record.snapshot.clone());
        let mut layers = parent.layers;
        layers.push(ChainLayer::Step {
            key: key.clone(),
            record,
        });
        Ok(Chain {
            key,
            snapshot,
            layers,
        })
    }

    /// Gives a failed step's error its vertex and Dockerfile lines.
    fn locate(&self, error: BuildError, step: &Step, name: String) -> BuildError {
        match error {
            BuildError::StepFailed(mut failure) => {
                failure.vertex = name;
                self.settings.file.clone_into(&mut failure.file);
                failure.lines = (step.span.start, step.span.end);
                BuildError::StepFailed(failure)
            }
            // A source the context lacks: `Dockerfile:2: ... "/app.txt": not found`.
            BuildError::Context(cause) => BuildError::Instruction {
                file: self.settings.file.to_owned(),
                line: step.span.start,
                cause,
            },
            other => other,
        }
    }

    /// The filesystems a step reads besides its parent.
    async fn inputs(&self, op: &Op, platform: &Platform) -> Result<Vec<(Input, Chain)>, BuildError> {
        let wanted: Vec<&Input> = match op {
            Op::Copy(copy) => match &copy.source {
                CopySource::Input(input) => vec![input],
                CopySource::Context => vec![],
            },
            Op::Run(run) => run.mounts.iter().filter_map(|m| m.from.as_ref()).collect(),
            Op::Mkdir(_) => vec![],
        };
        let mut inputs = Vec::with_capacity(wanted.len());
        for input in wanted {
            let chain = match input {
                Input::Stage(id) => self.wait(*id).await?.chain.clone(),
                Input::Image(reference) => self.image(reference, platform, None).await?.1.clone(),
            };
            inputs.push((input.clone(), chain));
        }
        Ok(inputs)
    }

    /// The step's cache key (see `cachekey` for what goes in).
    async fn key(&self, op: &Op, parent: &Chain, inputs: &[(Input, Chain)]) -> Result<CacheKey, BuildError> {
        let input_key = |input: &Input| {
            inputs
                .iter()
                .find(|(i, _)| i == input)
                .map(|(_, c)| c.key.clone())
        };
        Ok(match op {
            Op::Mkdir(mkdir) => cachekey::mkdir(&parent.key, mkdir),
            Op::Copy(copy) => match &copy.source {
                CopySource::Input(input) => {
                    let key = input_key(input).expect("inputs hold every source");
                    cachekey::copy(&parent.key, copy, CopyInputKey::Result(&key))
                }
                CopySource::Context => {
                    let checksum = self.copy_checksum(copy).await?;
                    cachekey::copy(&parent.key, copy, CopyInputKey::Context(&checksum))
                }
            },
            Op::Run(run) => {
                let mut mount_keys = Vec::with_capacity(run.mounts.len());
                for mount in &run.mounts {
                    mount_keys.push(match (&mount.from, mount.mount.kind) {
                        (Some(input), _) => input_key(input),
                        // A bind mount of the context keys on the files it shows.
                        (None, MountType::Bind) => {
                            let source = mount.mount.source.clone().unwrap_or_else(|| ".".to_owned());
                            let checksum = self.engine.context_checksum(&[source], &[]).await?;
                            Some(CacheKey::from_digest(checksum))
                        }
                        (None, _) => None,
                    });
                }
                cachekey::run(&parent.key, run, &mount_keys)
            }
        })
    }

    async fn copy_checksum(&self, copy: &CopyOp) -> Result<Digest, BuildError> {
        let local: Vec<String> = copy
            .sources
            .iter()
            .filter(|s| super::lower::classify(s) == super::lower::Remote::Local)
            .cloned()
            .collect();
        if local.is_empty() {
            // Only URLs and heredocs: nothing in the context is read.
            return Ok(Digest::of(b""));
        }
        self.engine.context_checksum(&local, &copy.excludes).await
    }

    /// Parses the ONBUILD triggers a stage inherits; BuildKit places them at the stage's FROM line.
    fn parse_triggers(&self, stage: &Stage, triggers: &[String]) -> Result<Vec<Step>, BuildError> {
        let fail = |expression: &str, reason: String| {
            BuildError::instruction(
                self.settings.file,
                stage.span.start,
                LowerError::Trigger {
                    expression: expression.to_owned(),
                    reason,
                },
            )
        };
        triggers
            .iter()
            .map(|expression| {
                let tree =
                    syntax::parse(expression.as_bytes()).map_err(|e| fail(expression, e.to_string()))?;
                let [node] = tree.instructions.as_slice() else {
                    return Err(fail(
                        expression,
                        "onbuild trigger should be a single expression".to_owned(),
                    ));
                };
                let mut step = instruction::parse(node, self.graph.escape)
                    .map_err(|e| fail(expression, e.to_string()))?;
                if matches!(step.instruction, Instruction::From(_) | Instruction::Onbuild(_)) {
                    return Err(fail(
                        expression,
                        format!(
                            "{} isn't allowed as an ONBUILD trigger",
                            step.instruction.keyword()
                        ),
                    ));
                }
                step.span = stage.span;
                Ok(step)
            })
            .collect()
    }
}

/// Numbers a stage's vertices as BuildKit's `prefixCommand` does: `[name i/total] `, the index
/// right-aligned to the width of the total.
struct StepCounter {
    stage: Option<String>,
    total: usize,
    index: usize,
}

impl StepCounter {
    fn new<E>(scheduler: &Scheduler<'_, E>, stage: &Stage) -> StepCounter {
        let image_base = usize::from(matches!(stage.base, Base::Image(_)));
        let steps = stage
            .steps
            .iter()
            .filter(|s| {
                matches!(
                    s.instruction,
                    Instruction::Run(_)
                        | Instruction::Copy(_)
                        | Instruction::Add(_)
                        | Instruction::Workdir(_)
                )
            })
            .count();
        StepCounter {
            stage: scheduler.named.then(|| stage.display_name()),
            total: image_base + steps,
            index: 0,
        }
    }

    /// The next prefix.
    fn reserve(&mut self) -> String {
        self.index += 1;
        let width = self.total.max(1).ilog10() as usize + 1;
        match &self.stage {
            Some(stage) => format!("[{stage} {:>width$}/{}] ", self.index, self.total),
            None => format!("[{:>width$}/{}] ", self.index, self.total),
        }
    }

    fn name(&mut self, name: &str, onbuild: bool) -> String {
        let prefix = self.reserve();
        if onbuild {
            format!("{prefix}ONBUILD {name}")
        } else {
            format!("{prefix}{name}")
        }
    }
}

/// BuildKit's count of dispatch states: the stages plus one per distinct image that `COPY --from` or
/// `--mount=from=` reads. With one state, progress names leave the stage name out.
fn state_count(graph: &BuildGraph) -> usize {
    let mut images: Vec<&str> = Vec::new();
    for dep in graph.stages.iter().flat_map(|s| &s.dependencies) {
        if let Input::Image(image) = &dep.input {
            if !images.contains(&image.as_str()) {
                images.push(image);
            }
        }
    }
    graph.stages.len() + images.len()
}

/// The target and the stages it is built FROM, transitively: the stages whose steps are the image's
/// layers.
fn exported_stages(graph: &BuildGraph) -> HashSet<StageId> {
    let mut exported = HashSet::new();
    let mut id = graph.target;
    while exported.insert(id) {
        match &graph.stage(id).base {
            Base::Stage(base) => id = *base,
            Base::Image(_) | Base::Scratch => break,
        }
    }
    exported
}

/// What a `--from` name means: the last stage of that name, else an image.
fn resolve_input(graph: &BuildGraph, name: &str) -> Input {
    if let Ok(index) = name.parse::<usize>() {
        if index < graph.stages.len() {
            return Input::Stage(StageId(index));
        }
    }
    graph
        .stage_by_name(name)
        .map_or_else(|| Input::Image(name.to_owned()), |s| Input::Stage(s.id))
}

/// An empty filesystem.
fn scratch_chain(platform: &Platform) -> Chain {
    Chain {
        key: cachekey::scratch(&platform.to_string()),
        snapshot: None,
        layers: Vec::new(),
    }
}

/// How BuildKit names an image in `load metadata for`: fully qualified with a tag.
fn display_ref(reference: &str) -> String {
    match crate::reference::ImageRef::parse(reference) {
        Ok(r) => r.to_string(),
        Err(_) => reference.to_owned(),
    }
}

#[cfg(test)]
mod tests;
