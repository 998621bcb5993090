//! The image config a build produces: the OCI image config with Docker's extensions (`Healthcheck`,
//! `OnBuild`, `Shell`, `ArgsEscaped`), as BuildKit's `DockerOCIImage` reads and writes it.
//!
//! Reading is lenient as Docker is (`null` for any list or map, a string where a command list is
//! expected); fields kiln does not model (the legacy `container_config`, `Hostname`...) are dropped,
//! as BuildKit drops them. Writing omits empty fields and orders the top-level keys alphabetically,
//! the order BuildKit's exporter leaves them in.
// Ports and volumes are maps to `{}` rather than sets: that is their JSON shape (and serde's derives
// repeat the field types, so the allowance has to cover the module).
#![allow(clippy::zero_sized_map_values)]

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// An image config (`application/vnd.oci.image.config.v1+json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// CPU architecture (`amd64`).
    #[serde(default)]
    pub architecture: String,
    /// `MAINTAINER`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// What a container runs with.
    #[serde(default, deserialize_with = "null_default")]
    pub config: RunConfig,
    /// RFC 3339 creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// One entry per instruction that shaped the image, layers and config-only steps alike.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub history: Vec<History>,
    /// Operating system (`linux`).
    #[serde(default)]
    pub os: String,
    /// OS features.
    #[serde(rename = "os.features", default, skip_serializing_if = "Option::is_none")]
    pub os_features: Option<Vec<String>>,
    /// OS version.
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// The layers' uncompressed digests, bottom first.
    #[serde(default, deserialize_with = "null_default")]
    pub rootfs: RootFs,
    /// CPU variant (`v7`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// The `config` object: how a container of the image runs (Docker's field names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    /// `USER`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub user: String,
    /// `EXPOSE`: `80/tcp` -> `{}`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub exposed_ports: BTreeMap<String, Empty>,
    /// `ENV`, as `KEY=value`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub env: Vec<String>,
    /// `ENTRYPOINT`.
    #[serde(
        default,
        deserialize_with = "str_slice",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub entrypoint: Vec<String>,
    /// `CMD`.
    #[serde(
        default,
        deserialize_with = "str_slice",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub cmd: Vec<String>,
    /// `VOLUME`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub volumes: BTreeMap<String, Empty>,
    /// `WORKDIR`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub working_dir: String,
    /// `LABEL`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    /// `STOPSIGNAL`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub stop_signal: String,
    /// Set by `CMD` (Docker's marker that the command needs no further escaping on Windows).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub args_escaped: bool,
    /// `HEALTHCHECK`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    /// `ONBUILD` triggers, as written after the keyword.
    #[serde(
        rename = "OnBuild",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub on_build: Vec<String>,
    /// `SHELL`.
    #[serde(
        default,
        deserialize_with = "str_slice",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub shell: Vec<String>,
}

/// The value of a set-like map entry: `{}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// `HEALTHCHECK`: durations in nanoseconds, zero meaning "inherit".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    /// `["CMD", args...]`, `["CMD-SHELL", command]` or `["NONE"]`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub test: Vec<String>,
    /// Time between checks.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interval: i64,
    /// Time before a check counts as hung.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout: i64,
    /// Start-up time during which failures do not count.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_period: i64,
    /// Time between checks during the start period.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_interval: i64,
    /// Consecutive failures that make the container unhealthy.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: i64,
}

/// `rootfs`: the layer chain by uncompressed digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The diff IDs, bottom layer first.
    #[serde(default, deserialize_with = "null_default")]
    pub diff_ids: Vec<String>,
}

impl Default for RootFs {
    fn default() -> RootFs {
        RootFs {
            kind: "layers".to_owned(),
            diff_ids: Vec::new(),
        }
    }
}

/// One history entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// RFC 3339 time of the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The instruction, as BuildKit words it (`RUN /bin/sh -c make # buildkit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// `buildkit.dockerfile.v0` for steps of a Dockerfile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Whether the step left no layer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// The history comment BuildKit's Dockerfile frontend writes.
pub(crate) const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

/// The `PATH` BuildKit gives an image that has none (`system.DefaultPathEnv` on Linux).
pub(crate) const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl ImageConfig {
    /// BuildKit's `emptyImage`: what `FROM scratch` starts from.
    pub(crate) fn empty(os: &str, architecture: &str, variant: Option<&str>) -> ImageConfig {
        ImageConfig {
            architecture: architecture.to_owned(),
            os: os.to_owned(),
            variant: variant.map(str::to_owned),
            config: RunConfig {
                working_dir: "/".to_owned(),
                env: vec![format!("PATH={DEFAULT_PATH}")],
                ..RunConfig::default()
            },
            ..ImageConfig::default()
        }
    }

    /// The value of `key` in the config's environment (`KEY=value` entries; the first match wins, as
    /// BuildKit's `addEnv` keeps one entry per key).
    pub(crate) fn env_value(&self, key: &str) -> Option<&str> {
        self.config.env.iter().find_map(|entry| {
            let (k, v) = entry.split_once('=').unwrap_or((entry, ""));
            (k == key).then_some(v)
        })
    }

    /// BuildKit's `addEnv`: replaces the entry for `key` in place, or appends one.
    pub(crate) fn set_env(&mut self, key: &str, value: &str) {
        let entry = format!("{key}={value}");
        let existing = self
            .config
            .env
            .iter_mut()
            .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key);
        match existing {
            Some(slot) => *slot = entry,
            None => self.config.env.push(entry),
        }
    }
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde passes fields by reference
fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// `null` reads as the type's default, as Go's `encoding/json` leaves a nil slice or map.
fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Docker's `StrSlice`: a list of strings, a lone string, or `null`.
fn str_slice<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(deserializer)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_docker_configs_leniently() {
        let json = r#"{"architecture":"amd64","os":"linux","config":{"Hostname":"","Env":null,
            "Cmd":"sh","Labels":null,"OnBuild":null,"ExposedPorts":{"80/tcp":{}}},
            "rootfs":{"type":"layers","diff_ids":["sha256:aa"]},"container_config":{}}"#;
        let config: ImageConfig = serde_json::from_str(json).unwrap();
        assert_eq!(config.config.cmd, ["sh"]);
        assert!(config.config.env.is_empty());
        assert!(config.config.exposed_ports.contains_key("80/tcp"));
        assert_eq!(config.rootfs.diff_ids, ["sha256:aa"]);
    }

    #[test]
    fn writes_sorted_keys_and_omits_empty_fields() {
        let mut config = ImageConfig::empty("linux", "amd64", None);
        config.config.args_escaped = true;
        config.config.cmd = vec!["sh".into()];
        config.history.push(History {
            created_by: Some("CMD [\"sh\"]".into()),
            comment: Some(HISTORY_COMMENT.into()),
            empty_layer: true,
            ..History::default()
        });
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(
            json,
            r#"{"architecture":"amd64","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"],"WorkingDir":"/","ArgsEscaped":true},"history":[{"created_by":"CMD [\"sh\"]","comment":"buildkit.dockerfile.v0","empty_layer":true}],"os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
        );
    }

    #[test]
    fn set_env_replaces_in_place() {
        let mut config = ImageConfig::empty("linux", "amd64", None);
        config.set_env("A", "1");
        config.set_env("PATH", "/bin");
        assert_eq!(config.config.env, ["PATH=/bin", "A=1"]);
        assert_eq!(config.env_value("A"), Some("1"));
    }
}
