//! Lowering whole Dockerfiles: config and history as BuildKit leaves them.

use std::collections::BTreeMap;

use kiln_frontend::graph::{Base, BuildGraph, Input, Planner, Platform, StageId};
use kiln_frontend::shell::Lexer;
use kiln_frontend::syntax;

use super::{LowerError, Lowered, Scope, lower};
use crate::solver::image::ImageConfig;
use crate::solver::op::{CopySource, Op};
use crate::solver::state::StageState;

/// The final state of each needed stage and the lowered steps of the target; image bases start from
/// `base_config` (an empty linux/amd64 image by default).
struct Lowering {
    target: StageState,
    steps: Vec<Lowered>,
}

fn plan(dockerfile: &str, build_args: &[(&str, &str)]) -> BuildGraph {
    let tree = syntax::parse(dockerfile.as_bytes()).unwrap();
    Planner::new(&tree, Platform::new("linux", "amd64", None))
        .build_args(build_args.iter().map(|(k, v)| (*k, *v)))
        .plan()
        .unwrap()
}

fn lower_all(
    dockerfile: &str,
    build_args: &[(&str, &str)],
    base_config: &ImageConfig,
) -> Result<Lowering, LowerError> {
    let graph = plan(dockerfile, build_args);
    let lexer = Lexer::new(graph.escape.as_char());
    let resolve = |name: &str| match graph.stage_by_name(name) {
        Some(stage) => Input::Stage(stage.id),
        None => Input::Image(name.to_owned()),
    };
    let scope = Scope {
        lexer: &lexer,
        global_env: &graph.global_env,
        build_args: &graph.build_args,
        resolve: &resolve,
    };
    let mut done: BTreeMap<StageId, StageState> = BTreeMap::new();
    let mut steps = Vec::new();
    for id in &graph.needed {
        let stage = graph.stage(*id);
        let start = match &stage.base {
            Base::Scratch => StageState::scratch(&graph.target_platform),
            Base::Image(_) => StageState::from_image(base_config.clone()),
            Base::Stage(base) => StageState::from_stage(&done[base]),
        };
        let mut state = start.state;
        steps.clear();
        for step in &stage.steps {
            steps.push(lower(&mut state, step, &scope)?);
        }
        done.insert(*id, state);
    }
    Ok(Lowering {
        target: done.remove(&graph.target).unwrap(),
        steps,
    })
}

fn lower_ok(dockerfile: &str) -> Lowering {
    lower_all(dockerfile, &[], &ImageConfig::empty("linux", "amd64", None)).unwrap()
}

fn history(state: &StageState) -> Vec<(String, bool)> {
    state
        .image
        .history
        .iter()
        .map(|h| (h.created_by.clone().unwrap(), h.empty_layer))
        .collect()
}

fn created_by(state: &StageState) -> Vec<String> {
    history(state).into_iter().map(|(c, _)| c).collect()
}

#[test]
fn history_is_worded_as_buildkit_words_it() {
    let out = lower_ok(
        "FROM scratch\nENV A=1 B=\"two words\"\nLABEL version=1.0 \"com.example.x\"=y\nARG V=3\n\
         RUN make $V\nCOPY --chown=app:app --chmod=644 a b /dst/\nADD x.tar /\nWORKDIR app\nWORKDIR /\n\
         USER app\nEXPOSE 80 443/udp 8000-8001\nVOLUME /data /logs\nSTOPSIGNAL SIGTERM\n\
         SHELL [\"/bin/bash\", \"-c\"]\nCMD echo \"hi\"\nENTRYPOINT [\"/init\"]\nMAINTAINER me <me@x>\n\
         HEALTHCHECK --interval=1m30s --retries=3 CMD curl -f http://localhost/\nONBUILD RUN echo child\n",
    );
    assert_eq!(
        history(&out.target),
        [
            ("ENV A=1 B=two words".to_owned(), true),
            ("LABEL version=1.0 com.example.x=y".to_owned(), true),
            ("ARG V=3".to_owned(), true),
            ("RUN |1 V=3 /bin/sh -c make $V # buildkit".to_owned(), false),
            (
                "COPY --chown=app:app --chmod=644 a b /dst/ # buildkit".to_owned(),
                false
            ),
            ("ADD x.tar / # buildkit".to_owned(), false),
            ("WORKDIR /app".to_owned(), false),
            ("WORKDIR /".to_owned(), true),
            ("USER app".to_owned(), true),
            ("EXPOSE [443/udp 80/tcp 8000/tcp 8001/tcp]".to_owned(), true),
            ("VOLUME [/data /logs]".to_owned(), true),
            ("STOPSIGNAL SIGTERM".to_owned(), true),
            ("SHELL [/bin/bash -c]".to_owned(), true),
            (r#"CMD ["/bin/bash" "-c" "echo \"hi\""]"#.to_owned(), true),
            (r#"ENTRYPOINT ["/init"]"#.to_owned(), true),
            ("MAINTAINER me <me@x>".to_owned(), true),
            (
                "HEALTHCHECK {Test:[CMD-SHELL curl -f http://localhost/] Interval:1m30s Timeout:0s \
                 StartPeriod:0s StartInterval:0s Retries:3}"
                    .to_owned(),
                true
            ),
        ]
    );
    let config = &out.target.image.config;
    assert_eq!(
        config.env,
        [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "A=1",
            "B=two words"
        ]
    );
    assert_eq!(config.labels["com.example.x"], "y");
    assert_eq!(config.user, "app");
    assert_eq!(config.working_dir, "/");
    assert_eq!(config.shell, ["/bin/bash", "-c"]);
    // ENTRYPOINT after CMD in the same stage keeps the CMD.
    assert_eq!(config.cmd, ["/bin/bash", "-c", "echo \"hi\""]);
    assert!(config.args_escaped);
    assert_eq!(config.entrypoint, ["/init"]);
    assert_eq!(config.on_build, ["RUN echo child"]);
    assert_eq!(config.stop_signal, "SIGTERM");
    assert_eq!(config.healthcheck.as_ref().unwrap().interval, 90_000_000_000);
    assert_eq!(out.target.image.author.as_deref(), Some("me <me@x>"));
    let ports: Vec<&str> = config.exposed_ports.keys().map(String::as_str).collect();
    assert_eq!(ports, ["443/udp", "80/tcp", "8000/tcp", "8001/tcp"]);
    // ARG values never reach the config.
    assert!(!config.env.iter().any(|e| e.starts_with("V=")));
}

#[test]
fn arg_scoping_follows_buildkit() {
    let dockerfile = "ARG GLOBAL=g\nARG UNSET\nFROM scratch AS base\nARG GLOBAL\nARG LOCAL=l-$GLOBAL\n\
                      ARG OVERRIDDEN=default\nARG UNSET\nARG TARGETARCH\nRUN true\n\
                      FROM base\nRUN child\n";
    let out = lower_all(
        dockerfile,
        &[("OVERRIDDEN", "given"), ("UNUSED", "x")],
        &ImageConfig::default(),
    )
    .unwrap();
    // The child stage inherits the base stage's ARGs (BuildKit's `buildArgs` are copied at FROM).
    assert_eq!(
        created_by(&out.target).last().unwrap(),
        "RUN |5 GLOBAL=g LOCAL=l-g OVERRIDDEN=given UNSET= TARGETARCH=amd64 /bin/sh -c child # buildkit"
    );
    assert_eq!(
        created_by(&out.target)[..5],
        [
            "ARG GLOBAL=g",
            "ARG LOCAL=l-g",
            "ARG OVERRIDDEN=given",
            "ARG UNSET",
            "ARG TARGETARCH=amd64"
        ]
    );
    let Some(Op::Run(run)) = &out.steps[0].op else {
        panic!()
    };
    let env: BTreeMap<_, _> = run.env.iter().cloned().collect();
    assert_eq!(env["LOCAL"], "l-g");
    assert_eq!(env["TARGETARCH"], "amd64");
    assert!(!env.contains_key("UNSET"));
    assert!(!env.contains_key("UNUSED"));
}

#[test]
fn env_expands_against_the_environment_before_the_instruction() {
    let out = lower_ok("FROM scratch\nENV a=1\nENV a=2 b=$a\nENV c=${a}-${b}\n");
    let config = &out.target.image.config;
    assert_eq!(config.env[1..], ["a=2", "b=1", "c=2-1"]);
}

#[test]
fn entrypoint_clears_an_inherited_cmd() {
    let out = lower_ok("FROM scratch AS base\nCMD [\"serve\"]\nFROM base\nENTRYPOINT [\"/app\"]\n");
    assert!(out.target.image.config.cmd.is_empty());
    assert_eq!(out.target.image.config.entrypoint, ["/app"]);
}

#[test]
fn onbuild_triggers_are_cleared_in_children() {
    let out = lower_ok("FROM scratch AS base\nONBUILD RUN echo hi\nFROM base\nENV X=1\n");
    assert!(out.target.image.config.on_build.is_empty());
    let mut base = ImageConfig::empty("linux", "amd64", None);
    base.config.on_build = vec!["RUN echo from-base".into()];
    let start = StageState::from_image(base);
    assert_eq!(start.triggers, ["RUN echo from-base"]);
    assert!(start.state.image.config.on_build.is_empty());
}

#[test]
fn workdir_is_relative_and_makes_a_layer_with_the_user() {
    let out = lower_ok("FROM scratch\nUSER app\nWORKDIR /srv\nWORKDIR data/$NOPE\nCOPY . .\n");
    assert_eq!(out.target.image.config.working_dir, "/srv/data");
    let Some(Op::Mkdir(mkdir)) = &out.steps[1].op else {
        panic!()
    };
    assert_eq!(mkdir.path, "/srv");
    assert_eq!(mkdir.user, "app");
    assert_eq!(out.steps[2].name.as_deref(), Some("WORKDIR data/"));
    let Some(Op::Copy(copy)) = &out.steps[3].op else {
        panic!()
    };
    assert_eq!(copy.dest, "/srv/data/");
    assert_eq!(copy.source, CopySource::Context);
}

#[test]
fn run_forms_and_names() {
    let out = lower_ok(
        "FROM scratch\nENV NAME=world\nRUN echo \"hello $NAME\" $UNSET\nRUN [\"/bin/echo\", \"$NAME\"]\n\
         RUN --network=none <<EOF\necho one\necho two\nEOF\nRUN <<EOF\n#!/bin/sh\necho script\nEOF\n",
    );
    assert_eq!(
        out.steps[1].name.as_deref(),
        Some("RUN echo \"hello world\" $UNSET")
    );
    let runs: Vec<_> = out.steps[1..]
        .iter()
        .map(|s| match &s.op {
            Some(Op::Run(run)) => run.clone(),
            _ => panic!(),
        })
        .collect();
    assert_eq!(runs[0].args, ["/bin/sh", "-c", "echo \"hello $NAME\" $UNSET"]);
    assert_eq!(runs[1].args, ["/bin/echo", "$NAME"]);
    assert_eq!(runs[2].args, ["/bin/sh", "-c", "echo one\necho two\n"]);
    assert_eq!(runs[2].network, kiln_frontend::instruction::Network::None);
    assert_eq!(
        out.steps[3].name.as_deref(),
        Some("RUN --network=none <<EOF (echo one...)")
    );
    assert_eq!(runs[3].args, ["/bin/sh", "-c", "/dev/pipes/EOF"]);
    assert_eq!(
        runs[3].script.as_ref().unwrap().content,
        "#!/bin/sh\necho script\n"
    );
    assert_eq!(created_by(&out.target)[2], "RUN /bin/echo $NAME # buildkit");
}

#[test]
fn copy_from_stage_and_heredoc_sources() {
    let out = lower_ok(
        "FROM scratch AS build\nFROM scratch\nARG WHO=you\nCOPY --from=build /out /bin/\n\
         COPY <<EOF /greeting\nhello $WHO '$WHO'\nEOF\n",
    );
    let Some(Op::Copy(from)) = &out.steps[1].op else {
        panic!()
    };
    assert_eq!(from.source, CopySource::Input(Input::Stage(StageId(0))));
    let Some(Op::Copy(inline)) = &out.steps[2].op else {
        panic!()
    };
    assert_eq!(
        inline.inline,
        [("EOF".to_owned(), "hello you 'you'\n".to_owned())]
    );
    assert_eq!(created_by(&out.target)[2], "COPY <<EOF /greeting # buildkit");
}

#[test]
fn errors_speak_buildkit() {
    let err = |df: &str| {
        lower_all(df, &[], &ImageConfig::default())
            .err()
            .unwrap()
            .to_string()
    };
    assert_eq!(err("FROM scratch\nEXPOSE 80/xyz\n"), "invalid proto: xyz");
    assert_eq!(
        err("FROM scratch\nEXPOSE 99999\n"),
        "invalid containerPort: 99999"
    );
    assert_eq!(
        err("FROM scratch\nSTOPSIGNAL SIGNOPE\n"),
        "invalid signal: SIGNOPE"
    );
    assert_eq!(
        err("FROM scratch\nVOLUME $EMPTY\n"),
        "VOLUME specified can not be an empty string"
    );
    assert_eq!(
        err("FROM scratch\nCOPY http://x/y /\n"),
        "source can't be a URL for COPY"
    );
    assert_eq!(
        err("FROM scratch\nADD --checksum=sha256:00 a /\n"),
        "checksum requires HTTP(S) or Git sources"
    );
    assert_eq!(
        err("FROM scratch\nARG M=999\nCOPY --chmod=$M a /\n"),
        "invalid chmod parameter: '999'. it should be octal string and between 0 and 07777"
    );
    assert_eq!(
        err("FROM scratch\nENV X=${Y:?unset}\n"),
        r#"failed to process "${Y:?unset}": Y: unset"#
    );
}

#[test]
fn base_image_env_and_path() {
    let mut base = ImageConfig::empty("linux", "amd64", None);
    base.config.env = vec!["HOME=/root".into()];
    base.config.working_dir = String::new();
    base.created = Some("2024-01-01T00:00:00Z".into());
    let out = lower_all("FROM img\nWORKDIR x\nRUN env\n", &[], &base).unwrap();
    assert_eq!(out.target.image.created, None);
    assert_eq!(
        out.target.image.config.env[1],
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    );
    assert_eq!(out.target.image.config.working_dir, "/x");
    let Some(Op::Run(run)) = &out.steps[1].op else {
        panic!()
    };
    assert_eq!(run.cwd, "/x");
    assert_eq!(run.env[0], ("HOME".to_owned(), "/root".to_owned()));
}
