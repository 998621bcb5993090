//! Stage graphs from text: bases, inputs, targets, pruning, ARG scoping, outline.

use kiln_frontend::graph::{Base, Input, Planner, StageId, targets};

use super::{dockerfile, host, plan, plan_error};

const APP: &str = r#"# syntax=docker/dockerfile:1
# VERSION the Go version
ARG VERSION=1.22
ARG REGISTRY=docker.io

# build compiles the server
FROM --platform=$BUILDPLATFORM ${REGISTRY}/library/golang:${VERSION} AS build
# LDFLAGS extra linker flags
ARG LDFLAGS=-s
ARG TARGETARCH
RUN --mount=type=cache,target=/root/.cache/go-build \
    --mount=type=secret,id=netrc,required \
    GOARCH=$TARGETARCH go build -ldflags=$LDFLAGS -o /out/server .

# lint checks the code
FROM golangci/golangci-lint AS lint
ARG LINT_FLAGS
RUN --mount=from=build,source=/src,target=/src golangci-lint run $LINT_FLAGS

FROM build AS test
RUN go test ./...

# release is the shipped image
FROM scratch AS release
COPY --from=build /out/server /server
COPY --from=alpine:3.19 /etc/ssl/certs /etc/ssl/certs
ENTRYPOINT ["/server"]
"#;

fn needed(text: &str, target: Option<&str>) -> Vec<usize> {
    let df = dockerfile(text);
    let planner = Planner::new(&df, host());
    let planner = match target {
        Some(t) => planner.target(t),
        None => planner,
    };
    planner
        .plan()
        .unwrap()
        .needed
        .iter()
        .map(|id| id.index())
        .collect()
}

#[test]
fn bases_inputs_and_pruning() {
    let graph = plan(APP).unwrap();
    let names: Vec<_> = graph
        .stages
        .iter()
        .map(kiln_frontend::graph::Stage::display_name)
        .collect();
    assert_eq!(names, ["build", "lint", "test", "release"]);
    assert_eq!(
        graph.stage(StageId(0)).base,
        Base::Image("docker.io/library/golang:1.22".into())
    );
    assert_eq!(graph.stage(StageId(2)).base, Base::Stage(StageId(0)));
    assert_eq!(graph.target_stage().base, Base::Scratch);
    assert_eq!(
        graph.stage(StageId(1)).dependencies[0].input,
        Input::Stage(StageId(0))
    );
    assert_eq!(
        graph.target_stage().dependencies[1].input,
        Input::Image("alpine:3.19".into())
    );
    assert_eq!(needed(APP, None), [0, 3]);
    assert_eq!(needed(APP, Some("LINT")), [0, 1]);
    assert_eq!(needed(APP, Some("test")), [0, 2]);
    assert_eq!(graph.images(), ["docker.io/library/golang:1.22", "alpine:3.19"]);
}

#[test]
fn build_args_override_global_args_in_from() {
    let df = dockerfile(APP);
    let graph = Planner::new(&df, host())
        .build_arg("VERSION", "1.23")
        .build_arg("REGISTRY", "mirror.local")
        .plan()
        .unwrap();
    assert_eq!(
        graph.stage(StageId(0)).base,
        Base::Image("mirror.local/library/golang:1.23".into())
    );
    assert_eq!(
        graph.stage(StageId(0)).platform.as_ref().unwrap().to_string(),
        "linux/amd64"
    );
    assert_eq!(
        graph.stage(StageId(0)).from_args,
        ["BUILDPLATFORM", "REGISTRY", "VERSION"]
    );
}

#[test]
fn global_args_see_earlier_ones_and_automatic_args() {
    let text = "ARG OS=linux\nARG IMAGE=base-$OS-${TARGETARCH}\nFROM $IMAGE\n";
    assert_eq!(
        plan(text).unwrap().target_stage().base,
        Base::Image("base-linux-amd64".into())
    );
    // An ARG inside a stage does not reach FROM lines.
    let text = "FROM alpine\nARG LATER=x\nFROM img-${LATER:-unset}\n";
    assert_eq!(
        plan(text).unwrap().target_stage().base,
        Base::Image("img-unset".into())
    );
    // A global ARG with no value expands to nothing.
    assert_eq!(
        plan_error("ARG IMAGE\nFROM $IMAGE\n"),
        ("base name ($IMAGE) should not be blank".to_owned(), Some(2))
    );
}

#[test]
fn target_errors_and_suggestions() {
    let df = dockerfile(APP);
    let err = Planner::new(&df, host()).target("relase").plan().unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"target stage "relase" could not be found (did you mean release?)"#
    );
    let err = Planner::new(&df, host()).target("deploy").plan().unwrap_err();
    assert_eq!(err.to_string(), r#"target stage "deploy" could not be found"#);
}

#[test]
fn stage_order_and_cycles() {
    assert_eq!(
        plan_error("FROM alpine AS a\nCOPY --from=a /x /y\n"),
        ("circular dependency detected on stage: a".to_owned(), Some(2))
    );
    let text = "FROM alpine AS a\nCOPY --from=b /x /y\nFROM alpine AS b\nFROM a\n";
    assert_eq!(
        plan_error(text),
        (
            r#"cannot copy from stage "b", it needs to be defined before current stage "a""#.to_owned(),
            Some(2)
        )
    );
    assert_eq!(
        plan_error("FROM alpine\nCOPY --from=3 /x /y\n"),
        ("invalid stage index 3".to_owned(), Some(2))
    );
}

#[test]
fn files_without_stages() {
    assert_eq!(
        plan_error("ARG A=1\n"),
        ("dockerfile contains no stages to build".to_owned(), None)
    );
    assert_eq!(
        plan_error("ARG A=1\nRUN true\nFROM alpine\n"),
        ("no build stage in current context".to_owned(), Some(2))
    );
}

#[test]
fn platform_errors() {
    assert_eq!(
        plan_error("ARG P\nFROM --platform=$P alpine\n"),
        ("empty platform value from expression $P".to_owned(), Some(2))
    );
}

#[test]
fn targets_for_call_targets() {
    let list = targets(&dockerfile(APP)).unwrap();
    let summary: Vec<_> = list
        .iter()
        .map(|t| {
            (
                t.name.as_deref(),
                t.description.as_deref(),
                t.base.as_str(),
                t.default,
                t.line,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                Some("build"),
                Some("compiles the server"),
                "${REGISTRY}/library/golang:${VERSION}",
                false,
                7
            ),
            (
                Some("lint"),
                Some("checks the code"),
                "golangci/golangci-lint",
                false,
                16
            ),
            (Some("test"), None, "build", false, 20),
            (Some("release"), Some("is the shipped image"), "scratch", true, 24),
        ]
    );
    assert_eq!(list[0].platform.as_deref(), Some("$BUILDPLATFORM"));
}

#[test]
fn outline_for_call_outline() {
    let df = dockerfile(APP);
    let outline = Planner::new(&df, host())
        .build_arg("LDFLAGS", "-w")
        .plan()
        .unwrap()
        .outline();
    assert_eq!(outline.name.as_deref(), Some("release"));
    assert_eq!(outline.description.as_deref(), Some("is the shipped image"));
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
            ("VERSION", Some("1.22"), Some("the Go version"), 3),
            ("REGISTRY", Some("docker.io"), None, 4),
            ("LDFLAGS", Some("-w"), Some("extra linker flags"), 9),
        ]
    );
    assert_eq!(outline.secrets.len(), 1);
    assert_eq!(
        (outline.secrets[0].name.as_str(), outline.secrets[0].required),
        ("netrc", true)
    );
    // The lint stage is not needed by release, so LINT_FLAGS is not listed; it is for lint.
    let outline = Planner::new(&df, host()).target("lint").plan().unwrap().outline();
    assert!(outline.args.iter().any(|a| a.name == "LINT_FLAGS"));
    let json = serde_json::to_value(&outline).unwrap();
    assert_eq!(json["name"], "lint");
}
