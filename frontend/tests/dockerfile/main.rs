//! End-to-end tests from Dockerfile text: parse, read instructions, plan. Each test states what a
//! user sees (the error message and its line, the stages built, the args listed).

mod instructions;
mod stages;

use kiln_frontend::graph::{BuildGraph, Error, Planner, Platform};
use kiln_frontend::syntax;

/// The build platform every test plans on.
pub(crate) fn host() -> Platform {
    Platform::new("linux", "amd64", None)
}

/// Parses `text`, panicking with the parser's message if it does not parse.
pub(crate) fn dockerfile(text: &str) -> syntax::Dockerfile {
    syntax::parse(text.as_bytes()).unwrap_or_else(|e| panic!("parse failed: {e}\n{text}"))
}

/// Plans `text` with the default target.
pub(crate) fn plan(text: &str) -> Result<BuildGraph, Error> {
    Planner::new(&dockerfile(text), host()).plan()
}

/// The message and line of planning `text`, which must fail.
pub(crate) fn plan_error(text: &str) -> (String, Option<usize>) {
    let err = plan(text).expect_err(text);
    (err.to_string(), err.line())
}
