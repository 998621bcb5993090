//! `kiln debug ast` prints BuildKit's dump for every conformance case, and locates its errors.

use std::path::Path;

use crate::support::{corpus, kiln};

/// Every `<dir>/<case>/Dockerfile` with a `result` beside it must print exactly that result.
fn check_positive(dir: &Path, failures: &mut Vec<String>) -> usize {
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let case = entry.unwrap().path();
        let expected = std::fs::read(case.join("result")).unwrap();
        let out = kiln()
            .arg("debug")
            .arg("ast")
            .arg(case.join("Dockerfile"))
            .output()
            .unwrap();
        count += 1;
        if !out.status.success() || out.stdout != expected {
            failures.push(format!(
                "{}: exit {:?}, stderr {}",
                case.display(),
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    count
}

#[test]
fn dumps_match_every_result_file() {
    let Some(parser) = corpus("parser") else { return };
    let mut failures = Vec::new();
    let count = check_positive(&parser.join("cases"), &mut failures)
        + check_positive(&parser.join("derived/cases"), &mut failures);
    assert!(count >= 52, "expected the 33 + 19 positive cases, found {count}");
    assert!(
        failures.is_empty(),
        "{} cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn derived_negative_cases_fail_with_file_line_and_message() {
    let Some(parser) = corpus("parser") else { return };
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(parser.join("derived/negative")).unwrap() {
        let case = entry.unwrap().path();
        let file = case.join("Dockerfile");
        let message = std::fs::read_to_string(case.join("error")).unwrap();
        let out = kiln().arg("debug").arg("ast").arg(&file).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // An empty file is refused before parsing, so its message names no line.
        let located = format!("{}:", file.display());
        if out.status.success() || !stderr.contains(message.trim()) || !stderr.contains(&located) {
            failures.push(format!(
                "{}: exit {:?}, stderr {stderr}",
                case.display(),
                out.status.code()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn upstream_negative_cases_fail() {
    let Some(parser) = corpus("parser") else { return };
    for entry in std::fs::read_dir(parser.join("negative")).unwrap() {
        let case = entry.unwrap().path();
        kiln()
            .arg("debug")
            .arg("ast")
            .arg(case.join("Dockerfile"))
            .assert()
            .failure();
    }
}

#[test]
fn reads_stdin_and_reports_the_line() {
    kiln()
        .args(["debug", "ast", "-"])
        .write_stdin("FROM busybox\nRUN <<EOF\necho hi\n")
        .assert()
        .failure()
        .stderr("error: Dockerfile:2: unterminated heredoc\n");
    kiln()
        .args(["debug", "ast", "-"])
        .write_stdin("FROM busybox\n\nrun echo hi\n")
        .assert()
        .success()
        .stdout("(from \"busybox\")\n(run \"echo hi\")\n");
}

#[test]
fn missing_and_non_utf8_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    kiln()
        .arg("debug")
        .arg("ast")
        .arg(&missing)
        .assert()
        .failure()
        .stderr(predicates::str::contains(format!(
            "failed to read dockerfile {}",
            missing.display()
        )));
    let bad = dir.path().join("Dockerfile");
    std::fs::write(&bad, b"FROM a\nRUN echo \xff\n").unwrap();
    kiln()
        .arg("debug")
        .arg("ast")
        .arg(&bad)
        .assert()
        .failure()
        .stderr(predicates::str::contains(format!(
            "{}:2: invalid UTF-8",
            bad.display()
        )));
}
