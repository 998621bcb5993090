//! Planning from hand-built nodes (end-to-end tests from Dockerfile text live in `tests/`).

use super::*;
use crate::syntax::{Arg, Directives, Dockerfile, Node};

/// One instruction per line: keyword, flags, arguments (JSON-free forms).
fn dockerfile(lines: &[(&str, &[&str], &[&str])]) -> Dockerfile {
    let instructions = lines
        .iter()
        .enumerate()
        .map(|(i, (kw, flags, args))| Node {
            keyword: kw.to_lowercase(),
            flags: flags.iter().map(|s| (*s).to_owned()).collect(),
            args: args.iter().map(|s| Arg::Word((*s).to_owned())).collect(),
            json: false,
            heredocs: vec![],
            original: format!("{kw} {} {}", flags.join(" "), args.join(" ")),
            comments: vec![],
            span: Span {
                start: i + 1,
                end: i + 1,
            },
        })
        .collect();
    Dockerfile {
        directives: Directives::default(),
        instructions,
        warnings: vec![],
    }
}

fn host() -> Platform {
    Platform::new("linux", "amd64", None)
}

fn plan(df: &Dockerfile) -> Result<BuildGraph, Error> {
    Planner::new(df, host()).plan()
}

fn ids(ids: &[StageId]) -> Vec<usize> {
    ids.iter().map(|id| id.index()).collect()
}

fn multi_stage() -> Dockerfile {
    dockerfile(&[
        ("FROM", &[], &["golang:1.22", "AS", "build"]),
        ("RUN", &[], &["go build"]),
        ("FROM", &[], &["alpine", "AS", "tools"]),
        ("FROM", &[], &["build", "AS", "test"]),
        ("RUN", &["--mount=type=bind,from=tools,target=/t"], &["go test"]),
        ("FROM", &[], &["scratch", "AS", "release"]),
        ("COPY", &["--from=build"], &["/out/app", "/app"]),
        ("COPY", &["--from=busybox:1.36"], &["/bin/sh", "/bin/sh"]),
    ])
}

#[test]
fn default_target_is_the_last_stage_and_unneeded_stages_are_pruned() {
    let graph = plan(&multi_stage()).unwrap();
    assert_eq!(graph.target, StageId(3));
    assert_eq!(graph.target_stage().name.as_deref(), Some("release"));
    assert_eq!(graph.target_stage().base, Base::Scratch);
    assert_eq!(ids(&graph.needed), [0, 3]);
    assert!(!graph.is_needed(StageId(1)));
    assert_eq!(graph.images(), ["golang:1.22", "busybox:1.36"]);
    assert_eq!(
        graph.target_stage().dependencies,
        [
            Dependency {
                step: 0,
                input: Input::Stage(StageId(0))
            },
            Dependency {
                step: 1,
                input: Input::Image("busybox:1.36".into())
            },
        ]
    );
}

#[test]
fn target_is_case_insensitive_and_follows_bases_and_mounts() {
    let graph = Planner::new(&multi_stage(), host())
        .target("TEST")
        .plan()
        .unwrap();
    assert_eq!(graph.target, StageId(2));
    assert_eq!(graph.stage(StageId(2)).base, Base::Stage(StageId(0)));
    assert_eq!(ids(&graph.needed), [0, 1, 2]);
    assert_eq!(graph.images(), ["golang:1.22", "alpine"]);
    assert_eq!(graph.global_env["TARGETSTAGE"], "TEST");
}

#[test]
fn unknown_target_suggests_a_stage() {
    let err = Planner::new(&multi_stage(), host())
        .target("biuld")
        .plan()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"target stage "biuld" could not be found (did you mean build?)"#
    );
    assert_eq!(err.line(), None);
    let err = Planner::new(&multi_stage(), host())
        .target("deploy")
        .plan()
        .unwrap_err();
    assert_eq!(err.to_string(), r#"target stage "deploy" could not be found"#);
}

#[test]
fn copy_from_index_and_unnamed_stages() {
    let df = dockerfile(&[
        ("FROM", &[], &["alpine"]),
        ("FROM", &[], &["scratch"]),
        ("COPY", &["--from=0"], &["/a", "/a"]),
    ]);
    let graph = plan(&df).unwrap();
    assert_eq!(
        graph.target_stage().dependencies[0].input,
        Input::Stage(StageId(0))
    );
    assert_eq!(graph.stage(StageId(0)).display_name(), "stage-0");
    let df = dockerfile(&[("FROM", &[], &["alpine"]), ("COPY", &["--from=5"], &["/a", "/a"])]);
    let err = plan(&df).unwrap_err();
    assert_eq!(
        (err.to_string().as_str(), err.line()),
        ("invalid stage index 5", Some(2))
    );
}

#[test]
fn a_stage_may_only_read_earlier_stages() {
    let df = dockerfile(&[
        ("FROM", &[], &["alpine", "AS", "a"]),
        ("COPY", &["--from=b"], &["/x", "/x"]),
        ("FROM", &[], &["alpine", "AS", "b"]),
    ]);
    let err = Planner::new(&df, host()).target("a").plan().unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"cannot copy from stage "b", it needs to be defined before current stage "a""#
    );
    assert_eq!(err.line(), Some(2));
    // Not needed by the default target: no error, as BuildKit never dispatches it.
    assert_eq!(ids(&plan(&df).unwrap().needed), [1]);
    // FROM of a later name is an image reference.
    let df = dockerfile(&[
        ("FROM", &[], &["later"]),
        ("FROM", &[], &["alpine", "AS", "later"]),
    ]);
    assert_eq!(
        plan(&df).unwrap().stage(StageId(0)).base,
        Base::Image("later".into())
    );
    let df = dockerfile(&[
        ("FROM", &[], &["alpine", "AS", "a"]),
        ("RUN", &["--mount=from=b,target=/b"], &["ls"]),
        ("FROM", &[], &["alpine", "AS", "b"]),
    ]);
    let err = Planner::new(&df, host()).target("a").plan().unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"cannot mount from stage "b" to "/b", stage needs to be defined before current command"#
    );
}

#[test]
fn circular_dependencies() {
    let df = dockerfile(&[
        ("FROM", &[], &["alpine", "AS", "a"]),
        ("COPY", &["--from=a"], &["/x", "/x"]),
    ]);
    let err = plan(&df).unwrap_err();
    assert_eq!(err.to_string(), "circular dependency detected on stage: a");
    assert_eq!(err.line(), Some(2));
    let df = dockerfile(&[
        ("FROM", &[], &["alpine", "AS", "a"]),
        ("COPY", &["--from=b"], &["/x", "/x"]),
        ("FROM", &[], &["alpine", "AS", "b"]),
        ("COPY", &["--from=a"], &["/x", "/x"]),
        ("FROM", &[], &["alpine"]),
    ]);
    // Cycles fail even in stages the target does not need, as in BuildKit.
    assert_eq!(
        plan(&df).unwrap_err().to_string(),
        "circular dependency detected on stage: a"
    );
}

#[test]
fn stage_structure_errors() {
    assert_eq!(
        plan(&dockerfile(&[])).unwrap_err().to_string(),
        "file with no instructions"
    );
    let df = dockerfile(&[("ARG", &[], &["A=1"])]);
    assert_eq!(
        plan(&df).unwrap_err().to_string(),
        "dockerfile contains no stages to build"
    );
    let df = dockerfile(&[
        ("ARG", &[], &["A=1"]),
        ("ENV", &[], &["A", "1", "="]),
        ("FROM", &[], &["alpine"]),
    ]);
    let err = plan(&df).unwrap_err();
    assert_eq!(
        (err.to_string().as_str(), err.line()),
        ("no build stage in current context", Some(2))
    );
    let df = dockerfile(&[("FROM", &[], &["alpine"]), ("RUNN", &[], &[""])]);
    let err = plan(&df).unwrap_err();
    assert_eq!(
        (err.to_string().as_str(), err.line()),
        ("unknown instruction: RUNN (did you mean RUN?)", Some(2))
    );
}

#[test]
fn platforms() {
    let df = dockerfile(&[("FROM", &["--platform=linux/arm64"], &["alpine"])]);
    let graph = Planner::new(&df, host())
        .platform(Platform::new("linux", "arm", Some("v7")))
        .plan()
        .unwrap();
    assert_eq!(
        graph.target_stage().platform,
        Some(Platform::new("linux", "arm64", None))
    );
    assert_eq!(graph.global_env["TARGETPLATFORM"], "linux/arm/v7");
    assert_eq!(graph.global_env["TARGETVARIANT"], "v7");
    assert_eq!(graph.global_env["BUILDPLATFORM"], "linux/amd64");
    assert_eq!(graph.global_env["BUILDARCH"], "amd64");
    let df = dockerfile(&[("FROM", &["--platform=linux/toaster"], &["alpine"])]);
    let err = plan(&df).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"failed to parse platform linux/toaster: "linux/toaster": unknown operating system or architecture: invalid argument"#
    );
    assert_eq!(err.line(), Some(1));
}

#[test]
fn global_args_and_build_arg_overrides() {
    let df = dockerfile(&[
        ("ARG", &[], &["VERSION=1.0", "FLAVOR"]),
        ("FROM", &[], &["alpine"]),
        ("ARG", &[], &["VERSION"]),
    ]);
    let graph = Planner::new(&df, host())
        .build_arg("VERSION", "2.0")
        .build_arg("UNUSED", "x")
        .build_arg("TARGETARCH", "arm64")
        .plan()
        .unwrap();
    assert_eq!(graph.global_args.len(), 2);
    assert_eq!(graph.global_args[0].value.as_deref(), Some("2.0"));
    assert_eq!(graph.global_args[0].default.as_deref(), Some("1.0"));
    assert_eq!(graph.global_args[1].value, None);
    assert_eq!(graph.global_env["VERSION"], "2.0");
    assert!(!graph.global_env.contains_key("FLAVOR"));
    assert_eq!(graph.global_env["TARGETARCH"], "arm64");
    assert_eq!(graph.unused_build_args(), ["UNUSED"]);
}

#[test]
fn targets_list_every_stage() {
    let mut df = multi_stage();
    df.instructions[0].comments = vec!["build compiles the app".into()];
    let list = targets(&df).unwrap();
    assert_eq!(list.len(), 4);
    assert_eq!(list[0].name.as_deref(), Some("build"));
    assert_eq!(list[0].description.as_deref(), Some("compiles the app"));
    assert_eq!(list[0].base, "golang:1.22");
    assert_eq!((list[0].line, list[0].default), (1, false));
    assert!(list[3].default);
    assert_eq!(plan(&df).unwrap().targets(), list);
}

#[test]
fn outline_lists_the_args_and_secrets_the_target_uses() {
    let mut df = dockerfile(&[
        ("ARG", &[], &["GO_VERSION=1.22"]),
        ("ARG", &[], &["UNRELATED=1"]),
        ("FROM", &[], &["golang", "AS", "build"]),
        ("ARG", &[], &["GO_VERSION"]),
        ("ARG", &[], &["LDFLAGS=-s"]),
        (
            "RUN",
            &["--mount=type=secret,id=token,required", "--mount=type=ssh"],
            &["go build"],
        ),
        ("FROM", &[], &["alpine", "AS", "other"]),
        ("ARG", &[], &["OTHER"]),
        ("FROM", &[], &["scratch"]),
        ("COPY", &["--from=build"], &["/app", "/app"]),
    ]);
    df.instructions[0].comments = vec!["GO_VERSION the Go release".into()];
    df.instructions[4].comments = vec!["LDFLAGS linker flags".into()];
    let outline = Planner::new(&df, host())
        .build_arg("LDFLAGS", "-w")
        .plan()
        .unwrap()
        .outline();
    let args: Vec<_> = outline
        .args
        .iter()
        .map(|a| {
            (
                a.name.as_str(),
                a.value.as_deref(),
                a.description.as_deref(),
                a.line,
            )
        })
        .collect();
    assert_eq!(
        args,
        [
            ("GO_VERSION", Some("1.22"), Some("the Go release"), 1),
            ("LDFLAGS", Some("-w"), Some("linker flags"), 5)
        ]
    );
    assert_eq!(outline.args[0].stages, [StageId(0)]);
    assert_eq!(
        outline.secrets,
        [OutlineSecret {
            name: "token".into(),
            required: true,
            line: 6
        }]
    );
    assert_eq!(
        outline.ssh,
        [OutlineSecret {
            name: "default".into(),
            required: false,
            line: 6
        }]
    );
    assert_eq!(outline.name, None);
}
