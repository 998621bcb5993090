//! `RUN`: a process in the stage's root, with the stage environment.

use std::fmt::Write as _;

use kiln_frontend::instruction::{CommandLine, Mount, Run};
use kiln_frontend::syntax::Heredoc;

use super::config::with_shell;
use super::{LowerError, Lowered, Scope, display_name, expand};
use crate::solver::op::{Op, RunMount, RunOp, Script};
use crate::solver::state::StageState;

/// The proxy variables `--build-arg` may set without an ARG, as BuildKit's `proxyEnvFromBuildArgs`
/// matches them (case-insensitively).
const PROXY_ARGS: [&str; 5] = ["http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "all_proxy"];

/// `RUN [--mount...] [--network] [--security] command`: the command is not expanded (the shell does
/// that); shell form goes through SHELL; heredocs become the script. History:
/// `RUN |2 A=1 B=2 /bin/sh -c make # buildkit`, the `|n` prefix naming the ARGs in scope.
pub(super) fn run(
    state: &mut StageState,
    run: &Run,
    original: &str,
    scope: &Scope<'_>,
) -> Result<Lowered, LowerError> {
    let (command, script, summary) = heredoc_command(run);
    let args = with_shell(&state.image, &command);
    let mut shown = original.to_owned();
    if let Some(summary) = summary {
        let _ = write!(shown, " ({summary})");
    }
    let display_lexer = scope.lexer.clone().raw_quotes(true).skip_unset_env(true);
    let name = display_name(&shown, &display_lexer, state);
    let mounts = run
        .mounts
        .iter()
        .map(|m| expand_mount(m, state, scope))
        .collect::<Result<Vec<_>, _>>()?;
    state.commit(
        format!("RUN {} # buildkit", run_command_string(&args, state)),
        true,
    );
    Ok(Lowered {
        name: Some(name),
        op: Some(Op::Run(RunOp {
            args,
            env: state.env.clone(),
            proxy_env: proxy_env(scope),
            cwd: state.workdir().to_owned(),
            user: state.image.config.user.clone(),
            network: run.network,
            security: run.security,
            mounts,
            script,
        })),
    })
}

/// BuildKit's handling of `RUN <<EOF`: a lone heredoc runs its body through the shell, or, when the
/// body starts with `#!`, as a script file mounted at `/dev/pipes/<name>`; any other use of heredocs
/// hands the shell the command line followed by each body and its delimiter. Returns the command, the
/// script and the summary progress shows after the command.
fn heredoc_command(run: &Run) -> (CommandLine, Option<Script>, Option<String>) {
    let (CommandLine::Shell(line), Some(first)) = (&run.command, run.heredocs.first()) else {
        return (run.command.clone(), None, None);
    };
    if is_lone_heredoc(line) {
        let summary = Some(summarize(&first.content));
        if first.content.starts_with("#!") {
            let path = format!("/dev/pipes/{}", first.name);
            let script = Script {
                name: first.name.clone(),
                content: first.content.clone(),
            };
            return (CommandLine::Shell(path), Some(script), summary);
        }
        return (CommandLine::Shell(first.content.clone()), None, summary);
    }
    let mut full = line.clone();
    for Heredoc { name, content, .. } in &run.heredocs {
        full.push('\n');
        full.push_str(content);
        full.push_str(name);
    }
    (CommandLine::Shell(full), None, None)
}

/// Whether the command line is exactly one heredoc marker (`<<EOF`, `<<-"EOF"`, `3<<EOF`), as
/// BuildKit's `ParseHeredoc` decides it.
fn is_lone_heredoc(line: &str) -> bool {
    let rest = line.trim_start_matches(|c: char| c.is_ascii_digit());
    let Some(rest) = rest.strip_prefix("<<") else {
        return false;
    };
    let word = rest.strip_prefix('-').unwrap_or(rest);
    if word.is_empty() || word.contains('<') {
        return false;
    }
    let lexer = kiln_frontend::shell::Lexer::new('\\').skip_unset_env(true);
    let empty: [(&str, &str); 0] = [];
    lexer
        .process_words(word, &empty)
        .is_ok_and(|words| words.len() == 1)
}

/// BuildKit's `summarizeHeredoc`: the first line, `...` if there are more.
fn summarize(body: &str) -> String {
    let body = body.trim();
    let normalized = body.replace("\r\n", "\n");
    let mut lines = normalized.split('\n');
    let first = lines.next().unwrap_or_default().to_owned();
    if lines.next().is_some() {
        format!("{first}...")
    } else {
        first
    }
}

/// Expands the words of a `--mount` (not `from`, which never holds variables) and resolves `from`.
fn expand_mount(mount: &Mount, state: &StageState, scope: &Scope<'_>) -> Result<RunMount, LowerError> {
    let word = |w: &Option<String>| w.as_ref().map(|w| expand(w, state, scope)).transpose();
    let expanded = Mount {
        target: word(&mount.target)?,
        source: word(&mount.source)?,
        id: word(&mount.id)?,
        env: word(&mount.env)?,
        ..mount.clone()
    };
    Ok(RunMount {
        from: mount.from.as_deref().map(scope.resolve),
        mount: expanded,
    })
}

/// BuildKit's `runCommandString`: `|n K=V ...` for the ARGs in scope (each once, at its first
/// position, with its value in the environment now) before the argv.
fn run_command_string(args: &[String], state: &StageState) -> String {
    let mut entries: Vec<(String, String)> = Vec::new();
    for (key, value) in &state.args {
        let value = state
            .env_value(key)
            .map(str::to_owned)
            .or_else(|| value.clone())
            .unwrap_or_default();
        match entries.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => entries.push((key.clone(), value)),
        }
    }
    let mut words: Vec<String> = Vec::new();
    if !entries.is_empty() {
        words.push(format!("|{}", entries.len()));
        words.extend(entries.into_iter().map(|(k, v)| format!("{k}={v}")));
    }
    words.extend(args.iter().cloned());
    words.join(" ")
}

/// The proxy variables among the build args, each in both cases as BuildKit's executor sets them.
fn proxy_env(scope: &Scope<'_>) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for proxy in PROXY_ARGS {
        // Build args are sorted, so of `HTTP_PROXY` and `http_proxy` the lower-case one wins, as in
        // BuildKit's loop over sorted keys.
        let value = scope
            .build_args
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(proxy))
            .map(|(_, v)| v)
            .next_back();
        if let Some(value) = value {
            env.push((proxy.to_uppercase(), value.clone()));
            env.push((proxy.to_owned(), value.clone()));
        }
    }
    env
}
