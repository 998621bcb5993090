//! `kiln images` (`kiln image ls`): the images in the store, one row per name.

use std::io::Write;

use anyhow::{Context, Result, bail};
use kiln_builder::reference::ImageRef;
use kiln_builder::store::{Image, ImageStore, is_dangling};
use serde_json::{Value, json};

use crate::Global;
use crate::format::{self, render_rows};

const DEFAULT_TABLE: &str = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
const DIGESTS_TABLE: &str =
    "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
const HEADERS: &[(&str, &str)] = &[
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("ID", "IMAGE ID"),
    ("Digest", "DIGEST"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
    ("VirtualSize", "SIZE"),
    ("SharedSize", "SHARED SIZE"),
    ("UniqueSize", "UNIQUE SIZE"),
    ("Containers", "CONTAINERS"),
];

/// `kiln images [OPTIONS] [REPOSITORY[:TAG]]`
#[derive(Debug, clap::Args)]
#[expect(clippy::struct_excessive_bools, reason = "one field per Docker flag")]
pub(crate) struct Args {
    /// Show only images whose name matches (a pattern, as `--filter reference=`).
    reference: Option<String>,
    /// Show all images (kiln keeps no intermediate images, so this changes nothing).
    #[arg(short, long)]
    all: bool,
    /// Show digests.
    #[arg(long)]
    digests: bool,
    /// Filter output: dangling=true|false, reference=PATTERN, label=KEY[=VALUE], before=IMAGE,
    /// since=IMAGE.
    #[arg(short, long = "filter", value_name = "FILTER")]
    filter: Vec<String>,
    /// Format output: `table`, `table TEMPLATE`, `json`, or a Go template.
    #[arg(long)]
    format: Option<String>,
    /// Don't truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// Only show image IDs.
    #[arg(short, long)]
    quiet: bool,
}

/// One parsed `--filter`.
enum Filter {
    Dangling(bool),
    Reference(String),
    Label(String, Option<String>),
    Before(i64),
    Since(i64),
}

pub(crate) fn run(args: &Args, global: &Global) -> Result<()> {
    let store = ImageStore::open(&global.root())?;
    let mut filters = parse_filters(&store, &args.filter)?;
    if let Some(reference) = &args.reference {
        filters.push(Filter::Reference(reference.clone()));
    }
    let mut images = store.list()?;
    // Newest first, as Docker sorts; the store's order (last tagged first) breaks ties.
    images.sort_by_key(|image| std::cmp::Reverse(created(image)));
    let mut rows = Vec::new();
    for image in &images {
        if !image_matches(image, &filters) {
            continue;
        }
        for (repository, tag) in name_rows(image, &filters) {
            rows.push(row(image, &repository, &tag, args.no_trunc));
        }
    }
    let format = if args.quiet {
        Some("{{.ID}}")
    } else {
        args.format.as_deref()
    };
    let table = if args.digests {
        DIGESTS_TABLE
    } else {
        DEFAULT_TABLE
    };
    let out = render_rows(format, table, HEADERS, &rows)?;
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(())
}

fn parse_filters(store: &ImageStore, specs: &[String]) -> Result<Vec<Filter>> {
    let mut filters = Vec::new();
    for spec in specs {
        let Some((key, value)) = spec.split_once('=') else {
            bail!("bad format of filter (expected name=value)");
        };
        let time_of = |name: &str| -> Result<i64> {
            let image = store.resolve(name)?;
            Ok(created(&image))
        };
        filters.push(match key.to_lowercase().as_str() {
            "dangling" => match value.to_lowercase().as_str() {
                "true" | "1" => Filter::Dangling(true),
                "false" | "0" => Filter::Dangling(false),
                _ => bail!("invalid filter 'dangling={value}'"),
            },
            "reference" => Filter::Reference(value.to_owned()),
            "label" => match value.split_once('=') {
                Some((k, v)) => Filter::Label(k.to_owned(), Some(v.to_owned())),
                None => Filter::Label(value.to_owned(), None),
            },
            "before" => Filter::Before(time_of(value)?),
            "since" => Filter::Since(time_of(value)?),
            _ => bail!("invalid filter '{key}'"),
        });
    }
    Ok(filters)
}

/// The image's creation time in unix seconds (0 when it has none).
pub(crate) fn created(image: &Image) -> i64 {
    image
        .created
        .as_deref()
        .and_then(format::Timestamp::parse)
        .map_or(0, format::Timestamp::unix)
}

/// The names users gave the image (dangling names left out).
pub(crate) fn real_names(image: &Image) -> impl Iterator<Item = &ImageRef> {
    image.names.iter().filter(|name| !is_dangling(name))
}

/// Whether the image passes the image-level filters (all kinds must pass; any of one kind).
fn image_matches(image: &Image, filters: &[Filter]) -> bool {
    let dangling = real_names(image).next().is_none();
    let time = created(image);
    let labels = image
        .config
        .config()
        .as_ref()
        .and_then(|config| config.labels().clone())
        .unwrap_or_default();
    let dangling_ok = filters
        .iter()
        .all(|f| !matches!(f, Filter::Dangling(want) if *want != dangling));
    let labels_ok = filters.iter().all(|f| match f {
        Filter::Label(key, value) => labels
            .get(key)
            .is_some_and(|v| value.as_ref().is_none_or(|want| want == v)),
        _ => true,
    });
    let time_ok = filters.iter().all(|f| match f {
        Filter::Before(limit) => time < *limit,
        Filter::Since(limit) => time > *limit,
        _ => true,
    });
    dangling_ok && labels_ok && time_ok
}

/// (repository, tag) rows for an image: one per tag, one per repository known only by digest,
/// `<none>` for a dangling image; only names matching the reference filters.
fn name_rows(image: &Image, filters: &[Filter]) -> Vec<(String, String)> {
    let patterns: Vec<&str> = filters
        .iter()
        .filter_map(|f| match f {
            Filter::Reference(pattern) => Some(pattern.as_str()),
            _ => None,
        })
        .collect();
    let names: Vec<&ImageRef> = real_names(image)
        .filter(|name| patterns.is_empty() || patterns.iter().any(|p| reference_matches(p, name)))
        .collect();
    if real_names(image).next().is_none() {
        return if patterns.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            Vec::new()
        };
    }
    let mut rows: Vec<(String, String)> = names
        .iter()
        .filter_map(|name| Some((name.familiar(), name.tag()?.to_owned())))
        .collect();
    for name in &names {
        let repository = name.familiar();
        if name.tag().is_none() && !rows.iter().any(|(repo, _)| *repo == repository) {
            rows.push((repository, "<none>".into()));
        }
    }
    rows.sort();
    rows.dedup();
    rows
}

/// Docker's `reference` filter: a glob on `repo:tag` or, failing that, on `repo`.
pub(crate) fn reference_matches(pattern: &str, name: &ImageRef) -> bool {
    glob(pattern, &name.familiar_string()) || glob(pattern, &name.familiar())
}

fn row(image: &Image, repository: &str, tag: &str, no_trunc: bool) -> Value {
    let digest = if repository == "<none>" {
        "<none>".to_owned()
    } else {
        image.target.digest().to_string()
    };
    let size = format::human_size(image.size, 3);
    json!({
        "Containers": "N/A",
        "CreatedAt": format::created_at(image.created.as_deref()),
        "CreatedSince": format::created_since(image.created.as_deref()),
        "Digest": digest,
        "ID": format::image_id(&image.id, no_trunc),
        "Repository": repository,
        "SharedSize": "N/A",
        "Size": size,
        "Tag": tag,
        "UniqueSize": "N/A",
        "VirtualSize": size,
    })
}

/// Go's `path.Match`: `*` and `?` do not cross `/`, `[...]` classes (with `^` negation and
/// ranges), `\` escapes. A malformed pattern matches nothing.
pub(crate) fn glob(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    glob_at(&pattern, &name).unwrap_or(false)
}

fn glob_at(pattern: &[char], name: &[char]) -> Option<bool> {
    let Some((&first, rest)) = pattern.split_first() else {
        return Some(name.is_empty());
    };
    match first {
        '*' => {
            for skip in 0..=name.len() {
                if glob_at(rest, &name[skip..])? {
                    return Some(true);
                }
                if name.get(skip) == Some(&'/') {
                    break;
                }
            }
            Some(false)
        }
        '?' => match name.split_first() {
            Some((&c, tail)) if c != '/' => glob_at(rest, tail),
            _ => Some(false),
        },
        '[' => {
            let close = rest.iter().position(|&c| c == ']')?;
            let (class, after) = (&rest[..close], &rest[close + 1..]);
            let (negated, class) = match class.split_first() {
                Some(('^', tail)) => (true, tail),
                _ => (false, class),
            };
            let Some((&c, tail)) = name.split_first() else {
                return Some(false);
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if class.get(i + 1) == Some(&'-') && i + 2 < class.len() {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            if hit != negated && c != '/' {
                glob_at(after, tail)
            } else {
                Some(false)
            }
        }
        '\\' => {
            let (&literal, rest) = rest.split_first()?;
            match name.split_first() {
                Some((&c, tail)) if c == literal => glob_at(rest, tail),
                _ => Some(false),
            }
        }
        literal => match name.split_first() {
            Some((&c, tail)) if c == literal => glob_at(rest, tail),
            _ => Some(false),
        },
    }
}

/// Parses a user-given image name that must be a tag (for `tag` and `import`).
pub(crate) fn parse_tag(name: &str) -> Result<ImageRef> {
    let reference: ImageRef = name
        .parse()
        .with_context(|| format!("invalid reference {name:?}"))?;
    if reference.digest().is_some() {
        bail!("refusing to create a tag with a digest reference");
    }
    Ok(reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_go_path_match() {
        assert!(glob("busy*", "busybox:latest"));
        assert!(glob("busybox:1.?", "busybox:1.5"));
        assert!(!glob("*", "library/busybox"));
        assert!(glob("*/*", "library/busybox"));
        assert!(glob("[a-c]pp", "bpp"));
        assert!(!glob("[^a-c]pp", "bpp"));
        assert!(glob(r"a\*", "a*"));
    }

    #[test]
    fn reference_filter_matches_name_or_name_and_tag() {
        let name: ImageRef = "busybox:1".parse().unwrap();
        assert!(reference_matches("busybox", &name));
        assert!(reference_matches("busybox:1", &name));
        assert!(!reference_matches("busybox:2", &name));
        assert!(reference_matches("bus*", &name));
    }
}
