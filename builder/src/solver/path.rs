//! Go's `path.Clean` and BuildKit's normalization of WORKDIR and COPY destinations (Linux rules).

/// Go's `path.Clean`: the shortest equivalent path, lexically (`.` and `..` resolved, repeated and
/// trailing slashes dropped; `""` becomes `.`).
pub(crate) fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// BuildKit's `NormalizeWorkdir`: a relative WORKDIR is taken from the current one.
pub(crate) fn workdir(current: &str, requested: &str) -> String {
    if requested.starts_with('/') {
        clean(requested)
    } else {
        clean(&format!("/{current}/{requested}"))
    }
}

/// BuildKit's `pathRelativeToWorkingDir` for COPY/ADD destinations: relative to the working directory,
/// cleaned, and a trailing `/` (or `/.`) kept, since it means "into this directory".
pub(crate) fn destination(workdir: &str, dest: &str) -> String {
    let dest = if dest.is_empty() || dest == "." {
        "./"
    } else {
        dest
    };
    let joined = if dest.starts_with('/') {
        clean(dest)
    } else {
        clean(&format!("{workdir}/{dest}"))
    };
    let mut out = joined;
    if dest.ends_with('/') && !out.ends_with('/') {
        out.push('/');
    } else if dest.ends_with("/.") {
        if out != "/" {
            out.push('/');
        }
        out.push('.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_as_go() {
        for (input, want) in [
            ("", "."),
            ("/", "/"),
            ("a/b/../c", "a/c"),
            ("/../a//b/./", "/a/b"),
            ("../../a", "../../a"),
            ("a/..", "."),
        ] {
            assert_eq!(clean(input), want, "{input}");
        }
    }

    #[test]
    fn workdir_is_relative_to_the_previous_one() {
        assert_eq!(workdir("/", "app"), "/app");
        assert_eq!(workdir("/app", "src/../bin"), "/app/bin");
        assert_eq!(workdir("/app", "/opt/"), "/opt");
        assert_eq!(workdir("", "x"), "/x");
        assert_eq!(workdir("/a", ".."), "/");
    }

    #[test]
    fn destinations_keep_their_trailing_slash() {
        assert_eq!(destination("/app", "."), "/app/");
        assert_eq!(destination("/app", ""), "/app/");
        assert_eq!(destination("/app", "bin/"), "/app/bin/");
        assert_eq!(destination("/app", "bin"), "/app/bin");
        assert_eq!(destination("/", "/etc//x/"), "/etc/x/");
        assert_eq!(destination("/app", "x/."), "/app/x/.");
        assert_eq!(destination("/", "/."), "/.");
    }
}
