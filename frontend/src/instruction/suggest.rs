//! "Did you mean ...?" suggestions, as BuildKit's `util/suggest` makes them.
//!
//! The candidate closest to the misspelt value by Levenshtein distance wins, if that distance is
//! below 3. An exact match means the error was not a typo, so nothing is suggested. Ties go to the
//! earliest candidate in the order given (BuildKit iterates a Go map, so its tie-break is random;
//! ours is stable).

use crate::go::go_lower;

/// The candidate to suggest for `value`, if one is close enough.
///
/// With `case_sensitive == false` the comparison ignores case and the suggestion takes the case of
/// `value` when that is all-lower or all-upper (`RUNN` suggests `RUN`, `runn` suggests `run`).
pub(crate) fn suggest<'a, I>(value: &str, candidates: I, case_sensitive: bool) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let folded = if case_sensitive {
        value.to_owned()
    } else {
        go_lower(value)
    };
    let mut best: Option<String> = None;
    let mut best_distance = 3;
    for candidate in candidates {
        let candidate = if case_sensitive {
            candidate.to_owned()
        } else {
            go_lower(candidate)
        };
        if candidate == folded {
            return None;
        }
        let distance = levenshtein(&folded, &candidate);
        if distance < best_distance {
            best_distance = distance;
            best = Some(if case_sensitive {
                candidate
            } else {
                match_case(&candidate, value)
            });
        }
    }
    best
}

/// `candidate` in the case of `original`, when `original` is all-lower or all-upper.
fn match_case(candidate: &str, original: &str) -> String {
    if original == go_lower(original) {
        go_lower(candidate)
    } else if original == original.to_uppercase() {
        candidate.to_uppercase()
    } else {
        candidate.to_owned()
    }
}

/// The edit distance between two strings, counted in chars.
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// The text appended to an error message when there is a suggestion.
pub(crate) fn did_you_mean(suggestion: Option<&String>) -> String {
    suggestion.map_or_else(String::new, |s| format!(" (did you mean {s}?)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(levenshtein("", ""), 0);
        assert_eq!(levenshtein("run", "runn"), 1);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("mout", "mount"), 1);
    }

    #[test]
    fn suggestion_keeps_the_callers_case() {
        let names = ["FROM", "RUN", "COPY"];
        assert_eq!(suggest("RUNN", names, false).as_deref(), Some("RUN"));
        assert_eq!(suggest("runn", names, false).as_deref(), Some("run"));
        assert_eq!(suggest("Runn", names, false).as_deref(), Some("run"));
    }

    #[test]
    fn far_or_exact_values_get_no_suggestion() {
        assert_eq!(suggest("something", ["FROM", "RUN"], false), None);
        assert_eq!(suggest("run", ["RUN"], false), None);
        assert_eq!(suggest("mount", ["mount", "mout"], true), None);
    }

    #[test]
    fn closest_candidate_wins() {
        assert_eq!(
            suggest("cahce", ["bind", "cache", "tmpfs"], true).as_deref(),
            Some("cache")
        );
        assert_eq!(suggest("Cache", ["cache"], true).as_deref(), Some("cache"));
    }
}
