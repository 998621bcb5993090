//! Scheduling against a fake engine: which steps run, in what order, once, and how failures end a
//! build. (The real engine's behaviour is tested end to end in `tests/cli/build_*`.)

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use kiln_frontend::graph::{Planner, Platform};
use kiln_frontend::instruction::Network;

use super::*;
use crate::solver::error::StepFailure;
use crate::solver::progress::Event;

#[derive(Default)]
struct Fake {
    /// Names of executed steps, with `start`/`end` markers to see interleaving.
    log: RefCell<Vec<String>>,
    cache: RefCell<HashMap<CacheKey, CacheRecord>>,
    resolves: Cell<usize>,
    onbuild: Vec<String>,
    fail: Option<&'static str>,
}

fn describe(op: &Op) -> String {
    match op {
        Op::Run(run) => run.args.last().cloned().unwrap_or_default(),
        Op::Copy(copy) => format!("copy {} {}", copy.sources.join(","), copy.dest),
        Op::Mkdir(mkdir) => format!("mkdir {}", mkdir.path),
    }
}

impl Engine for Fake {
    async fn resolve(&self, reference: &str, _platform: &Platform) -> Result<ResolvedImage, BuildError> {
        self.resolves.set(self.resolves.get() + 1);
        let mut config = ImageConfig::empty("linux", "amd64", None);
        config.config.on_build.clone_from(&self.onbuild);
        Ok(ResolvedImage {
            name: format!("docker.io/library/{reference}:latest"),
            manifest: Digest::of(reference.as_bytes()),
            config,
        })
    }

    async fn unpack(&self, image: &ResolvedImage, key: &CacheKey) -> Result<(Chain, bool), BuildError> {
        let layer = Layer {
            digest: image.manifest.clone(),
            diff_id: image.manifest.clone(),
            size: 1,
            media_type: "layer".into(),
        };
        Ok((
            Chain {
                key: key.clone(),
                snapshot: Some(image.name.clone()),
                layers: vec![ChainLayer::Image(layer)],
            },
            true,
        ))
    }

    async fn context_checksum(&self, sources: &[String], _excludes: &[String]) -> Result<Digest, BuildError> {
        Ok(Digest::of(sources.join("\n").as_bytes()))
    }

    async fn lookup(&self, key: &CacheKey) -> Result<Option<CacheRecord>, BuildError> {
        Ok(self.cache.borrow().get(key).cloned())
    }

    async fn execute(&self, job: Job<'_>) -> Result<CacheRecord, BuildError> {
        let what = describe(job.op);
        self.log.borrow_mut().push(format!("start {what}"));
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        if self.fail.is_some_and(|f| what.contains(f)) {
            job.vertex.log(crate::solver::LogStream::Stderr, "boom");
            return Err(BuildError::step(
                format!("process \"/bin/sh -c {what}\" did not complete successfully: exit code: 1"),
                vec!["boom".into()],
            ));
        }
        self.log.borrow_mut().push(format!("end {what}"));
        let record = CacheRecord {
            snapshot: job.key.to_string(),
            layer: None,
            created: std::time::SystemTime::now(),
        };
        self.cache.borrow_mut().insert(job.key.clone(), record.clone());
        Ok(record)
    }
}

struct Outcome {
    result: Result<Arc<StageResult>, BuildError>,
    events: Vec<Event>,
}

fn solve(fake: &Fake, dockerfile: &str, target: Option<&str>, no_cache: bool) -> Outcome {
    let tree = syntax::parse(dockerfile.as_bytes()).unwrap();
    let mut planner = Planner::new(&tree, Platform::new("linux", "amd64", None));
    if let Some(target) = target {
        planner = planner.target(target);
    }
    let graph = planner.plan().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        let (progress, mut rx) = Progress::channel();
        let settings = Settings {
            file: "Dockerfile",
            no_cache,
            network: Network::Default,
        };
        let scheduler = Scheduler::new(fake, &graph, settings, progress);
        let result = scheduler.run().await;
        drop(scheduler);
        let mut events = Vec::new();
        while let Some(event) = rx.recv().await {
            events.push(event);
        }
        Outcome { result, events }
    })
}

fn names(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Started { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

fn cached(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::Cached { .. }))
        .count()
}

const MULTI: &str = "FROM busybox AS build\nWORKDIR /src\nCOPY . .\nRUN make\n\
                     FROM busybox AS unused\nRUN never\n\
                     FROM scratch AS release\nCOPY --from=build /src/app /app\n";

#[test]
fn runs_needed_stages_and_names_vertices_as_buildkit() {
    let fake = Fake::default();
    let out = solve(&fake, MULTI, None, false);
    let target = out.result.unwrap();
    assert_eq!(
        *fake.log.borrow(),
        [
            "start mkdir /src",
            "end mkdir /src",
            "start copy . /src/",
            "end copy . /src/",
            "start make",
            "end make",
            "start copy /src/app /app",
            "end copy /src/app /app"
        ]
    );
    assert_eq!(
        names(&out.events),
        [
            "[internal] load metadata for docker.io/library/busybox:latest",
            "[build 1/4] FROM docker.io/library/busybox:latest",
            "[build 2/4] WORKDIR /src",
            "[build 3/4] COPY . .",
            "[build 4/4] RUN make",
            "[release 1/1] COPY --from=build /src/app /app",
        ]
    );
    // The base layer, three build layers, and the release's own layer on scratch.
    assert_eq!(target.chain.layers.len(), 1);
    assert_eq!(target.state.image.history.len(), 1);
}

#[test]
fn a_second_build_hits_the_cache_and_no_cache_misses() {
    let fake = Fake::default();
    let first = solve(&fake, MULTI, None, false).result.unwrap();
    fake.log.borrow_mut().clear();
    let second = solve(&fake, MULTI, None, false);
    assert!(fake.log.borrow().is_empty(), "{:?}", fake.log.borrow());
    assert_eq!(cached(&second.events), 4);
    assert_eq!(second.result.unwrap().chain, first.chain);
    let third = solve(&fake, MULTI, None, true);
    assert_eq!(fake.log.borrow().len(), 8);
    assert_eq!(cached(&third.events), 0);
}

#[test]
fn a_change_misses_from_that_step_on() {
    let fake = Fake::default();
    solve(&fake, "FROM scratch\nCOPY a /a\nRUN one\nRUN two\n", None, false);
    fake.log.borrow_mut().clear();
    solve(&fake, "FROM scratch\nCOPY a /a\nRUN ONE\nRUN two\n", None, false);
    assert_eq!(
        *fake.log.borrow(),
        ["start ONE", "end ONE", "start two", "end two"]
    );
}

#[test]
fn independent_stages_run_concurrently_and_identical_steps_once() {
    let fake = Fake::default();
    let dockerfile = "FROM scratch AS a\nRUN same\nRUN a\nFROM scratch AS b\nRUN same\nRUN b\n\
                      FROM scratch\nCOPY --from=a / /a\nCOPY --from=b / /b\n";
    let out = solve(&fake, dockerfile, None, false);
    out.result.unwrap();
    let log = fake.log.borrow();
    assert_eq!(log.iter().filter(|l| *l == "start same").count(), 1, "{log:?}");
    let start_b = log.iter().position(|l| l == "start b").unwrap();
    let end_a = log.iter().position(|l| l == "end a").unwrap();
    assert!(start_b < end_a, "a and b overlap: {log:?}");
}

#[test]
fn an_image_is_resolved_once_per_build() {
    let fake = Fake::default();
    let dockerfile = "FROM busybox AS a\nRUN a\nFROM busybox AS b\nRUN b\nFROM scratch\n\
                      COPY --from=a / /a\nCOPY --from=b / /b\nCOPY --from=busybox /bin /bin\n";
    solve(&fake, dockerfile, None, false).result.unwrap();
    assert_eq!(fake.resolves.get(), 1);
}

#[test]
fn a_failing_step_stops_the_build_with_its_line() {
    let fake = Fake {
        fail: Some("exit 3"),
        ..Fake::default()
    };
    let out = solve(
        &fake,
        "FROM scratch\nRUN true\nRUN exit 3\nRUN after\n",
        None,
        false,
    );
    let Err(BuildError::StepFailed(failure)) = out.result else {
        panic!("{:?}", out.result.err());
    };
    let StepFailure {
        vertex,
        lines,
        logs,
        message,
        file,
        ..
    } = *failure;
    assert_eq!(vertex, "[2/3] RUN exit 3");
    assert_eq!((file.as_str(), lines), ("Dockerfile", (3, 3)));
    assert_eq!(logs, ["boom"]);
    assert!(message.starts_with("process \"/bin/sh -c exit 3\""));
    assert!(!fake.log.borrow().iter().any(|l| l.contains("after")));
    assert!(out.events.iter().any(|e| matches!(e, Event::Failed { .. })));
}

#[test]
fn onbuild_triggers_of_the_base_run_first() {
    let fake = Fake {
        onbuild: vec!["RUN echo trigger".into()],
        ..Fake::default()
    };
    let out = solve(&fake, "FROM base\nRUN own\n", None, false);
    out.result.unwrap();
    // BuildKit names FROM before it adds the triggers to the count, hence `1/2` then `2/3`.
    assert_eq!(
        names(&out.events)[1..],
        [
            "[1/2] FROM docker.io/library/base:latest",
            "[2/3] ONBUILD RUN echo trigger",
            "[3/3] RUN own"
        ]
    );
}

#[test]
fn instruction_errors_carry_the_line() {
    let fake = Fake::default();
    let out = solve(&fake, "FROM scratch\n\nEXPOSE 80/nope\n", None, false);
    assert_eq!(
        out.result.unwrap_err().to_string(),
        "Dockerfile:3: invalid proto: nope"
    );
}

#[test]
fn target_selects_the_stages_to_run() {
    let fake = Fake::default();
    solve(&fake, MULTI, Some("unused"), false).result.unwrap();
    assert_eq!(*fake.log.borrow(), ["start never", "end never"]);
}
