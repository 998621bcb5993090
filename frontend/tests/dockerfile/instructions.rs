//! Instruction validation: BuildKit's messages, on the right line.

use kiln_frontend::instruction::{self, CommandLine, Healthcheck, Instruction, MountType, Network};

use super::{dockerfile, plan_error};

fn error(text: &str) -> String {
    plan_error(text).0
}

#[test]
fn unknown_instruction_with_suggestion_and_line() {
    assert_eq!(
        plan_error("FROM alpine\n\nRUNN echo hi\n"),
        (
            "unknown instruction: RUNN (did you mean RUN?)".to_owned(),
            Some(3)
        )
    );
    assert_eq!(
        error("FROM alpine\ncopyy a b\n"),
        "unknown instruction: copyy (did you mean copy?)"
    );
    assert_eq!(error("FROM alpine\nFETCH x\n"), "unknown instruction: FETCH");
}

#[test]
fn unknown_flags_with_suggestions() {
    assert_eq!(
        plan_error("FROM alpine\nRUN --mout=type=cache,target=/c true\n"),
        ("unknown flag: --mout (did you mean mount?)".to_owned(), Some(2))
    );
    assert_eq!(
        error("FROM alpine\nCOPY --form=x a b\n"),
        "unknown flag: --form (did you mean from?)"
    );
    assert_eq!(
        error("FROM --platfrom=linux/amd64 alpine\n"),
        "unknown flag: --platfrom (did you mean platform?)"
    );
    assert_eq!(
        error("FROM alpine\nCOPY --checksum=sha256:0 a b\n"),
        "unknown flag: --checksum"
    );
    assert_eq!(
        error("FROM alpine\nCOPY --link=maybe a b\n"),
        "expecting boolean value for flag --link, not: maybe"
    );
    assert_eq!(
        error("FROM alpine\nCOPY --from a b\n"),
        "missing a value on flag: --from"
    );
    assert_eq!(
        error("FROM alpine\nCOPY --from=a --from=b a b\n"),
        "duplicate flag specified: --from"
    );
}

#[test]
fn missing_arguments() {
    assert_eq!(error("FROM\n"), "FROM requires either one or three arguments");
    assert_eq!(
        error("FROM alpine AS\n"),
        "FROM requires either one or three arguments"
    );
    assert_eq!(
        error("FROM alpine AS 2nd\n"),
        r#"invalid name for build stage: "2nd", name can't start with a number or contain symbols"#
    );
    assert_eq!(
        error("FROM alpine\nCOPY onlyone\n"),
        "COPY requires at least two arguments, but only one was provided. Destination could not be determined"
    );
    assert_eq!(
        error("FROM alpine\nWORKDIR\n"),
        "WORKDIR requires exactly one argument"
    );
    assert_eq!(error("FROM alpine\nUSER\n"), "USER requires exactly one argument");
    // USER takes the rest of the line as one argument, as BuildKit does.
    assert!(super::plan("FROM alpine\nUSER a b\n").is_ok());
    assert_eq!(
        error("FROM alpine\nEXPOSE\n"),
        "EXPOSE requires at least one argument"
    );
    assert_eq!(error("FROM alpine\nARG\n"), "ARG requires at least one argument");
    assert_eq!(
        error("FROM alpine\nVOLUME\n"),
        "VOLUME requires at least one argument"
    );
    assert_eq!(
        error("FROM alpine\nSHELL /bin/bash -c\n"),
        "SHELL requires the arguments to be in JSON form"
    );
    assert_eq!(
        error("FROM alpine\nONBUILD\n"),
        "ONBUILD requires at least one argument"
    );
}

#[test]
fn onbuild_triggers() {
    assert_eq!(
        error("FROM alpine\nONBUILD FROM x\n"),
        "FROM isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(
        error("FROM alpine\nONBUILD MAINTAINER me\n"),
        "MAINTAINER isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(
        error("FROM alpine\nONBUILD ONBUILD RUN x\n"),
        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
    );
    let df = dockerfile("FROM alpine\nONBUILD RUN echo \"hi there\"\n");
    let steps = instruction::parse_all(&df).unwrap();
    let Instruction::Onbuild(onbuild) = &steps[1].instruction else {
        panic!("{steps:?}")
    };
    assert_eq!(onbuild.trigger, "RUN");
    assert_eq!(onbuild.expression, "RUN echo \"hi there\"");
}

#[test]
fn copy_from_and_chmod_checks() {
    assert_eq!(
        error("FROM alpine\nARG SRC=build\nCOPY --from=$SRC /a /b\n"),
        "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround"
    );
    assert_eq!(
        error("FROM alpine\nCOPY --chmod=8888 a b\n"),
        "invalid chmod parameter: '8888'. it should be octal string and between 0 and 07777"
    );
    assert!(super::plan("FROM alpine\nCOPY --chmod=u+x a b\n").is_ok());
}

#[test]
fn mount_validation() {
    let run = |mount: &str| error(&format!("FROM alpine\nRUN --mount={mount} true\n"));
    assert_eq!(
        run("type=cahce,target=/c"),
        r#"unsupported mount type "cahce" (did you mean cache?)"#
    );
    assert_eq!(
        run("type=cache,taget=/c"),
        "unexpected key 'taget' in 'taget=/c' (did you mean target?)"
    );
    assert_eq!(
        run("type=cache,target=/c,sharing=lockd"),
        r#"unsupported sharing value "lockd" (did you mean locked?)"#
    );
    assert_eq!(
        run("type=bind,target=/c,mode=0755"),
        r#"mode not allowed for "bind" type mounts"#
    );
    assert_eq!(
        run("type=secret"),
        "invalid secret mount. one of source, target required"
    );
    assert_eq!(
        run("from=$X,target=/c"),
        "'from' doesn't support variable expansion, define alias stage instead"
    );
    assert_eq!(
        error("FROM alpine\nRUN --network=bridge true\n"),
        r#"invalid network mode "bridge""#
    );
}

#[test]
fn healthcheck_durations() {
    let hc = |flags: &str| error(&format!("FROM alpine\nHEALTHCHECK {flags} CMD true\n"));
    assert_eq!(hc("--interval=30"), r#"time: missing unit in duration "30""#);
    assert_eq!(hc("--timeout=3x"), r#"time: unknown unit "x" in duration "3x""#);
    assert_eq!(
        hc("--start-period=100us"),
        r#"Interval "start-period" cannot be less than 1ms"#
    );
    assert_eq!(hc("--retries=-2"), "--retries cannot be negative (-2)");
    assert_eq!(
        error("FROM alpine\nHEALTHCHECK NONE x\n"),
        "HEALTHCHECK NONE takes no arguments"
    );
    assert_eq!(
        error("FROM alpine\nHEALTHCHECK CMD\n"),
        "Missing command after HEALTHCHECK CMD"
    );
    assert_eq!(
        error("FROM alpine\nHEALTHCHECK RUN x\n"),
        r#"Unknown type "RUN" in HEALTHCHECK (try CMD)"#
    );
}

#[test]
fn typed_instructions_from_text() {
    let df = dockerfile(concat!(
        "FROM alpine\n",
        "RUN --network=none --mount=type=cache,target=/var/cache/apk apk add curl\n",
        "RUN [\"echo\", \"exec\"]\n",
        "COPY <<EOF /etc/motd\nhello\nEOF\n",
        "HEALTHCHECK --interval=1m30s --retries=2 CMD curl -f http://localhost/\n",
        "ENTRYPOINT [\"/bin/sh\"]\n",
    ));
    let steps = instruction::parse_all(&df).unwrap();
    let Instruction::Run(run) = &steps[1].instruction else {
        panic!()
    };
    assert_eq!(run.network, Network::None);
    assert_eq!(run.mounts[0].kind, MountType::Cache);
    assert_eq!(run.command, CommandLine::Shell("apk add curl".into()));
    assert_eq!(
        steps[2].instruction,
        Instruction::Run(instruction::Run {
            command: CommandLine::Exec(vec!["echo".into(), "exec".into()]),
            heredocs: vec![],
            mounts: vec![],
            network: Network::Default,
            security: instruction::Security::Sandbox,
        })
    );
    let Instruction::Copy(copy) = &steps[3].instruction else {
        panic!()
    };
    assert_eq!(copy.sources.inline[0].name, "EOF");
    assert_eq!(copy.sources.inline[0].content, "hello\n");
    assert_eq!(copy.dest, "/etc/motd");
    let Instruction::Healthcheck(Healthcheck::Check(check)) = &steps[4].instruction else {
        panic!()
    };
    assert_eq!(check.interval.as_secs(), 90);
    assert_eq!(check.test(), ["CMD-SHELL", "curl -f http://localhost/"]);
    assert_eq!(steps[4].span.start, 7);
}

#[test]
fn env_label_and_arg_values_stay_as_written() {
    let df = dockerfile(concat!(
        "FROM alpine\n",
        "ENV A=\"x y\" B=$HOME\n",
        "ENV LEGACY some value\n",
        "LABEL org.example.v=\"1\"\n",
        "# VERSION the version to install\n",
        "ARG VERSION=\"${BASE:-1}\" DEBUG\n",
    ));
    let steps = instruction::parse_all(&df).unwrap();
    let Instruction::Env(env) = &steps[1].instruction else {
        panic!()
    };
    assert_eq!(
        (env[0].key.as_str(), env[0].value.as_str(), env[0].legacy),
        ("A", "\"x y\"", false)
    );
    assert_eq!(env[1].value, "$HOME");
    let Instruction::Env(legacy) = &steps[2].instruction else {
        panic!()
    };
    assert_eq!((legacy[0].value.as_str(), legacy[0].legacy), ("some value", true));
    let Instruction::Label(label) = &steps[3].instruction else {
        panic!()
    };
    assert_eq!(label[0].value, "\"1\"");
    let Instruction::Arg(args) = &steps[4].instruction else {
        panic!()
    };
    assert_eq!(args[0].default.as_deref(), Some("\"${BASE:-1}\""));
    assert_eq!(args[0].description.as_deref(), Some("the version to install"));
    assert_eq!(
        (args[1].name.as_str(), args[1].default.as_deref()),
        ("DEBUG", None)
    );
}

#[test]
fn heredocs_are_carried_through() {
    let df = dockerfile(concat!(
        "FROM alpine\n",
        "RUN <<EOF\nset -e\necho $HOME\nEOF\n",
        "COPY <<-'END' /etc/conf\n\tliteral $X\n\tEND\n",
        "ONBUILD RUN <<EOF\necho child\nEOF\n",
    ));
    let steps = instruction::parse_all(&df).unwrap();
    let Instruction::Run(run) = &steps[1].instruction else {
        panic!()
    };
    assert_eq!(run.command, CommandLine::Shell("<<EOF".into()));
    assert_eq!(run.heredocs[0].content, "set -e\necho $HOME\n");
    let Instruction::Copy(copy) = &steps[2].instruction else {
        panic!()
    };
    assert_eq!(copy.sources.inline[0].name, "END");
    assert_eq!(copy.sources.inline[0].content, "literal $X\n");
    assert!(!copy.sources.inline[0].expand);
    let Instruction::Onbuild(onbuild) = &steps[3].instruction else {
        panic!()
    };
    assert_eq!(onbuild.expression, "RUN <<EOF\necho child\nEOF");
    assert_eq!(steps[3].span.start, 9);
}

#[test]
fn copy_from_is_checked_with_the_files_escape_token() {
    // With a backtick escape, a backslash is an ordinary character of a stage name...
    let text = "# escape=`\nFROM alpine AS a\nFROM alpine\nCOPY --from=a /x /y\n";
    assert!(super::plan(text).is_ok());
    // ...and a backtick is an escape, which the lexer would remove.
    assert_eq!(
        error("# escape=`\nFROM alpine\nCOPY --from=a`b /x /y\n"),
        "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround"
    );
    // A word the lexer cannot read fails with the lexer's message.
    let unset: [(&str, &str); 0] = [];
    let lexer_error = kiln_frontend::shell::Lexer::new('\\')
        .process_word("${x", &unset)
        .unwrap_err();
    assert_eq!(
        error("FROM alpine\nCOPY --from=${x /a /b\n"),
        lexer_error.to_string()
    );
}
