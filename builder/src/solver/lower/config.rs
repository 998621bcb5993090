//! The instructions that only change the image config: LABEL, MAINTAINER, VOLUME, USER, STOPSIGNAL,
//! SHELL, CMD, ENTRYPOINT, HEALTHCHECK and ONBUILD.

use std::fmt::Write as _;

use kiln_frontend::instruction::{CommandLine, Healthcheck, KeyValue, Onbuild};

use super::env::expand_pairs;
use super::{LowerError, Scope, expand};
use crate::solver::gofmt;
use crate::solver::image::{self, Empty, ImageConfig};
use crate::solver::state::StageState;

/// `LABEL k=v ...`: keys and values expanded. History: `LABEL k=v k2=v2`.
pub(super) fn label(state: &mut StageState, pairs: &[KeyValue], scope: &Scope<'_>) -> Result<(), LowerError> {
    let expanded = expand_pairs(state, pairs, scope)?;
    let mut message = String::from("LABEL");
    for (key, value) in expanded {
        let _ = write!(message, " {key}={value}");
        state.image.config.labels.insert(key, value);
    }
    state.commit(message, false);
    Ok(())
}

/// `MAINTAINER name`: the image's author, as written (BuildKit does not expand it).
pub(super) fn maintainer(state: &mut StageState, name: &str) {
    state.image.author = Some(name.to_owned());
    state.commit(format!("MAINTAINER {name}"), false);
}

/// `VOLUME /a /b`: each path expanded. History: `VOLUME [/a /b]`.
pub(super) fn volume(state: &mut StageState, paths: &[String], scope: &Scope<'_>) -> Result<(), LowerError> {
    let expanded = paths
        .iter()
        .map(|p| expand(p, state, scope))
        .collect::<Result<Vec<_>, _>>()?;
    for path in &expanded {
        if path.is_empty() {
            return Err(LowerError::EmptyVolume);
        }
        state.image.config.volumes.insert(path.clone(), Empty {});
    }
    state.commit(format!("VOLUME {}", gofmt::slice_v(&expanded)), false);
    Ok(())
}

/// `USER name[:group]`, expanded; resolved against the root's `/etc/passwd` only when a step runs.
pub(super) fn user(state: &mut StageState, user: &str, scope: &Scope<'_>) -> Result<(), LowerError> {
    let user = expand(user, state, scope)?;
    state.commit(format!("USER {user}"), false);
    state.image.config.user = user;
    Ok(())
}

/// `STOPSIGNAL sig`, expanded and checked as moby's `signal.ParseSignal` checks it.
pub(super) fn stopsignal(state: &mut StageState, signal: &str, scope: &Scope<'_>) -> Result<(), LowerError> {
    let signal = expand(signal, state, scope)?;
    if !is_signal(&signal) {
        return Err(LowerError::InvalidSignal { signal });
    }
    state.commit(format!("STOPSIGNAL {signal}"), false);
    state.image.config.stop_signal = signal;
    Ok(())
}

/// `SHELL ["exe", "arg"]`. History: `SHELL [exe arg]`.
pub(super) fn shell(state: &mut StageState, shell: &[String]) {
    state.image.config.shell = shell.to_vec();
    state.commit(format!("SHELL {}", gofmt::slice_v(shell)), false);
}

/// `CMD`: the shell form goes through the stage's SHELL. History: `CMD ["/bin/sh" "-c" "x"]`.
pub(super) fn cmd(state: &mut StageState, command: &CommandLine) {
    let args = with_shell(&state.image, command);
    state.commit(format!("CMD {}", gofmt::slice_q(&args)), false);
    state.image.config.cmd = args;
    state.image.config.args_escaped = true;
    state.cmd_set = true;
}

/// `ENTRYPOINT`: like CMD, and it clears the CMD inherited from the base (one set earlier in this
/// stage stays).
pub(super) fn entrypoint(state: &mut StageState, command: &CommandLine) {
    let args = with_shell(&state.image, command);
    state.commit(format!("ENTRYPOINT {}", gofmt::slice_q(&args)), false);
    state.image.config.entrypoint = args;
    if !state.cmd_set {
        state.image.config.cmd = Vec::new();
    }
}

/// `HEALTHCHECK`: `NONE` stores `["NONE"]`. History: Go's `%+v` of the check, as BuildKit prints it.
pub(super) fn healthcheck(state: &mut StageState, check: &Healthcheck) {
    let config = match check {
        Healthcheck::None => image::Healthcheck {
            test: vec!["NONE".to_owned()],
            ..image::Healthcheck::default()
        },
        Healthcheck::Check(cmd) => image::Healthcheck {
            test: cmd.test(),
            interval: nanos(cmd.interval),
            timeout: nanos(cmd.timeout),
            start_period: nanos(cmd.start_period),
            start_interval: nanos(cmd.start_interval),
            retries: i64::from(cmd.retries),
        },
    };
    state.commit(
        format!(
            "HEALTHCHECK {{Test:{} Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
            gofmt::slice_v(&config.test),
            gofmt::duration(config.interval),
            gofmt::duration(config.timeout),
            gofmt::duration(config.start_period),
            gofmt::duration(config.start_interval),
            config.retries
        ),
        false,
    );
    state.image.config.healthcheck = Some(config);
}

/// `ONBUILD instr`: stored for the images built FROM this one; no history entry (BuildKit writes none).
pub(super) fn onbuild(state: &mut StageState, onbuild: &Onbuild) {
    state.image.config.on_build.push(onbuild.expression.clone());
}

/// BuildKit's `withShell`: exec form as is; shell form as the SHELL (default `/bin/sh -c`) plus the
/// command.
pub(crate) fn with_shell(image: &ImageConfig, command: &CommandLine) -> Vec<String> {
    match command {
        CommandLine::Exec(args) => args.clone(),
        CommandLine::Shell(line) => {
            let mut args = if image.config.shell.is_empty() {
                vec!["/bin/sh".to_owned(), "-c".to_owned()]
            } else {
                image.config.shell.clone()
            };
            args.push(line.clone());
            args
        }
    }
}

fn nanos(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

/// Signal names moby knows on Linux (without `SIG`).
const SIGNALS: [&str; 34] = [
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL", "PIPE",
    "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP", "TTIN", "TTOU",
    "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
];

/// moby's `signal.ParseSignal`: a non-zero number, or a name with or without `SIG`, any case
/// (real-time signals as `RTMIN`, `RTMIN+n`, `RTMAX-n`, `RTMAX`, n from 1 to 15).
fn is_signal(raw: &str) -> bool {
    if let Ok(n) = raw.parse::<i64>() {
        return n != 0;
    }
    let upper = raw.to_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if SIGNALS.contains(&name) || name == "RTMIN" || name == "RTMAX" {
        return true;
    }
    let offset = name
        .strip_prefix("RTMIN+")
        .or_else(|| name.strip_prefix("RTMAX-"));
    offset.is_some_and(|n| matches!(n.parse::<u8>(), Ok(1..=15)) && !n.starts_with('0'))
}
