//! Instruction parsing from hand-built nodes (end-to-end tests from Dockerfile text live in
//! `tests/`).

use std::time::Duration;

use super::*;
use crate::syntax::{Arg, Escape, Heredoc, Node, Span};

fn node(original: &str, flags: &[&str], args: &[&str], json: bool) -> Node {
    Node {
        keyword: original.split_whitespace().next().unwrap().to_lowercase(),
        flags: flags.iter().map(|s| (*s).to_owned()).collect(),
        args: args.iter().map(|s| Arg::Word((*s).to_owned())).collect(),
        json,
        heredocs: vec![],
        original: original.to_owned(),
        comments: vec![],
        span: Span { start: 7, end: 7 },
    }
}

fn ok(n: &Node) -> Instruction {
    parse(n, Escape::Backslash)
        .unwrap_or_else(|e| panic!("{}: {e}", n.original))
        .instruction
}

fn err(n: &Node) -> String {
    let e = parse(n, Escape::Backslash).expect_err(&n.original);
    assert_eq!(e.line(), Some(7));
    e.to_string()
}

#[test]
fn from_with_name_platform_and_description() {
    let mut n = node(
        "FROM --platform=$BUILDPLATFORM golang:1.22 AS Build",
        &["--platform=$BUILDPLATFORM"],
        &["golang:1.22", "AS", "Build"],
        false,
    );
    n.comments = vec!["build compiles the binary".into()];
    let Instruction::From(from) = ok(&n) else { panic!() };
    assert_eq!(from.image, "golang:1.22");
    assert_eq!(from.name.as_deref(), Some("build"));
    assert_eq!(from.platform.as_deref(), Some("$BUILDPLATFORM"));
    assert_eq!(from.description.as_deref(), Some("compiles the binary"));
}

#[test]
fn from_errors() {
    assert_eq!(
        err(&node("FROM", &[], &[], false)),
        "FROM requires either one or three arguments"
    );
    assert_eq!(
        err(&node("FROM a b", &[], &["a", "b"], false)),
        "FROM requires either one or three arguments"
    );
    assert_eq!(
        err(&node("FROM a to b", &[], &["a", "to", "b"], false)),
        "FROM requires either one or three arguments"
    );
    assert_eq!(
        err(&node("FROM a AS 1st", &[], &["a", "AS", "1st"], false)),
        r#"invalid name for build stage: "1st", name can't start with a number or contain symbols"#
    );
    assert_eq!(
        err(&node("FROM --platforn=x a", &["--platforn=x"], &["a"], false)),
        "unknown flag: --platforn (did you mean platform?)"
    );
}

#[test]
fn unknown_instruction_suggests_in_the_callers_case() {
    assert_eq!(
        err(&node("RUNN echo", &[], &[""], false)),
        "unknown instruction: RUNN (did you mean RUN?)"
    );
    assert_eq!(
        err(&node("copyy a b", &[], &[""], false)),
        "unknown instruction: copyy (did you mean copy?)"
    );
    assert_eq!(
        err(&node("FOOBAR x", &[], &[""], false)),
        "unknown instruction: FOOBAR"
    );
}

#[test]
fn run_shell_and_exec_forms_and_flags() {
    let Instruction::Run(run) = ok(&node("RUN echo $HOME", &[], &["echo $HOME"], false)) else {
        panic!()
    };
    assert_eq!(run.command, CommandLine::Shell("echo $HOME".into()));
    assert_eq!((run.network, run.security), (Network::Default, Security::Sandbox));
    let n = node(
        r#"RUN --network=none --security=insecure --mount=type=tmpfs,target=/t ["ls", "-l"]"#,
        &[
            "--network=none",
            "--security=insecure",
            "--mount=type=tmpfs,target=/t",
            "--mount=target=/src",
        ],
        &["ls", "-l"],
        true,
    );
    let Instruction::Run(run) = ok(&n) else { panic!() };
    assert_eq!(run.command, CommandLine::Exec(vec!["ls".into(), "-l".into()]));
    assert!(run.command.is_exec());
    assert_eq!((run.network, run.security), (Network::None, Security::Insecure));
    assert_eq!(run.mounts.len(), 2);
    assert_eq!(run.mounts[0].kind, MountType::Tmpfs);
    assert_eq!(run.mounts[1].kind, MountType::Bind);
}

#[test]
fn run_errors() {
    let run = |flags: &[&str]| err(&node("RUN x", flags, &["x"], false));
    assert_eq!(
        run(&["--mout=type=cache"]),
        "unknown flag: --mout (did you mean mount?)"
    );
    assert_eq!(run(&["--network=bridge"]), r#"invalid network mode "bridge""#);
    assert_eq!(
        run(&["--security=privileged"]),
        r#"security "privileged" is not valid"#
    );
    assert_eq!(
        run(&["--mount=type=cahce"]),
        r#"unsupported mount type "cahce" (did you mean cache?)"#
    );
    assert_eq!(
        run(&["--mount=from=$X,target=/x"]),
        "'from' doesn't support variable expansion, define alias stage instead"
    );
    assert_eq!(
        run(&["--network=none", "--network=host"]),
        "duplicate flag specified: --network"
    );
}

#[test]
fn run_keeps_heredocs() {
    let mut n = node("RUN <<EOF", &[], &["<<EOF"], false);
    n.heredocs = vec![Heredoc {
        name: "EOF".into(),
        content: "echo hi\n".into(),
        expand: true,
        chomp: false,
        fd: 0,
    }];
    let Instruction::Run(run) = ok(&n) else { panic!() };
    assert_eq!(run.heredocs, n.heredocs);
}

#[test]
fn cmd_and_entrypoint() {
    assert_eq!(
        ok(&node("CMD [\"a\"]", &[], &["a"], true)),
        Instruction::Cmd(CommandLine::Exec(vec!["a".into()]))
    );
    assert_eq!(
        ok(&node("CMD", &[], &[], false)),
        Instruction::Cmd(CommandLine::Shell(String::new()))
    );
    assert_eq!(
        ok(&node("ENTRYPOINT []", &[], &[], true)),
        Instruction::Entrypoint(CommandLine::Exec(vec![]))
    );
    assert_eq!(
        err(&node("CMD --x a", &["--x"], &["a"], false)),
        "unknown flag: --x"
    );
}

#[test]
fn env_and_label() {
    let n = node("ENV a=1 b", &[], &["a", "\"1 2\"", "=", "b", "x y", ""], false);
    assert_eq!(
        ok(&n),
        Instruction::Env(vec![
            KeyValue {
                key: "a".into(),
                value: "\"1 2\"".into(),
                legacy: false
            },
            KeyValue {
                key: "b".into(),
                value: "x y".into(),
                legacy: true
            },
        ])
    );
    assert_eq!(
        err(&node("ENV", &[], &[], false)),
        "ENV requires at least one argument"
    );
    assert_eq!(
        err(&node("LABEL", &[], &[], false)),
        "LABEL requires at least one argument"
    );
    assert_eq!(
        err(&node("LABEL =x", &[], &["", "x", "="], false)),
        "LABEL names can not be blank"
    );
    assert_eq!(
        err(&node("LABEL a", &[], &["a", "b"], false)),
        "Bad input to LABEL, too many arguments"
    );
}

#[test]
fn single_argument_instructions() {
    assert_eq!(
        ok(&node("USER app:app", &[], &["app:app"], false)),
        Instruction::User("app:app".into())
    );
    assert_eq!(
        ok(&node("WORKDIR /app", &[], &["/app"], false)),
        Instruction::Workdir("/app".into())
    );
    assert_eq!(
        ok(&node("MAINTAINER me", &[], &["me"], false)),
        Instruction::Maintainer("me".into())
    );
    assert_eq!(
        ok(&node("STOPSIGNAL --x SIGKILL", &["--x"], &["SIGKILL"], false)),
        Instruction::Stopsignal("SIGKILL".into())
    );
    assert_eq!(
        err(&node("USER", &[], &[], false)),
        "USER requires exactly one argument"
    );
    assert_eq!(
        err(&node("WORKDIR", &[], &[], false)),
        "WORKDIR requires exactly one argument"
    );
    assert_eq!(
        err(&node("STOPSIGNAL", &[], &[], false)),
        "STOPSIGNAL requires exactly one argument"
    );
    assert_eq!(
        err(&node("MAINTAINER", &[], &[], false)),
        "MAINTAINER requires exactly one argument"
    );
}

#[test]
fn expose_volume_shell() {
    assert_eq!(
        ok(&node("EXPOSE 8080 443/tcp", &[], &["8080", "443/tcp"], false)),
        Instruction::Expose(vec!["443/tcp".into(), "8080".into()])
    );
    assert_eq!(
        err(&node("EXPOSE", &[], &[], false)),
        "EXPOSE requires at least one argument"
    );
    assert_eq!(
        ok(&node("VOLUME /a /b", &[], &[" /a", "/b"], false)),
        Instruction::Volume(vec!["/a".into(), "/b".into()])
    );
    assert_eq!(
        err(&node("VOLUME [\"\"]", &[], &[" "], true)),
        "VOLUME specified can not be an empty string"
    );
    assert_eq!(
        err(&node("VOLUME", &[], &[], false)),
        "VOLUME requires at least one argument"
    );
    assert_eq!(
        ok(&node("SHELL [\"sh\", \"-c\"]", &[], &["sh", "-c"], true)),
        Instruction::Shell(vec!["sh".into(), "-c".into()])
    );
    assert_eq!(
        err(&node("SHELL sh -c", &[], &["sh -c"], false)),
        "SHELL requires the arguments to be in JSON form"
    );
    assert_eq!(
        err(&node("SHELL []", &[], &[], true)),
        "SHELL requires at least one argument"
    );
}

#[test]
fn arg_with_descriptions() {
    let mut n = node("ARG VERSION=1.0 DEBUG", &[], &["VERSION=1.0", "DEBUG"], false);
    n.comments = vec!["VERSION the release to build".into(), "unrelated".into()];
    assert_eq!(
        ok(&n),
        Instruction::Arg(vec![
            ArgDef {
                name: "VERSION".into(),
                default: Some("1.0".into()),
                description: Some("the release to build".into())
            },
            ArgDef {
                name: "DEBUG".into(),
                default: None,
                description: None
            },
        ])
    );
    assert_eq!(
        err(&node("ARG", &[], &[], false)),
        "ARG requires at least one argument"
    );
    assert_eq!(
        err(&node("ARG =x", &[], &["=x"], false)),
        "ARG names can not be blank"
    );
}

#[test]
fn copy_with_every_flag() {
    let n = node(
        "COPY ...",
        &[
            "--from=build",
            "--chown=1:1",
            "--chmod=0755",
            "--link",
            "--parents",
            "--exclude=*.md",
            "--exclude=.git",
        ],
        &["a", "b/", "/dst/"],
        false,
    );
    let Instruction::Copy(copy) = ok(&n) else { panic!() };
    assert_eq!(copy.sources.paths, ["a", "b/"]);
    assert_eq!(copy.dest, "/dst/");
    assert_eq!(copy.from.as_deref(), Some("build"));
    assert_eq!(copy.chown.as_deref(), Some("1:1"));
    assert_eq!(copy.chmod.as_deref(), Some("0755"));
    assert!(copy.link && copy.parents);
    assert_eq!(copy.excludes, ["*.md", ".git"]);
}

#[test]
fn copy_errors() {
    let copy = |flags: &[&str], args: &[&str]| err(&node("COPY x", flags, args, false));
    assert_eq!(
        copy(&[], &["a"]),
        "COPY requires at least two arguments, but only one was provided. Destination could not be determined"
    );
    assert_eq!(
        copy(&["--from=$STAGE"], &["a", "b"]),
        "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround"
    );
    assert_eq!(
        copy(&["--chmod=999"], &["a", "b"]),
        "invalid chmod parameter: '999'. it should be octal string and between 0 and 07777"
    );
    assert_eq!(
        copy(&["--checksum=sha256:x"], &["a", "b"]),
        "unknown flag: --checksum"
    );
    assert_eq!(
        copy(&["--chmown=1"], &["a", "b"]),
        "unknown flag: --chmown (did you mean chown?)"
    );
    assert_eq!(
        copy(&[], &["a", "<<EOF"]),
        "COPY cannot accept a heredoc as a destination"
    );
    // A variable in --chmod is checked after expansion, by the builder.
    assert!(
        parse(
            &node("COPY x", &["--chmod=$MODE"], &["a", "b"], false),
            Escape::Backslash
        )
        .is_ok()
    );
}

#[test]
fn copy_heredoc_sources() {
    let mut n = node(
        "COPY <<one <<\"two\" /dst/",
        &[],
        &["<<one", "<<\"two\"", "/dst/"],
        false,
    );
    n.heredocs = vec![
        Heredoc {
            name: "one".into(),
            content: "1\n".into(),
            expand: true,
            chomp: false,
            fd: 0,
        },
        Heredoc {
            name: "two".into(),
            content: "$X\n".into(),
            expand: false,
            chomp: false,
            fd: 0,
        },
    ];
    let Instruction::Copy(copy) = ok(&n) else { panic!() };
    assert!(copy.sources.paths.is_empty());
    assert_eq!(
        copy.sources.inline,
        [
            InlineFile {
                name: "one".into(),
                content: "1\n".into(),
                expand: true
            },
            InlineFile {
                name: "two".into(),
                content: "$X\n".into(),
                expand: false
            },
        ]
    );
}

#[test]
fn add_with_every_flag() {
    let n = node(
        "ADD ...",
        &[
            "--chown=app",
            "--chmod=u+x",
            "--link=false",
            "--keep-git-dir",
            "--checksum=sha256:abc",
            "--unpack=true",
            "--exclude=x",
        ],
        &["https://example.com/a.tar.gz", "/a"],
        false,
    );
    let Instruction::Add(add) = ok(&n) else { panic!() };
    assert_eq!(add.sources.paths, ["https://example.com/a.tar.gz"]);
    assert_eq!(add.chmod.as_deref(), Some("u+x"));
    assert!(!add.link);
    assert_eq!((add.keep_git_dir, add.unpack), (Some(true), Some(true)));
    assert_eq!(add.checksum.as_deref(), Some("sha256:abc"));
    assert_eq!(add.excludes, ["x"]);
    assert_eq!(
        err(&node("ADD --from=x a b", &["--from=x"], &["a", "b"], false)),
        "unknown flag: --from"
    );
    assert_eq!(
        err(&node("ADD a", &[], &["a"], false)),
        "ADD requires at least two arguments, but only one was provided. Destination could not be determined"
    );
}

#[test]
fn onbuild() {
    let inner = node("RUN echo hi", &[], &["echo hi"], false);
    let mut n = node("ONBUILD RUN echo hi", &[], &[], false);
    n.args = vec![Arg::Nested(Box::new(inner))];
    assert_eq!(
        ok(&n),
        Instruction::Onbuild(Onbuild {
            trigger: "RUN".into(),
            expression: "RUN echo hi".into()
        })
    );
    for (kw, msg) in [
        ("from", "FROM isn't allowed as an ONBUILD trigger"),
        ("maintainer", "MAINTAINER isn't allowed as an ONBUILD trigger"),
        ("onbuild", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ] {
        let mut inner = node("x", &[], &["y"], false);
        inner.keyword = kw.into();
        n.args = vec![Arg::Nested(Box::new(inner))];
        assert_eq!(err(&n), msg);
    }
    assert_eq!(
        err(&node("ONBUILD", &[], &[], false)),
        "ONBUILD requires at least one argument"
    );
}

#[test]
fn healthcheck() {
    let n = node(
        "HEALTHCHECK ...",
        &[
            "--interval=30s",
            "--timeout=1m30s",
            "--start-period=1.5s",
            "--start-interval=5ms",
            "--retries=3",
        ],
        &["CMD", "curl -f http://localhost/"],
        false,
    );
    let Instruction::Healthcheck(Healthcheck::Check(check)) = ok(&n) else {
        panic!()
    };
    assert_eq!(check.interval, Duration::from_secs(30));
    assert_eq!(check.timeout, Duration::from_secs(90));
    assert_eq!(check.start_period, Duration::from_millis(1500));
    assert_eq!(check.start_interval, Duration::from_millis(5));
    assert_eq!(check.retries, 3);
    assert_eq!(check.test(), ["CMD-SHELL", "curl -f http://localhost/"]);
    let exec = node("HEALTHCHECK CMD [\"true\"]", &[], &["CMD", "true"], true);
    let Instruction::Healthcheck(Healthcheck::Check(check)) = ok(&exec) else {
        panic!()
    };
    assert_eq!(check.test(), ["CMD", "true"]);
    assert_eq!((check.interval, check.retries), (Duration::ZERO, 0));
    assert_eq!(
        ok(&node("HEALTHCHECK NONE", &["--interval=x"], &["NONE"], false)),
        Instruction::Healthcheck(Healthcheck::None)
    );
}

#[test]
fn healthcheck_errors() {
    let hc = |flags: &[&str], args: &[&str]| err(&node("HEALTHCHECK x", flags, args, false));
    assert_eq!(hc(&[], &[]), "HEALTHCHECK requires at least one argument");
    assert_eq!(hc(&[], &["NONE", "x"]), "HEALTHCHECK NONE takes no arguments");
    assert_eq!(hc(&[], &["CMD"]), "Missing command after HEALTHCHECK CMD");
    assert_eq!(
        hc(&[], &["RUN", "x"]),
        r#"Unknown type "RUN" in HEALTHCHECK (try CMD)"#
    );
    assert_eq!(
        hc(&["--interval=30"], &["CMD", "x"]),
        r#"time: missing unit in duration "30""#
    );
    assert_eq!(
        hc(&["--timeout=5x"], &["CMD", "x"]),
        r#"time: unknown unit "x" in duration "5x""#
    );
    assert_eq!(
        hc(&["--interval=10us"], &["CMD", "x"]),
        r#"Interval "interval" cannot be less than 1ms"#
    );
    assert_eq!(
        hc(&["--retries=many"], &["CMD", "x"]),
        r#"strconv.ParseInt: parsing "many": invalid syntax"#
    );
    assert_eq!(
        hc(&["--retries=-1"], &["CMD", "x"]),
        "--retries cannot be negative (-1)"
    );
    assert_eq!(
        hc(&["--retries=99999999999"], &["CMD", "x"]),
        r#"strconv.ParseInt: parsing "99999999999": value out of range"#
    );
    assert_eq!(
        hc(&["--intervall=1s"], &["CMD", "x"]),
        "unknown flag: --intervall (did you mean interval?)"
    );
}
