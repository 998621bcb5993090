//! `kiln inspect` (`kiln image inspect`): images as JSON, in the shape of `docker image inspect`.

use std::io::Write;

use anyhow::Result;
use kiln_builder::reference::ImageRef;
use kiln_builder::store::{Image, ImageStore};
use serde_json::{Value, json};

use crate::format::Template;
use crate::images::real_names;
use crate::{Global, report};

/// `kiln inspect [OPTIONS] IMAGE [IMAGE...]`
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Images: names or IDs (prefixes).
    #[arg(required = true)]
    images: Vec<String>,
    /// Format output with a Go template (`{{.Id}}`, `{{json .Config}}`...).
    #[arg(short, long)]
    format: Option<String>,
    /// Only inspect objects of this type (kiln has images only).
    #[arg(long, value_parser = ["image"])]
    r#type: Option<String>,
}

/// Docker's container config, in its order, with the value an unset field shows (`None`: the
/// field is left out when unset, as Docker's `omitempty` does).
const CONFIG_FIELDS: &[(&str, Option<Default>)] = &[
    ("Hostname", Some(Default::Text)),
    ("Domainname", Some(Default::Text)),
    ("User", Some(Default::Text)),
    ("AttachStdin", Some(Default::False)),
    ("AttachStdout", Some(Default::False)),
    ("AttachStderr", Some(Default::False)),
    ("ExposedPorts", None),
    ("Tty", Some(Default::False)),
    ("OpenStdin", Some(Default::False)),
    ("StdinOnce", Some(Default::False)),
    ("Env", Some(Default::Null)),
    ("Cmd", Some(Default::Null)),
    ("Healthcheck", None),
    ("ArgsEscaped", None),
    ("Image", Some(Default::Text)),
    ("Volumes", Some(Default::Null)),
    ("WorkingDir", Some(Default::Text)),
    ("Entrypoint", Some(Default::Null)),
    ("OnBuild", Some(Default::Null)),
    ("Labels", Some(Default::Null)),
    ("StopSignal", None),
    ("Shell", None),
];

/// What an unset config field shows.
#[derive(Debug, Clone, Copy)]
enum Default {
    Text,
    False,
    Null,
}

pub(crate) fn run(args: &Args, global: &Global) -> Result<()> {
    let store = ImageStore::open(&global.root())?;
    let template = args.format.as_deref().map(Template::parse).transpose()?;
    let mut found = Vec::new();
    let mut failed = 0;
    for name in &args.images {
        match store
            .resolve(name)
            .map_err(anyhow::Error::from)
            .and_then(|image| describe(&store, &image))
        {
            Ok(value) => found.push(value),
            Err(error) => {
                failed += 1;
                report(&error);
            }
        }
    }
    let mut out = std::io::stdout().lock();
    if let Some(template) = &template {
        for value in &found {
            writeln!(out, "{}", template.render(&value.value())?)?;
        }
    } else {
        // Docker indents with four spaces.
        let mut bytes = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, formatter);
        serde::Serialize::serialize(&found, &mut serializer)?;
        out.write_all(&bytes)?;
        writeln!(out)?;
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} images not found", args.images.len());
    }
    Ok(())
}

/// A JSON object that keeps its keys in the order given (Docker's order), unlike `Value`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ordered(Vec<(String, Field)>);

#[derive(Debug, Clone)]
enum Field {
    Value(Value),
    Object(Ordered),
}

impl Ordered {
    fn push(&mut self, key: &str, value: impl Into<Value>) {
        self.0.push((key.to_owned(), Field::Value(value.into())));
    }

    fn push_object(&mut self, key: &str, object: Ordered) {
        self.0.push((key.to_owned(), Field::Object(object)));
    }

    /// The object as a `Value`, for templates (which do not care about order).
    pub(crate) fn value(&self) -> Value {
        let field = |field: &Field| match field {
            Field::Value(value) => value.clone(),
            Field::Object(object) => object.value(),
        };
        Value::Object(
            self.0
                .iter()
                .map(|(key, value)| (key.clone(), field(value)))
                .collect(),
        )
    }
}

impl serde::Serialize for Ordered {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, field) in &self.0 {
            match field {
                Field::Value(value) => map.serialize_entry(key, value)?,
                Field::Object(object) => map.serialize_entry(key, object)?,
            }
        }
        map.end()
    }
}

/// `docker image inspect`'s object for one image, from the raw config (which keeps Docker's
/// fields that the OCI config type has no room for, such as `Healthcheck` and `OnBuild`).
pub(crate) fn describe(store: &ImageStore, image: &Image) -> Result<Ordered> {
    let raw: Value = serde_json::from_slice(&store.content().read(&image.id)?)?;
    let text = |key: &str| {
        raw.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let mut config = Ordered::default();
    for (key, default) in CONFIG_FIELDS {
        let value = raw["config"].get(*key).filter(|value| !value.is_null()).cloned();
        let value = match (value, default) {
            (Some(value), _) => value,
            (None, Some(Default::Text)) => json!(""),
            (None, Some(Default::False)) => json!(false),
            (None, Some(Default::Null)) => Value::Null,
            (None, None) => continue,
        };
        config.push(key, value);
    }
    for (key, value) in raw["config"].as_object().into_iter().flatten() {
        if !CONFIG_FIELDS.iter().any(|(known, _)| known == key) {
            config.push(key, value.clone());
        }
    }
    let target = image.target.digest().to_string();
    let mut repositories: Vec<String> = real_names(image).map(ImageRef::familiar).collect();
    repositories.dedup();
    let repo_digests: Vec<String> = repositories
        .iter()
        .map(|repo| format!("{repo}@{target}"))
        .collect();
    let repo_tags: Vec<String> = real_names(image)
        .filter(|name| name.tag().is_some() && name.digest().is_none())
        .map(ImageRef::familiar_string)
        .collect();
    let mut value = Ordered::default();
    value.push("Id", image.id.to_string());
    value.push("RepoTags", repo_tags);
    value.push("RepoDigests", repo_digests);
    value.push("Parent", "");
    value.push("Comment", text("comment"));
    value.push("Created", text("created"));
    value.push("DockerVersion", text("docker_version"));
    value.push("Author", text("author"));
    value.push_object("Config", config);
    value.push("Architecture", text("architecture"));
    if let Some(variant) = raw.get("variant").and_then(Value::as_str) {
        value.push("Variant", variant);
    }
    value.push("Os", text("os"));
    value.push("Size", image.size);
    let mut rootfs = Ordered::default();
    rootfs.push("Type", "layers");
    rootfs.push("Layers", raw["rootfs"]["diff_ids"].clone());
    value.push_object("RootFS", rootfs);
    value.push("Metadata", json!({ "LastTagTime": "0001-01-01T00:00:00Z" }));
    let mut descriptor = Ordered::default();
    descriptor.push("mediaType", image.target.media_type().to_string());
    descriptor.push("digest", target);
    descriptor.push("size", image.target.size());
    value.push_object("Descriptor", descriptor);
    Ok(value)
}
