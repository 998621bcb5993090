//! Parse and plan a generated 5,000-line multi-stage Dockerfile: the frontend's cost before any
//! build step runs. Target: well under 10 ms.

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use kiln_frontend::graph::{Planner, Platform};
use kiln_frontend::syntax;

/// A Dockerfile of about `lines` lines: global ARGs, then stages of ~100 lines each that use
/// every common instruction, continuation lines, cache mounts and `COPY --from` the stage before.
fn generate(lines: usize) -> String {
    let mut out = String::from(
        "# syntax=docker/dockerfile:1\n# BASE the base image\nARG BASE=alpine:3.19\nARG VERSION=1.0\n",
    );
    let mut count = 4;
    let mut stage = 0;
    while count < lines {
        let before = out.len();
        let _ = writeln!(out, "\n# stage{stage} builds part {stage}");
        let _ = writeln!(out, "FROM --platform=$BUILDPLATFORM ${{BASE}} AS stage{stage}");
        let _ = writeln!(
            out,
            "ARG VERSION\nARG TARGETARCH\nENV PART={stage} PATH=/opt/bin:$PATH"
        );
        let _ = writeln!(
            out,
            "WORKDIR /src/part{stage}\nLABEL org.example.part=\"{stage}\" version=\"$VERSION\""
        );
        for step in 0..20 {
            let _ = writeln!(
                out,
                "RUN --mount=type=cache,target=/root/.cache/{step},sharing=locked \\\n    echo \"part {stage} step {step}\" && \\\n    make -j4 target{step} VERSION=${{VERSION}}"
            );
        }
        for file in 0..10 {
            let _ = writeln!(
                out,
                "COPY --chmod=0644 --chown=app:app src/{stage}/{file}.txt /src/part{stage}/"
            );
        }
        if stage > 0 {
            let _ = writeln!(
                out,
                "COPY --from=stage{} --link /src /deps/{}",
                stage - 1,
                stage - 1
            );
        }
        let _ = writeln!(
            out,
            "EXPOSE 80{:02}/tcp\nUSER app\nHEALTHCHECK --interval=30s --retries=3 CMD [\"/bin/true\"]",
            stage % 100
        );
        let _ = writeln!(out, "CMD [\"/src/part{stage}/run\", \"--serve\"]");
        count += out[before..].lines().count();
        stage += 1;
    }
    out
}

fn parse_plan(c: &mut Criterion) {
    let text = generate(5_000);
    let host = Platform::new("linux", "amd64", None);
    // Sanity: the input is what the name says, and it plans.
    assert!(text.lines().count() >= 5_000);
    let dockerfile = syntax::parse(text.as_bytes()).expect("generated Dockerfile parses");
    let graph = Planner::new(&dockerfile, host.clone())
        .plan()
        .expect("generated Dockerfile plans");
    assert_eq!(graph.needed.len(), graph.stages.len());

    c.bench_function("parse+plan 5000-line Dockerfile", |b| {
        b.iter(|| {
            let dockerfile = syntax::parse(black_box(text.as_bytes())).unwrap();
            Planner::new(&dockerfile, host.clone()).plan().unwrap()
        });
    });
    c.bench_function("plan only, 5000-line Dockerfile", |b| {
        b.iter(|| Planner::new(black_box(&dockerfile), host.clone()).plan().unwrap());
    });
}

criterion_group!(benches, parse_plan);
criterion_main!(benches);
