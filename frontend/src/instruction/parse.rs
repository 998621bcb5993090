//! One function per keyword, each checking arguments and flags in the order BuildKit does (so the
//! same input fails with the same message).

use crate::go::go_lower;
use std::time::Duration;

use super::flags::{FlagKind, Flags};
use super::mount::Mount;
use super::suggest::suggest;
use super::{
    Add, ArgDef, Chmod, CommandLine, Copy, Error, ErrorKind, From, Healthcheck, HealthcheckCmd, InlineFile,
    Instruction, KEYWORDS, KeyValue, Network, Onbuild, Run, Security, Sources, Step,
};
use crate::shell::Lexer;
use crate::syntax::{Arg, Dockerfile, Escape, Heredoc, Node};

/// Reads every instruction of a parsed Dockerfile, in file order.
pub fn parse_all(dockerfile: &Dockerfile) -> Result<Vec<Step>, Error> {
    let escape = dockerfile.directives.escape;
    dockerfile
        .instructions
        .iter()
        .map(|node| parse(node, escape))
        .collect()
}

/// Reads one instruction. `escape` is the file's escape token, which decides whether a word is
/// free of variables (for `COPY --from`).
pub fn parse(node: &Node, escape: Escape) -> Result<Step, Error> {
    let request = Request::new(node, escape);
    let instruction = request
        .dispatch()
        .map_err(|kind| Error::new(node.span.start, kind))?;
    Ok(Step {
        instruction,
        span: node.span,
        original: node.original.trim().to_owned(),
    })
}

/// What one keyword's parser works from, as BuildKit's `parseRequest`.
struct Request<'a> {
    node: &'a Node,
    args: Vec<&'a str>,
    escape: Escape,
}

type Res<T> = std::result::Result<T, ErrorKind>;

impl<'a> Request<'a> {
    fn new(node: &'a Node, escape: Escape) -> Request<'a> {
        let mut args = Vec::with_capacity(node.args.len());
        flatten_args(node, &mut args);
        Request { node, args, escape }
    }

    fn dispatch(&self) -> Res<Instruction> {
        match self.node.keyword.as_str() {
            "from" => self.from().map(Instruction::From),
            "run" => self.run().map(Instruction::Run),
            "cmd" => self
                .no_flags()
                .map(|()| Instruction::Cmd(self.command_line(&self.args))),
            "entrypoint" => self
                .no_flags()
                .map(|()| Instruction::Entrypoint(self.command_line(&self.args))),
            "env" => self
                .no_flags()
                .and_then(|()| self.key_values("ENV"))
                .map(Instruction::Env),
            "label" => self
                .no_flags()
                .and_then(|()| self.key_values("LABEL"))
                .map(Instruction::Label),
            "maintainer" => self.exactly_one("MAINTAINER").map(Instruction::Maintainer),
            "user" => self.exactly_one("USER").map(Instruction::User),
            "workdir" => self.exactly_one("WORKDIR").map(Instruction::Workdir),
            "stopsignal" => self.stopsignal().map(Instruction::Stopsignal),
            "expose" => self.expose().map(Instruction::Expose),
            "volume" => self.volume().map(Instruction::Volume),
            "shell" => self.shell().map(Instruction::Shell),
            "arg" => self.arg().map(Instruction::Arg),
            "copy" => self.copy().map(Instruction::Copy),
            "add" => self.add().map(Instruction::Add),
            "onbuild" => self.onbuild().map(Instruction::Onbuild),
            "healthcheck" => self.healthcheck().map(Instruction::Healthcheck),
            _ => {
                let keyword = keyword_as_written(self.node);
                let suggestion = suggest(&keyword, KEYWORDS, false);
                Err(ErrorKind::UnknownInstruction { keyword, suggestion })
            }
        }
    }

    fn flags(&self, allowed: &[(&'static str, FlagKind)]) -> Res<Flags> {
        Flags::parse(&self.node.flags, allowed)
    }

    fn no_flags(&self) -> Res<()> {
        self.flags(&[]).map(drop)
    }

    /// BuildKit's `handleJSONArgs`: exec form keeps the words, shell form joins them.
    fn command_line(&self, args: &[&str]) -> CommandLine {
        if self.node.json {
            CommandLine::Exec(args.iter().map(|s| (*s).to_owned()).collect())
        } else {
            CommandLine::Shell(args.join(" "))
        }
    }

    fn exactly_one(&self, instruction: &'static str) -> Res<String> {
        if self.args.len() != 1 {
            return Err(ErrorKind::ExactlyOneArgument { instruction });
        }
        self.no_flags()?;
        Ok(self.args[0].to_owned())
    }

    fn at_least_one(&self, instruction: &'static str) -> Res<()> {
        if self.args.is_empty() {
            Err(ErrorKind::AtLeastOneArgument { instruction })
        } else {
            Ok(())
        }
    }

    fn from(&self) -> Res<From> {
        let name = match self.args.as_slice() {
            [_, as_, name] if as_.eq_ignore_ascii_case("as") => {
                let lower = go_lower(name);
                if !is_valid_stage_name(&lower) {
                    return Err(ErrorKind::InvalidStageName {
                        name: (*name).to_owned(),
                    });
                }
                Some(lower)
            }
            [_] => None,
            _ => return Err(ErrorKind::FromArguments),
        };
        let mut flags = self.flags(&[("platform", FlagKind::String)])?;
        let description = name.as_deref().and_then(|n| doc_comment(&self.node.comments, n));
        Ok(From {
            image: self.args[0].to_owned(),
            name,
            platform: flags.string("platform"),
            description,
        })
    }

    fn run(&self) -> Res<Run> {
        let mut flags = self.flags(&[
            ("mount", FlagKind::Strings),
            ("network", FlagKind::String),
            ("security", FlagKind::String),
        ])?;
        let command = self.command_line(&self.args);
        let mounts = flags
            .strings("mount")
            .iter()
            .map(|value| Mount::parse(value, &|w: &str| !has_variable(w)))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let network = match flags.string("network").as_deref() {
            None | Some("default") => Network::Default,
            Some("none") => Network::None,
            Some("host") => Network::Host,
            Some(other) => {
                return Err(ErrorKind::InvalidNetwork {
                    value: other.to_owned(),
                });
            }
        };
        let security = match flags.string("security").as_deref() {
            None | Some("sandbox") => Security::Sandbox,
            Some("insecure") => Security::Insecure,
            Some(other) => {
                return Err(ErrorKind::InvalidSecurity {
                    value: other.to_owned(),
                });
            }
        };
        Ok(Run {
            command,
            heredocs: self.node.heredocs.clone(),
            mounts,
            network,
            security,
        })
    }

    /// ENV and LABEL: the parser hands over `key, value, separator` triples.
    fn key_values(&self, instruction: &'static str) -> Res<Vec<KeyValue>> {
        self.at_least_one(instruction)?;
        if self.args.len() % 3 != 0 {
            return Err(ErrorKind::TooManyArguments { instruction });
        }
        self.args
            .chunks_exact(3)
            .map(|kv| {
                if kv[0].is_empty() {
                    return Err(ErrorKind::BlankName { instruction });
                }
                Ok(KeyValue {
                    key: kv[0].to_owned(),
                    value: kv[1].to_owned(),
                    legacy: kv[2].is_empty(),
                })
            })
            .collect()
    }

    /// STOPSIGNAL: BuildKit never parses its flags, so they are ignored.
    fn stopsignal(&self) -> Res<String> {
        if self.args.len() != 1 {
            return Err(ErrorKind::ExactlyOneArgument {
                instruction: "STOPSIGNAL",
            });
        }
        Ok(self.args[0].to_owned())
    }

    fn expose(&self) -> Res<Vec<String>> {
        self.at_least_one("EXPOSE")?;
        self.no_flags()?;
        let mut ports: Vec<String> = self.args.iter().map(|s| (*s).to_owned()).collect();
        ports.sort();
        Ok(ports)
    }

    fn volume(&self) -> Res<Vec<String>> {
        self.at_least_one("VOLUME")?;
        self.no_flags()?;
        self.args
            .iter()
            .map(|v| match v.trim() {
                "" => Err(ErrorKind::EmptyVolume),
                v => Ok(v.to_owned()),
            })
            .collect()
    }

    fn shell(&self) -> Res<Vec<String>> {
        self.no_flags()?;
        if self.args.is_empty() {
            return Err(ErrorKind::AtLeastOneArgument { instruction: "SHELL" });
        }
        if !self.node.json {
            return Err(ErrorKind::NotJson { instruction: "SHELL" });
        }
        Ok(self.args.iter().map(|s| (*s).to_owned()).collect())
    }

    /// ARG: BuildKit never parses its flags either.
    fn arg(&self) -> Res<Vec<ArgDef>> {
        self.at_least_one("ARG")?;
        self.args
            .iter()
            .map(|word| {
                let (name, default) = match word.split_once('=') {
                    Some(("", _)) => return Err(ErrorKind::BlankName { instruction: "ARG" }),
                    Some((name, value)) => (name, Some(value.to_owned())),
                    None => (*word, None),
                };
                let description = doc_comment(&self.node.comments, name);
                Ok(ArgDef {
                    name: name.to_owned(),
                    default,
                    description,
                })
            })
            .collect()
    }

    fn copy(&self) -> Res<Copy> {
        if self.args.len() < 2 {
            return Err(ErrorKind::NoDestination { instruction: "COPY" });
        }
        let mut flags = self.flags(&[
            ("chown", FlagKind::String),
            ("from", FlagKind::String),
            ("chmod", FlagKind::String),
            ("link", FlagKind::Bool),
            ("exclude", FlagKind::Strings),
            ("parents", FlagKind::Bool),
        ])?;
        let (sources, dest) = self.sources_and_dest("COPY")?;
        let from = flags.string("from");
        if let Some(from) = &from {
            if !is_literal(from, self.escape)? {
                return Err(ErrorKind::FromVariable);
            }
        }
        let chmod = checked_chmod(flags.string("chmod"))?;
        Ok(Copy {
            sources,
            dest,
            from,
            chown: flags.string("chown"),
            chmod,
            link: flags.bool("link").unwrap_or(false),
            parents: flags.bool("parents").unwrap_or(false),
            excludes: flags.strings("exclude"),
        })
    }

    fn add(&self) -> Res<Add> {
        if self.args.len() < 2 {
            return Err(ErrorKind::NoDestination { instruction: "ADD" });
        }
        let mut flags = self.flags(&[
            ("chown", FlagKind::String),
            ("chmod", FlagKind::String),
            ("link", FlagKind::Bool),
            ("keep-git-dir", FlagKind::Bool),
            ("checksum", FlagKind::String),
            ("unpack", FlagKind::Bool),
            ("exclude", FlagKind::Strings),
        ])?;
        let (sources, dest) = self.sources_and_dest("ADD")?;
        let chmod = checked_chmod(flags.string("chmod"))?;
        Ok(Add {
            sources,
            dest,
            chown: flags.string("chown"),
            chmod,
            link: flags.bool("link").unwrap_or(false),
            keep_git_dir: flags.bool("keep-git-dir"),
            checksum: flags.string("checksum"),
            unpack: flags.bool("unpack"),
            excludes: flags.strings("exclude"),
        })
    }

    /// Splits COPY/ADD arguments into sources and destination; `<<NAME` sources become inline
    /// files with the matching heredoc's body.
    fn sources_and_dest(&self, instruction: &'static str) -> Res<(Sources, String)> {
        let (dest, sources) = self.args.split_last().expect("callers check for two arguments");
        if heredoc_name(dest).is_some() {
            return Err(ErrorKind::HeredocDestination { instruction });
        }
        let mut out = Sources::default();
        for src in sources {
            match heredoc_name(src) {
                Some((name, quoted)) => {
                    let body = self.node.heredocs.iter().find(|h| h.name == name);
                    out.inline.push(InlineFile {
                        content: body.map(|h| h.content.clone()).unwrap_or_default(),
                        expand: body.map_or(!quoted, |h| h.expand),
                        name,
                    });
                }
                None => out.paths.push((*src).to_owned()),
            }
        }
        Ok((out, (*dest).to_owned()))
    }

    fn onbuild(&self) -> Res<Onbuild> {
        self.at_least_one("ONBUILD")?;
        self.no_flags()?;
        let trigger = self.args[0].trim().to_uppercase();
        match trigger.as_str() {
            "ONBUILD" => return Err(ErrorKind::OnbuildChain),
            "MAINTAINER" | "FROM" => return Err(ErrorKind::OnbuildTrigger { trigger }),
            _ => {}
        }
        let mut expression = strip_onbuild(&self.node.original).to_owned();
        for heredoc in onbuild_heredocs(self.node) {
            expression.push('\n');
            expression.push_str(&heredoc.content);
            expression.push_str(&heredoc.name);
        }
        Ok(Onbuild { trigger, expression })
    }

    fn healthcheck(&self) -> Res<Healthcheck> {
        self.at_least_one("HEALTHCHECK")?;
        let kind = self.args[0].to_uppercase();
        let rest = &self.args[1..];
        if kind == "NONE" {
            // BuildKit reads no flags for NONE, so any are ignored.
            return if rest.is_empty() {
                Ok(Healthcheck::None)
            } else {
                Err(ErrorKind::HealthcheckNoneArguments)
            };
        }
        let mut flags = self.flags(&[
            ("interval", FlagKind::String),
            ("timeout", FlagKind::String),
            ("start-period", FlagKind::String),
            ("start-interval", FlagKind::String),
            ("retries", FlagKind::String),
        ])?;
        if kind != "CMD" {
            return Err(ErrorKind::HealthcheckType { kind });
        }
        if rest.is_empty() {
            return Err(ErrorKind::HealthcheckMissingCommand);
        }
        let command = self.command_line(rest);
        let mut interval = |name: &str| interval_flag(name, flags.string(name));
        let (interval, timeout, start_period, start_interval) = (
            interval("interval")?,
            interval("timeout")?,
            interval("start-period")?,
            interval("start-interval")?,
        );
        let retries = retries_flag(flags.string("retries"))?;
        Ok(Healthcheck::Check(HealthcheckCmd {
            command,
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
        }))
    }
}

/// BuildKit's `nodeArgs`: argument words, with an ONBUILD's wrapped instruction flattened to its
/// keyword followed by its own arguments.
fn flatten_args<'a>(node: &'a Node, out: &mut Vec<&'a str>) {
    for arg in &node.args {
        match arg {
            Arg::Word(word) => out.push(word),
            Arg::Nested(inner) => {
                out.push(&inner.keyword);
                flatten_args(inner, out);
            }
        }
    }
}

/// The keyword in its original case (the node keeps it lower-cased), for messages.
fn keyword_as_written(node: &Node) -> String {
    let first = node.original.split_whitespace().next().unwrap_or_default();
    if go_lower(first) == node.keyword {
        first.to_owned()
    } else {
        node.keyword.clone()
    }
}

/// `^[a-z][a-z0-9-_.]*$`.
fn is_valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

/// BuildKit's `getDocComment`: the first comment line starting with `name ` (the rest of it).
fn doc_comment(comments: &[String], name: &str) -> Option<String> {
    comments.iter().find_map(|line| {
        let rest = line.trim().strip_prefix(name)?.strip_prefix(' ')?;
        Some(rest.to_owned())
    })
}

/// Whether a `RUN --mount` value holds a variable (BuildKit's `\$.` test on `from=`).
fn has_variable(word: &str) -> bool {
    word.find('$').is_some_and(|i| i + 1 < word.len())
}

/// Whether the shell lexer leaves `word` unchanged with no variables set (BuildKit's test for
/// `COPY --from`): nothing to expand, no quotes and no escapes to remove.
fn is_literal(word: &str, escape: Escape) -> Res<bool> {
    let unset: [(&str, &str); 0] = [];
    Ok(Lexer::new(escape.as_char()).process_word(word, &unset)? == word)
}

/// `--chmod`, checked now when it holds no variable (otherwise after expansion, by the builder).
fn checked_chmod(chmod: Option<String>) -> Res<Option<String>> {
    if let Some(value) = chmod.as_deref().filter(|v| !v.contains('$')) {
        Chmod::parse(value)?;
    }
    Ok(chmod)
}

/// The heredoc name a COPY/ADD word refers to (`<<EOF`, `<<-EOF`, `<<"EOF"`), and whether it was
/// quoted; `None` when the word is not a heredoc (`^\d*<<-?[^<]+$`, one word once unquoted).
fn heredoc_name(word: &str) -> Option<(String, bool)> {
    let rest = word
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .strip_prefix("<<")?;
    let rest = rest.strip_prefix('-').unwrap_or(rest);
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let quoted = rest.contains(['\'', '"']);
    let name: String = rest.chars().filter(|c| !matches!(c, '\'' | '"')).collect();
    (!name.is_empty() && !name.contains(char::is_whitespace)).then_some((name, quoted))
}

/// The ONBUILD line without `ONBUILD` and the blanks around it (`(?i)^\s*ONBUILD\s*`).
fn strip_onbuild(original: &str) -> &str {
    let trimmed = original.trim_start();
    match trimmed.get(..7) {
        Some(word) if word.eq_ignore_ascii_case("onbuild") => trimmed[7..].trim_start(),
        _ => original,
    }
}

/// Heredocs of an ONBUILD trigger, wherever the parser attached them.
fn onbuild_heredocs(node: &Node) -> &[Heredoc] {
    if !node.heredocs.is_empty() {
        return &node.heredocs;
    }
    node.args
        .iter()
        .find_map(|a| match a {
            Arg::Nested(inner) => Some(inner.heredocs.as_slice()),
            Arg::Word(_) => None,
        })
        .unwrap_or_default()
}

/// A HEALTHCHECK duration flag: zero when absent or zero, at least 1ms otherwise.
fn interval_flag(name: &str, value: Option<String>) -> Res<Duration> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(Duration::ZERO);
    };
    let nanos = super::parse_go_duration(&value)?;
    if nanos == 0 {
        return Ok(Duration::ZERO);
    }
    if nanos < 1_000_000 {
        return Err(ErrorKind::IntervalTooShort {
            flag: name.to_owned(),
        });
    }
    Ok(Duration::from_nanos(nanos.unsigned_abs()))
}

/// `--retries`: Go's `strconv.ParseInt(v, 10, 32)`, never negative.
fn retries_flag(value: Option<String>) -> Res<u32> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(0);
    };
    let digits = value.strip_prefix(['+', '-']).unwrap_or(&value);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ErrorKind::InvalidRetries {
            value,
            out_of_range: false,
        });
    }
    let Ok(parsed) = value.parse::<i32>() else {
        return Err(ErrorKind::InvalidRetries {
            value,
            out_of_range: true,
        });
    };
    u32::try_from(parsed).map_err(|_| ErrorKind::NegativeRetries {
        value: i64::from(parsed),
    })
}
