//! The `.dockerignore` cases (../shared/conformance/dockerignore/cases.json) against
//! `kiln_frontend::dockerignore`, including a context walk that follows fsutil's filter.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use kiln_frontend::dockerignore::{self, MatchState, Patterns};
use serde::Deserialize;

use crate::corpus;

#[derive(Deserialize)]
struct Case {
    patterns: Vec<String>,
    path: String,
    kind: Option<String>,
    #[serde(default)]
    tree: Vec<String>,
    excluded: Option<bool>,
    #[serde(default)]
    error: bool,
    level: Option<String>,
    note: String,
}

/// The context as a map from path to "is a directory": the case's path, its tree entries (a trailing
/// `/` marks a directory) and every ancestor of those.
fn context_tree(case: &Case) -> BTreeMap<String, bool> {
    let mut tree = BTreeMap::new();
    let entries = case
        .tree
        .iter()
        .map(|e| (e.trim_end_matches('/'), e.ends_with('/')));
    let own = (case.path.as_str(), case.kind.as_deref() == Some("dir"));
    for (path, is_dir) in entries.chain([own]) {
        for (end, _) in path.match_indices('/') {
            tree.insert(path[..end].to_string(), true);
        }
        let dir = tree.get(path).copied().unwrap_or(false) || is_dir;
        tree.insert(path.to_string(), dir);
    }
    tree
}

/// Walks `tree` depth-first in lexical order the way fsutil's filter does and returns what the build
/// context holds: entries that are not excluded, plus the excluded directories above them.
fn walk(patterns: &Patterns, tree: &BTreeMap<String, bool>) -> BTreeSet<String> {
    fn visit(
        dir: &str,
        state: &MatchState,
        patterns: &Patterns,
        tree: &BTreeMap<String, bool>,
        sent: &mut BTreeSet<String>,
    ) {
        let matcher = patterns.matcher();
        let children = tree.iter().filter(|(path, _)| match path.rsplit_once('/') {
            Some((parent, _)) => parent == dir,
            None => dir.is_empty(),
        });
        for (path, &is_dir) in children {
            let verdict = matcher.check(path, state);
            if !verdict.excluded {
                // A kept entry brings every not-yet-sent ancestor along.
                for (end, _) in path.match_indices('/') {
                    sent.insert(path[..end].to_string());
                }
                sent.insert(path.clone());
            }
            if is_dir && (!verdict.excluded || patterns.should_descend(path)) {
                visit(path, &verdict.state, patterns, tree, sent);
            }
        }
    }
    let mut sent = BTreeSet::new();
    visit("", &MatchState::root(), patterns, tree, &mut sent);
    sent
}

/// The verdict for one case, or what went wrong.
fn run(case: &Case) -> Result<bool, String> {
    let text = case.patterns.join("\n");
    if case.level.as_deref() == Some("matcher") {
        let patterns = Patterns::new(&case.patterns).map_err(|e| format!("error: {e}"))?;
        return Ok(patterns.matches_or_parent_matches(&case.path));
    }
    let patterns = dockerignore::parse(text.as_bytes()).map_err(|e| format!("error: {e}"))?;
    let sent = walk(&patterns, &context_tree(case));
    let excluded = !sent.contains(&case.path);
    // The convenience call must agree with the walk for files (directories may come back as parents).
    if case.kind.is_none() && patterns.excludes(&case.path) != excluded {
        return Err(format!("walk says excluded={excluded}, excludes() disagrees"));
    }
    Ok(excluded)
}

#[test]
fn cases() {
    let Some(dir) = corpus("dockerignore") else { return };
    let cases: Vec<Case> =
        serde_json::from_str(&fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    assert_eq!(cases.len(), 265, "cases.json should hold 265 cases");
    assert_eq!(cases.iter().filter(|c| c.error).count(), 15);
    assert_eq!(
        cases
            .iter()
            .filter(|c| c.level.as_deref() == Some("matcher"))
            .count(),
        12
    );
    let mut failures = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let got = run(case);
        let ok = match (&got, case.error, case.excluded) {
            (Err(message), true, _) => message.starts_with("error: "),
            (Ok(excluded), false, Some(want)) => *excluded == want,
            _ => false,
        };
        if !ok {
            let want = if case.error {
                "an error".to_string()
            } else {
                format!("excluded={:?}", case.excluded)
            };
            failures.push(format!(
                "case {index} ({}): patterns {:?}, path {:?}: want {want}, got {got:?}",
                case.note, case.patterns, case.path
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
