//! `kiln build --progress`: the live view (`tty`), on a pseudo-terminal and off one, `rawjson`, and
//! what `auto` picks off a terminal.

use std::path::Path;
use std::process::Output;

use crate::support::{Root, context};

const DOCKERFILE: &str = "FROM busybox\nRUN echo hello && echo to-stderr >&2\nCOPY Dockerfile /\n";

/// `kiln build --progress=MODE ARGS... CONTEXT`, stderr a pipe.
fn build(root: &Root, mode: &str, context: &Path, args: &[&str]) -> Output {
    root.kiln()
        .arg("build")
        .arg(format!("--progress={mode}"))
        .args(args)
        .arg(context)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The line of `text` that starts with `prefix` (trailing spaces kept), or a panic showing `text`.
fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{text}"))
}

/// Whether `row` ends with a vertex's time (`0.1s`, `12.3s`) against the right edge.
fn ends_with_time(row: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    row.rsplit(' ')
        .next()
        .and_then(|time| time.strip_suffix('s'))
        .and_then(|time| time.split_once('.'))
        .is_some_and(|(whole, tenths)| digits(whole) && tenths.len() == 1 && digits(tenths))
}

#[test]
fn tty_off_a_terminal_prints_the_last_frame_once() {
    let root = Root::new();
    root.import_busybox("busybox:latest");
    let ctx = context(&[("Dockerfile", DOCKERFILE)]);

    let first = build(&root, "tty", ctx.path(), &["-t", "p:1"]);
    let text = stderr(&first);
    assert!(first.status.success(), "{text}");
    assert!(
        !text.contains('\x1b'),
        "no cursor movement or colour into a pipe: {text:?}"
    );
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("[+] Building "), "{text}");
    assert!(lines[0].ends_with(" (7/7) FINISHED"), "{text}");
    assert_eq!(
        text.matches("[+] Building").count(),
        1,
        "one frame, at the end: {text}"
    );
    for row in [
        " => [internal] load build definition from Dockerfile ",
        " => [2/3] RUN echo hello && echo to-stderr >&2 ",
        " => [3/3] COPY Dockerfile / ",
        " => exporting to image ",
    ] {
        let found = line(&text, row);
        assert!(ends_with_time(found), "{found:?}");
        // 80 columns, less the last (a terminal would wrap there).
        assert_eq!(found.chars().count(), 79, "{found:?}");
    }
    assert!(
        text.contains("\n => => naming to docker.io/library/p:1 done\n"),
        "{text}"
    );
    // Output only shows under a running or failed step.
    assert!(!text.contains("=> => # hello"), "{text}");

    let again = build(&root, "tty", ctx.path(), &["-t", "p:2"]);
    let text = stderr(&again);
    assert!(again.status.success(), "{text}");
    let cached = line(&text, " => CACHED [2/3] RUN echo hello && echo to-stderr >&2 ");
    assert!(cached.ends_with(" 0.0s"), "{cached:?}");
    line(&text, " => CACHED [3/3] COPY Dockerfile / ");
}

#[test]
fn tty_shows_the_failed_step_and_its_output_then_the_report() {
    let root = Root::new();
    root.import_busybox("busybox:latest");
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN echo before; echo broken >&2; exit 3\n",
    )]);
    let out = build(&root, "tty", ctx.path(), &[]);
    let text = stderr(&out);
    assert!(!out.status.success(), "{text}");
    let header = line(&text, "[+] Building ");
    assert!(
        header.ends_with(" (4/4)"),
        "a failed build is not FINISHED: {text}"
    );
    let frame_end = text.find("------\n").expect("the failure report");
    let (frame, report) = text.split_at(frame_end);
    let error = line(frame, " => ERROR [2/2] RUN echo before; echo broken >&2; exit 3 ");
    assert!(ends_with_time(error), "{error:?}");
    assert!(
        frame.contains(&format!("{error}\n => => # before\n => => # broken\n")),
        "the step's last output under it:\n{frame}"
    );
    assert!(
        report.starts_with(
            "------\n > [2/2] RUN echo before; echo broken >&2; exit 3:\nbefore\nbroken\n------\n"
        ),
        "{report}"
    );
    assert!(
        report
            .trim_end()
            .ends_with("did not complete successfully: exit code: 3"),
        "{report}"
    );
    assert!(report.contains("error: failed to solve: "), "{report}");
}

#[test]
fn rawjson_prints_each_event_as_a_json_line() {
    let root = Root::new();
    root.import_busybox("busybox:latest");
    let ctx = context(&[("Dockerfile", DOCKERFILE)]);
    let out = build(&root, "rawjson", ctx.path(), &[]);
    let text = stderr(&out);
    assert!(out.status.success(), "{text}");
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?} is not JSON: {e}")))
        .collect();
    assert_eq!(
        events[0],
        serde_json::json!({"event": "started", "id": 1, "name": "[internal] load build definition from Dockerfile"})
    );
    let run = events
        .iter()
        .find(|e| e["event"] == "started" && e["name"] == "[2/3] RUN echo hello && echo to-stderr >&2")
        .expect("the RUN started")["id"]
        .clone();
    let of_run: Vec<&serde_json::Value> = events.iter().filter(|e| e["id"] == run).collect();
    let lines: Vec<(&str, &str)> = of_run
        .iter()
        .filter(|e| e["event"] == "log")
        .map(|e| (e["stream"].as_str().unwrap(), e["line"].as_str().unwrap()))
        .collect();
    assert_eq!(lines, [("stdout", "hello"), ("stderr", "to-stderr")], "{text}");
    let last = of_run.last().unwrap();
    assert_eq!(last["event"], "done", "{text}");
    assert!(last["elapsed"].as_f64().unwrap() >= 0.0, "{text}");
}

#[test]
fn auto_off_a_terminal_is_plain() {
    let root = Root::new();
    root.import_busybox("busybox:latest");
    let ctx = context(&[("Dockerfile", DOCKERFILE)]);
    let out = build(&root, "auto", ctx.path(), &[]);
    let text = stderr(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.starts_with("\n#1 [internal] load build definition from Dockerfile\n"),
        "{text}"
    );
    assert!(!text.contains("[+] Building"), "{text}");
}

/// Runs `kiln ARGS...` on a pseudo-terminal of 8 rows and 80 columns (util-linux `script`), and
/// returns everything the terminal received; `None` (after saying so) without `script`.
fn on_a_terminal(root: &Root, args: &[&str], env: &[(&str, &str)]) -> Option<(bool, String)> {
    let quote = |arg: &str| format!("'{}'", arg.replace('\'', r"'\''"));
    let kiln = assert_cmd::cargo::cargo_bin("kiln");
    let mut command = format!(
        "stty rows 8 cols 80; exec {} --root {}",
        quote(&kiln.to_string_lossy()),
        quote(&root.path().to_string_lossy())
    );
    for arg in args {
        command.push(' ');
        command.push_str(&quote(arg));
    }
    let mut script = std::process::Command::new("script");
    script.args(["--quiet", "--return", "--command", &command, "/dev/null"]);
    script
        .env("TERM", "xterm")
        .env_remove("NO_COLOR")
        .envs(env.iter().copied());
    let out = match script.stdin(std::process::Stdio::null()).output() {
        Ok(out) => out,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "util-linux script is needed"
            );
            eprintln!("skipped: no `script` to make a pseudo-terminal");
            return None;
        }
        Err(error) => panic!("script: {error}"),
    };
    Some((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

/// The frames a terminal was sent: each starts by hiding the cursor. Each frame's lines come
/// without escape sequences or carriage returns.
fn frames(raw: &str) -> Vec<Vec<String>> {
    raw.split("\x1b[?25l")
        .skip(1)
        .map(|frame| {
            let mut text = String::new();
            let mut chars = frame.chars();
            while let Some(c) = chars.next() {
                match c {
                    // CSI: parameters, then one final byte.
                    '\x1b' => {
                        let _ = chars.next();
                        for c in chars.by_ref() {
                            if ('@'..='~').contains(&c) {
                                break;
                            }
                        }
                    }
                    '\r' => {}
                    c => text.push(c),
                }
            }
            text.lines().map(str::to_owned).collect()
        })
        .collect()
}

#[test]
fn tty_on_a_terminal_redraws_in_place_within_its_height_and_ends_with_the_last_frame() {
    let root = Root::new();
    root.import_busybox("busybox:latest");
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN echo started; sleep 2; echo finished\nCOPY Dockerfile /\n",
    )]);
    let ctx_path = ctx.path().to_str().unwrap();
    let Some((success, raw)) =
        on_a_terminal(&root, &["build", "--progress=tty", "-t", "live:1", ctx_path], &[])
    else {
        return;
    };
    assert!(success, "{raw:?}");
    let drawn = frames(&raw);
    assert!(drawn.len() > 1, "redrawn while the step ran: {raw:?}");
    for frame in &drawn[..drawn.len() - 1] {
        // 8 rows: 7 lines and the cursor's.
        assert!(frame.len() <= 7, "a live frame fits the terminal: {frame:#?}");
        assert!(frame[0].starts_with("[+] Building "), "{frame:#?}");
    }
    assert!(
        drawn.iter().any(|frame| {
            frame.windows(2).any(|pair| {
                pair[0].starts_with(" => [2/3] RUN echo started;") && pair[1] == " => => # started"
            })
        }),
        "the running step showed its output under it: {drawn:#?}"
    );
    assert!(raw.contains("\x1b[34m"), "finished rows are blue: {raw:?}");
    assert!(raw.ends_with("\x1b[?25h"), "the cursor is shown again: {raw:?}");

    let last = drawn.last().unwrap();
    assert!(last[0].ends_with(" FINISHED"), "{last:#?}");
    let rows: Vec<&str> = last
        .iter()
        .filter(|l| l.starts_with(" => ") && !l.starts_with(" => => "))
        .map(|l| l.trim_end_matches(|c: char| c != ' ').trim_end())
        .collect();
    assert_eq!(
        rows,
        [
            " => [internal] load build definition from Dockerfile",
            " => [internal] load metadata for docker.io/library/busybox:latest",
            rows[2],
            " => [2/3] RUN echo started; sleep 2; echo finished",
            " => [internal] load build context",
            " => [3/3] COPY Dockerfile /",
            " => exporting to image",
        ],
        "every vertex, also those that scrolled off: {last:#?}"
    );
    assert!(
        // Cached: `kiln import` unpacked busybox.
        rows[2].starts_with(" => CACHED [1/3] FROM docker.io/library/busybox:latest@sha256:"),
        "{last:#?}"
    );

    // NO_COLOR: the same view, uncoloured.
    let Some((success, raw)) = on_a_terminal(
        &root,
        &["build", "--progress=auto", "-t", "live:2", ctx_path],
        &[("NO_COLOR", "1")],
    ) else {
        return;
    };
    assert!(success, "{raw:?}");
    for code in ["\x1b[34m", "\x1b[2m", "\x1b[0m"] {
        assert!(!raw.contains(code), "no colour under NO_COLOR: {raw:?}");
    }
    let last = frames(&raw).pop().expect("a frame");
    assert!(
        last.iter()
            .any(|l| l.starts_with(" => CACHED [2/3] RUN echo started;")),
        "{last:#?}"
    );
}
