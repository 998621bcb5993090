//! `kiln build --call=targets|outline`: what a user learns about a Dockerfile without building it.

use crate::support::kiln;

const MULTISTAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/multistage");

#[test]
fn targets_lists_stages_with_descriptions_and_the_default() {
    kiln()
        .args(["build", "--call=targets", MULTISTAGE])
        .assert()
        .success()
        .stdout(
            "TARGET            DESCRIPTION\n\
             base              is the shared runtime layer\n\
             build             compiles the app\n\
             test              runs the checks; it is not part of the final image\n\
             final (default)   is the image users run\n",
        );
}

#[test]
fn targets_as_json() {
    let out = kiln()
        .args(["build", "--call=targets", "--format=json", MULTISTAGE])
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let targets = json["targets"].as_array().unwrap();
    let names: Vec<_> = targets.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["base", "build", "test", "final"]);
    assert_eq!(targets[3]["default"], true);
    assert_eq!(targets[0]["base"], "${BASE}");
}

#[test]
fn outline_shows_the_args_the_target_uses() {
    kiln()
        .args([
            "build",
            "--call=outline",
            "--target=build",
            "--build-arg",
            "VERSION=2.5",
            MULTISTAGE,
        ])
        .assert()
        .success()
        .stdout(
            "TARGET:      build\n\
             DESCRIPTION: compiles the app\n\
             \n\
             BUILD ARG   VALUE            DESCRIPTION\n\
             BASE        busybox:latest   is the image every stage starts from\n\
             VERSION     2.5              is the version string the app is built with\n",
        );
}

#[test]
fn outline_json_reads_the_dockerfile_from_stdin() {
    let out = kiln()
        .args(["build", "--call=outline", "--format=json", "-f", "-", "."])
        .write_stdin("ARG A=1\nARG B=2\nFROM busybox:${A}\nRUN --mount=type=secret,id=token true\n")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["args"][0]["name"], "A");
    assert_eq!(
        json["args"].as_array().unwrap().len(),
        1,
        "B is not used by the target"
    );
    assert_eq!(json["secrets"][0]["name"], "token");
}

#[test]
fn unknown_target_suggests_the_nearest_stage() {
    kiln()
        .args(["build", "--call=outline", "--target=biuld", MULTISTAGE])
        .assert()
        .failure()
        .stderr(predicates::str::contains(
            r#"target stage "biuld" could not be found (did you mean build?)"#,
        ));
}

#[test]
fn invalid_instructions_are_located() {
    kiln()
        .args(["build", "--call=targets", "-f", "-", "."])
        .write_stdin("FROM busybox\n\nRUNN make\n")
        .assert()
        .failure()
        .stderr("error: Dockerfile:3: unknown instruction: RUNN (did you mean RUN?)\n");
    kiln()
        .args(["build", "--call=targets", "-f", "-", "."])
        .write_stdin("FROM busybox\nCOPY --form=build /a /b\n")
        .assert()
        .failure()
        .stderr(predicates::str::contains(
            "Dockerfile:2: unknown flag: --form (did you mean from?)",
        ));
}

#[test]
fn missing_dockerfile_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    kiln()
        .args(["build", "--call=targets"])
        .arg(dir.path())
        .assert()
        .failure()
        .stderr(predicates::str::contains(format!(
            "failed to read dockerfile {}/Dockerfile",
            dir.path().display()
        )));
}
