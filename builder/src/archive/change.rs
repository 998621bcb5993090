//! `--change`: Dockerfile instructions applied to an imported image's config, as `docker import
//! --change` and `docker commit --change` apply them.
//!
//! Each change is parsed with the Dockerfile parser, so its words read exactly as in a
//! Dockerfile (quotes, JSON forms, `$VAR` expanded against the config's `ENV` as it stands).
//! The instructions allowed are Docker's: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD,
//! STOPSIGNAL, USER, VOLUME and WORKDIR.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::ArchiveError;
use crate::frontend::shell::Lexer;
use crate::frontend::syntax::{self, Arg, Node};

/// Docker writes a set (exposed ports, volumes) as an object whose values are empty objects.
fn object_set<S: serde::Serializer>(set: &BTreeSet<String>, serializer: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = serializer.serialize_map(Some(set.len()))?;
    for key in set {
        map.serialize_entry(key, &serde_json::Map::new())?;
    }
    map.end()
}

/// The runtime part of an image config (its `config` object), in Docker's field names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RunConfig {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) user: String,
    #[serde(skip_serializing_if = "BTreeSet::is_empty", serialize_with = "object_set")]
    pub(crate) exposed_ports: BTreeSet<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) env: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cmd: Option<Vec<String>>,
    #[serde(skip_serializing_if = "BTreeSet::is_empty", serialize_with = "object_set")]
    pub(crate) volumes: BTreeSet<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) working_dir: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) stop_signal: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) on_build: Vec<String>,
}

/// Applies `changes` in order to a config.
pub(crate) fn apply(config: &mut RunConfig, changes: &[String]) -> Result<(), ArchiveError> {
    let mut cmd_set = false;
    for change in changes {
        let dockerfile = syntax::parse(change.as_bytes()).map_err(|source| ArchiveError::ChangeSyntax {
            change: change.clone(),
            source,
        })?;
        let lexer = Lexer::new(dockerfile.directives.escape.as_char());
        for node in &dockerfile.instructions {
            let mut step = Step {
                config,
                lexer: &lexer,
                change,
                cmd_set: &mut cmd_set,
            };
            step.apply(node)?;
        }
    }
    Ok(())
}

/// One instruction being applied.
struct Step<'a> {
    config: &'a mut RunConfig,
    lexer: &'a Lexer,
    change: &'a str,
    /// Whether a CMD came earlier: ENTRYPOINT clears CMD otherwise, as in a Dockerfile.
    cmd_set: &'a mut bool,
}

impl Step<'_> {
    fn apply(&mut self, node: &Node) -> Result<(), ArchiveError> {
        match node.keyword.as_str() {
            "env" => {
                for (key, value) in self.pairs(node)? {
                    let prefix = format!("{key}=");
                    let entry = format!("{key}={value}");
                    match self.config.env.iter_mut().find(|e| e.starts_with(&prefix)) {
                        Some(existing) => *existing = entry,
                        None => self.config.env.push(entry),
                    }
                }
            }
            "label" => {
                for (key, value) in self.pairs(node)? {
                    self.config.labels.insert(key, value);
                }
            }
            "cmd" => {
                self.config.cmd = Some(command(node));
                *self.cmd_set = true;
            }
            "entrypoint" => {
                self.config.entrypoint = Some(command(node));
                if !*self.cmd_set {
                    self.config.cmd = None;
                }
            }
            "expose" => {
                for word in words(node) {
                    for port in self.expand_words(word)? {
                        let port = self.port(&port)?;
                        self.config.exposed_ports.insert(port);
                    }
                }
            }
            "user" => self.config.user = self.single(node)?,
            "stopsignal" => self.config.stop_signal = self.single(node)?,
            "workdir" => {
                let dir = self.single(node)?;
                self.config.working_dir = join_workdir(&self.config.working_dir, &dir);
            }
            "volume" => {
                for word in words(node) {
                    let volume = self.expand(word)?;
                    if volume.trim().is_empty() {
                        return Err(self.argument("VOLUME specified can not be an empty string"));
                    }
                    self.config.volumes.insert(volume);
                }
            }
            "onbuild" => {
                let trigger = onbuild_trigger(node);
                let keyword = trigger
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_uppercase();
                if matches!(keyword.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                    return Err(self.argument(&format!("{keyword} isn't allowed as an ONBUILD trigger")));
                }
                self.config.on_build.push(trigger);
            }
            other => {
                return Err(ArchiveError::ChangeNotAllowed {
                    keyword: other.to_uppercase(),
                });
            }
        }
        Ok(())
    }

    fn env(&self) -> Vec<(String, String)> {
        self.config
            .env
            .iter()
            .map(|entry| match entry.split_once('=') {
                Some((key, value)) => (key.to_owned(), value.to_owned()),
                None => (entry.clone(), String::new()),
            })
            .collect()
    }

    fn expand(&self, word: &str) -> Result<String, ArchiveError> {
        self.lexer
            .process_word(word, &self.env())
            .map_err(|source| ArchiveError::ChangeExpansion {
                change: self.change.to_owned(),
                source,
            })
    }

    fn expand_words(&self, word: &str) -> Result<Vec<String>, ArchiveError> {
        self.lexer
            .process_words(word, &self.env())
            .map_err(|source| ArchiveError::ChangeExpansion {
                change: self.change.to_owned(),
                source,
            })
    }

    fn argument(&self, reason: &str) -> ArchiveError {
        ArchiveError::ChangeArgument {
            change: self.change.to_owned(),
            reason: reason.to_owned(),
        }
    }

    /// ENV and LABEL arguments: (key, value, separator) triples, both halves expanded.
    fn pairs(&self, node: &Node) -> Result<Vec<(String, String)>, ArchiveError> {
        let words: Vec<&str> = words(node).collect();
        if words.is_empty() {
            return Err(self.argument(&format!(
                "{} requires at least one argument",
                node.keyword.to_uppercase()
            )));
        }
        let mut pairs = Vec::new();
        for triple in words.chunks(3) {
            let [key, value, ..] = triple else {
                return Err(self.argument("missing value"));
            };
            let key = self.expand(key)?;
            if key.is_empty() {
                return Err(self.argument(&format!("{} names can not be blank", node.keyword.to_uppercase())));
            }
            pairs.push((key, self.expand(value)?));
        }
        Ok(pairs)
    }

    /// The one expanded argument of USER, WORKDIR or STOPSIGNAL.
    fn single(&self, node: &Node) -> Result<String, ArchiveError> {
        let words: Vec<&str> = words(node).collect();
        match words.as_slice() {
            [word] => self.expand(word),
            _ => Err(self.argument(&format!(
                "{} requires exactly one argument",
                node.keyword.to_uppercase()
            ))),
        }
    }

    /// `80`, `80/udp`, `8000-8010/tcp` → Docker's `port/proto` key.
    fn port(&self, spec: &str) -> Result<String, ArchiveError> {
        let (ports, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
        let proto = proto.to_lowercase();
        if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
            return Err(self.argument(&format!("invalid proto: {proto}")));
        }
        let valid = |p: &str| p.parse::<u16>().is_ok();
        let ok = match ports.split_once('-') {
            Some((low, high)) => valid(low) && valid(high),
            None => valid(ports),
        };
        if !ok {
            return Err(self.argument(&format!("invalid containerPort: {ports}")));
        }
        Ok(format!("{ports}/{proto}"))
    }
}

/// The words of a node (nested ONBUILD nodes have none of their own).
fn words(node: &Node) -> impl Iterator<Item = &str> {
    node.args.iter().filter_map(|arg| match arg {
        Arg::Word(word) => Some(word.as_str()),
        Arg::Nested(_) => None,
    })
}

/// CMD and ENTRYPOINT: the JSON form as is, the shell form run by `/bin/sh -c`.
fn command(node: &Node) -> Vec<String> {
    let words: Vec<String> = words(node).map(str::to_owned).collect();
    if node.json {
        return words;
    }
    let mut command = vec!["/bin/sh".to_owned(), "-c".to_owned()];
    command.push(words.join(" "));
    command
}

/// The instruction ONBUILD wraps, as written after the keyword.
fn onbuild_trigger(node: &Node) -> String {
    let original = node.original.trim_start();
    let rest = original.get("onbuild".len()..).unwrap_or_default();
    rest.trim().to_owned()
}

/// WORKDIR semantics: a relative path continues the previous one; the result is cleaned.
fn join_workdir(current: &str, dir: &str) -> String {
    let joined = if dir.starts_with('/') {
        dir.to_owned()
    } else {
        format!("{}/{dir}", if current.is_empty() { "/" } else { current })
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(changes: &[&str]) -> Result<RunConfig, ArchiveError> {
        let mut config = RunConfig::default();
        let changes: Vec<String> = changes.iter().map(|c| (*c).to_owned()).collect();
        apply(&mut config, &changes)?;
        Ok(config)
    }

    #[test]
    fn changes_read_as_dockerfile_lines() {
        let config = applied(&[
            "ENV PATH=/bin A=\"one two\"",
            "ENV B=$A-x",
            "LABEL version=1.0 \"quoted key\"=v",
            "CMD [\"sh\", \"-c\", \"echo hi\"]",
            "EXPOSE 80 53/udp",
            "WORKDIR /app",
            "WORKDIR sub/..//x",
            "USER app:app",
            "VOLUME /data",
            "STOPSIGNAL SIGINT",
            "ONBUILD RUN echo built",
        ])
        .unwrap();
        assert_eq!(config.env, ["PATH=/bin", "A=one two", "B=one two-x"]);
        assert_eq!(config.labels["version"], "1.0");
        assert_eq!(config.labels["quoted key"], "v");
        assert_eq!(
            config.cmd.as_deref(),
            Some(&["sh".to_owned(), "-c".to_owned(), "echo hi".to_owned()][..])
        );
        assert_eq!(
            config.exposed_ports.iter().collect::<Vec<_>>(),
            ["53/udp", "80/tcp"]
        );
        assert_eq!(config.working_dir, "/app/x");
        assert_eq!(config.user, "app:app");
        assert!(config.volumes.contains("/data"));
        assert_eq!(config.stop_signal, "SIGINT");
        assert_eq!(config.on_build, ["RUN echo built"]);
    }

    #[test]
    fn shell_form_runs_through_sh_and_entrypoint_resets_cmd() {
        let config = applied(&["CMD echo hi", "ENTRYPOINT [\"/bin/app\"]"]).unwrap();
        assert_eq!(config.cmd.unwrap(), ["/bin/sh", "-c", "echo hi"]);
        let config = applied(&["ENTRYPOINT top -b"]).unwrap();
        assert_eq!(config.entrypoint.unwrap(), ["/bin/sh", "-c", "top -b"]);
        assert_eq!(config.cmd, None);
    }

    #[test]
    fn other_instructions_and_bad_arguments_are_refused() {
        let error = applied(&["RUN echo hi"]).unwrap_err();
        assert_eq!(error.to_string(), "RUN is not a valid change command");
        let error = applied(&["EXPOSE http"]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid change \"EXPOSE http\": invalid containerPort: http"
        );
        assert!(applied(&["ENV"]).is_err());
        assert!(applied(&["ONBUILD FROM x"]).is_err());
    }
}
