//! Named images: put, tag, untag, resolve, list, remove, with Docker's semantics.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use oci_spec::image::{
    Descriptor, DescriptorBuilder, ImageConfiguration, ImageIndex, ImageManifest, MediaType,
};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::db::{digest_column, reference_column, size_column, unix_now};
use super::manifest::{Kind, descriptor_digest, kind_of, media_type_of, parse_json, pick_manifest};
use super::{Db, StoreError};
use crate::content::{ContentStore, Digest};
use crate::reference::ImageRef;

/// The metadata database's file name under the root.
const DB_FILE: &str = "metadata-v1.db";

/// Images in a kiln root: blobs in a [`ContentStore`], names in the metadata [`Db`].
///
/// Cheap to share between threads (`&ImageStore` is `Sync`); open one per process. Several
/// processes may use one root at once: see the [module docs](super) for the protocol.
#[derive(Debug)]
pub struct ImageStore {
    pub(super) content: ContentStore,
    pub(super) db: Arc<Db>,
}

/// An image as `docker images` / `docker inspect` see it.
#[derive(Debug, Clone)]
pub struct Image {
    /// The image ID: the digest of its config.
    pub id: Digest,
    /// What the names point to: the manifest, or the index holding it.
    pub target: Descriptor,
    /// The image manifest of this platform (the target itself unless the target is an index).
    pub manifest: Digest,
    /// Every name of the image, sorted. Empty for an image stored without one.
    pub names: Vec<ImageRef>,
    /// The parsed image config.
    pub config: ImageConfiguration,
    /// Bytes of config and layers as stored (pulled layers compressed, built ones plain tars).
    pub size: u64,
    /// The config's `created` timestamp (RFC 3339), if it has one.
    pub created: Option<String>,
}

/// What [`ImageStore::remove`] did, in the order `docker rmi` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// Names removed (`Untagged: …`).
    pub untagged: Vec<ImageRef>,
    /// The image ID, if the image lost its last name and is gone (`Deleted: …`). Its blobs are
    /// reclaimed by the next [`ImageStore::gc`].
    pub deleted: Option<Digest>,
}

/// One row of the `images` table: a name and what it points to.
#[derive(Debug, Clone)]
struct NameRow {
    name: ImageRef,
    record: Record,
    updated_at: i64,
}

/// What a name points to: the target and, resolved once when the name is set, the platform
/// manifest and config (immutable facts of the target, kept to answer ID lookups in SQL).
#[derive(Debug, Clone)]
struct Record {
    target: Target,
    manifest: Digest,
    config: Digest,
}

#[derive(Debug, Clone)]
struct Target {
    digest: Digest,
    media_type: String,
    size: u64,
}

const COLUMNS: &str =
    "name, target_digest, target_media_type, target_size, manifest_digest, config_digest, updated_at";

fn read_row(row: &Row<'_>) -> rusqlite::Result<NameRow> {
    Ok(NameRow {
        name: reference_column(row, 0)?,
        record: Record {
            target: Target {
                digest: digest_column(row, 1)?,
                media_type: row.get(2)?,
                size: size_column(row, 3)?,
            },
            manifest: digest_column(row, 4)?,
            config: digest_column(row, 5)?,
        },
        updated_at: row.get(6)?,
    })
}

/// How a user's string named an image.
enum Lookup {
    /// By one of its names.
    Name(ImageRef),
    /// By (a prefix of) its ID.
    Id,
}

impl ImageStore {
    /// Opens (creating if needed) the image store under a kiln root.
    pub fn open(root: &Path) -> Result<ImageStore, StoreError> {
        let content = ContentStore::open(root)?;
        let db = Db::open(root.join(DB_FILE))?;
        Ok(ImageStore {
            content,
            db: Arc::new(db),
        })
    }

    /// The blobs.
    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    /// The metadata database (shared with other kiln components, such as the build cache).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Stores an image given its manifest or index bytes, and points `names` at it.
    ///
    /// The config and layers (and, for an index, at least one image manifest) must already be
    /// in the content store; this is checked inside the write transaction, so a concurrent GC
    /// cannot leave a name pointing at a deleted blob. A name that pointed elsewhere moves, as
    /// `docker tag` does. With no names the image is stored but unnamed: the GC reclaims it once
    /// its blobs pass the grace period, unless a lease holds them.
    pub fn put_image(&self, names: &[ImageRef], manifest: &[u8]) -> Result<Image, StoreError> {
        let digest = Digest::of(manifest);
        let media_type = media_type_of(&digest, manifest)?;
        self.db.write(|tx| {
            // Written under the write lock, so no GC can sweep it before the name is set.
            let blob = self.content.write_blob(manifest)?;
            let target = Target {
                digest,
                media_type,
                size: blob.size,
            };
            let record = self.check_complete(target, manifest)?;
            let now = unix_now();
            for name in names {
                upsert(tx, name, &record, now)?;
            }
            let names = rows_of_id(tx, &record.config)?
                .into_iter()
                .map(|row| row.name)
                .collect();
            self.load_image(&record, names)
        })
    }

    /// Points `target` at the image `source` names (a name or an ID prefix), like `docker tag`.
    pub fn tag(&self, source: &str, target: &ImageRef) -> Result<Image, StoreError> {
        self.db.write(|tx| {
            let (_, rows) = lookup(tx, source)?;
            let record = newest(&rows).record.clone();
            upsert(tx, target, &record, unix_now())?;
            let names = rows
                .into_iter()
                .map(|row| row.name)
                .chain([target.clone()])
                .collect();
            self.load_image(&record, names)
        })
    }

    /// Removes one name. The image goes when its last name does.
    pub fn untag(&self, name: &ImageRef) -> Result<(), StoreError> {
        self.db.write(|tx| {
            if tx.execute("DELETE FROM images WHERE name = ?1", [name.to_string()])? == 0 {
                return Err(StoreError::ImageNotFound {
                    reference: name.familiar_string(),
                });
            }
            Ok(())
        })
    }

    /// Finds an image by name (`nginx`, `localhost:5000/app:1`) or by ID or ID prefix
    /// (`sha256:4f2a…`, `4f2a`), as `docker inspect` does: a name wins over an ID prefix.
    pub fn resolve(&self, name_or_id: &str) -> Result<Image, StoreError> {
        let rows = self.db.read(|tx| lookup(tx, name_or_id))?.1;
        self.load_rows(rows)
    }

    /// Every named image, most recently tagged first.
    pub fn list(&self) -> Result<Vec<Image>, StoreError> {
        let rows = self.db.read(|tx| {
            let mut statement = tx.prepare(&format!("SELECT {COLUMNS} FROM images"))?;
            let rows = statement
                .query_map([], read_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })?;
        let mut by_id: BTreeMap<Digest, Vec<NameRow>> = BTreeMap::new();
        for row in rows {
            by_id.entry(row.record.config.clone()).or_default().push(row);
        }
        let mut groups: Vec<Vec<NameRow>> = by_id.into_values().collect();
        groups.sort_by_key(|rows| std::cmp::Reverse(newest(rows).updated_at));
        groups.into_iter().map(|rows| self.load_rows(rows)).collect()
    }

    /// Removes an image or one of its names, as `docker rmi` does.
    ///
    /// By name: the name is removed (with the digest names of its repository, when it was that
    /// repository's last tag); the image goes only if no name is left. By ID: the image goes with
    /// all its names, but if those span several repositories (or several tags) that takes `force`.
    pub fn remove(&self, name_or_id: &str, force: bool) -> Result<Removal, StoreError> {
        self.db.write(|tx| {
            let (how, rows) = lookup(tx, name_or_id)?;
            let id = rows[0].record.config.clone();
            let names: Vec<ImageRef> = rows.into_iter().map(|row| row.name).collect();
            let untagged = match how {
                Lookup::Name(name) => untag_in_repository(&name, &names),
                Lookup::Id if force || is_single_reference(&names) => names.clone(),
                Lookup::Id => return Err(StoreError::ReferencedInMultipleRepositories { id }),
            };
            for name in &untagged {
                tx.execute("DELETE FROM images WHERE name = ?1", [name.to_string()])?;
            }
            let deleted = (untagged.len() == names.len()).then_some(id);
            Ok(Removal { untagged, deleted })
        })
    }

    /// Checks that the target's platform manifest, config and layers are stored.
    fn check_complete(&self, target: Target, bytes: &[u8]) -> Result<Record, StoreError> {
        let missing = |digest: &Digest| StoreError::MissingBlob {
            image: target.digest.clone(),
            digest: digest.clone(),
        };
        let (manifest_digest, manifest_bytes) = match kind_of(&target.media_type) {
            Kind::Index => {
                let index: ImageIndex = parse_json("index", &target.digest, bytes)?;
                let (digest, _) = pick_manifest(&self.content, &target.digest, &index)?;
                let bytes = self.content.read(&digest)?;
                (digest, bytes)
            }
            _ => (target.digest.clone(), bytes.to_vec()),
        };
        let manifest: ImageManifest = parse_json("manifest", &manifest_digest, &manifest_bytes)?;
        let config = descriptor_digest(&manifest_digest, manifest.config())?;
        for descriptor in std::iter::once(manifest.config()).chain(manifest.layers()) {
            let digest = descriptor_digest(&manifest_digest, descriptor)?;
            if !self.content.exists(&digest)? {
                return Err(missing(&digest));
            }
        }
        Ok(Record {
            target,
            manifest: manifest_digest,
            config,
        })
    }

    /// Builds the [`Image`] for the rows of one ID; the newest name's target stands for it.
    fn load_rows(&self, rows: Vec<NameRow>) -> Result<Image, StoreError> {
        let record = newest(&rows).record.clone();
        self.load_image(&record, rows.into_iter().map(|row| row.name).collect())
    }

    /// Builds an [`Image`], reading its manifest and config blobs.
    fn load_image(&self, record: &Record, mut names: Vec<ImageRef>) -> Result<Image, StoreError> {
        let manifest: ImageManifest = parse_json(
            "manifest",
            &record.manifest,
            &self.content.read(&record.manifest)?,
        )?;
        let config: ImageConfiguration =
            parse_json("config", &record.config, &self.content.read(&record.config)?)?;
        let size = manifest.config().size() + manifest.layers().iter().map(Descriptor::size).sum::<u64>();
        names.sort();
        names.dedup();
        Ok(Image {
            id: record.config.clone(),
            target: descriptor(&record.target),
            manifest: record.manifest.clone(),
            names,
            created: config.created().clone(),
            config,
            size,
        })
    }
}

fn descriptor(target: &Target) -> Descriptor {
    let digest = oci_spec::image::Digest::from_str(target.digest.as_str())
        .expect("a sha256 digest is a valid OCI digest");
    DescriptorBuilder::default()
        .media_type(MediaType::from(target.media_type.as_str()))
        .digest(digest)
        .size(target.size)
        .build()
        .expect("media type, digest and size are all a descriptor needs")
}

/// The most recently moved name: its target stands for the image.
fn newest(rows: &[NameRow]) -> &NameRow {
    rows.iter()
        .max_by_key(|row| row.updated_at)
        .expect("an image has at least one row")
}

fn upsert(conn: &Connection, name: &ImageRef, record: &Record, now: i64) -> Result<(), StoreError> {
    let size = i64::try_from(record.target.size)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    conn.execute(
        "INSERT INTO images (name, target_digest, target_media_type, target_size, manifest_digest,
                             config_digest, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
         ON CONFLICT (name) DO UPDATE SET
             target_digest = excluded.target_digest, target_media_type = excluded.target_media_type,
             target_size = excluded.target_size, manifest_digest = excluded.manifest_digest,
             config_digest = excluded.config_digest, updated_at = excluded.updated_at",
        params![
            name.to_string(),
            record.target.digest.as_str(),
            record.target.media_type,
            size,
            record.manifest.as_str(),
            record.config.as_str(),
            now,
        ],
    )?;
    Ok(())
}

fn rows_of_id(conn: &Connection, id: &Digest) -> Result<Vec<NameRow>, StoreError> {
    let mut statement = conn.prepare(&format!("SELECT {COLUMNS} FROM images WHERE config_digest = ?1"))?;
    let rows = statement
        .query_map([id.as_str()], read_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Finds the rows of the image `input` names: a name first, then an ID prefix (Docker's order).
fn lookup(conn: &Connection, input: &str) -> Result<(Lookup, Vec<NameRow>), StoreError> {
    if let Some(hex) = input.strip_prefix("sha256:").filter(|hex| is_id_prefix(hex)) {
        return Ok((Lookup::Id, by_id_prefix(conn, hex, input)?));
    }
    let parsed = ImageRef::parse(input);
    if let Ok(name) = &parsed {
        let found = conn
            .query_row(
                "SELECT config_digest FROM images WHERE name = ?1",
                [name.to_string()],
                |row| digest_column(row, 0),
            )
            .optional()?;
        if let Some(id) = found {
            return Ok((Lookup::Name(name.clone()), rows_of_id(conn, &id)?));
        }
    }
    if is_id_prefix(input) {
        return Ok((Lookup::Id, by_id_prefix(conn, input, input)?));
    }
    match parsed {
        Ok(name) => Err(StoreError::ImageNotFound {
            reference: name.familiar_string(),
        }),
        Err(error) => Err(error.into()),
    }
}

fn is_id_prefix(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn by_id_prefix(conn: &Connection, hex: &str, input: &str) -> Result<Vec<NameRow>, StoreError> {
    let mut statement =
        conn.prepare("SELECT DISTINCT config_digest FROM images WHERE config_digest LIKE ?1")?;
    let ids = statement
        .query_map([format!("sha256:{hex}%")], |row| digest_column(row, 0))?
        .collect::<Result<Vec<_>, _>>()?;
    match ids.as_slice() {
        [] => Err(StoreError::ImageNotFound {
            reference: input.to_owned(),
        }),
        [id] => rows_of_id(conn, id),
        _ => Err(StoreError::AmbiguousId {
            prefix: input.to_owned(),
        }),
    }
}

/// The names `docker rmi <name>` removes: the name, and if it was its repository's last tag, the
/// repository's digest names too (they would otherwise keep an image the user meant to drop).
fn untag_in_repository(name: &ImageRef, names: &[ImageRef]) -> Vec<ImageRef> {
    let mut untagged = vec![name.clone()];
    let repository = name.name();
    let same_repo_tag_left = names
        .iter()
        .any(|other| other != name && other.digest().is_none() && other.name() == repository);
    if name.digest().is_none() && !same_repo_tag_left {
        untagged.extend(
            names
                .iter()
                .filter(|other| other.digest().is_some() && other.name() == repository)
                .cloned(),
        );
    }
    untagged
}

/// Docker's `isSingleReference`: at most one tag, and every digest name in that tag's repository.
fn is_single_reference(names: &[ImageRef]) -> bool {
    if names.len() <= 1 {
        return names.len() == 1;
    }
    let mut tags = names.iter().filter(|name| name.digest().is_none());
    let single = match (tags.next(), tags.next()) {
        (_, Some(_)) => return false,
        (Some(tag), None) => tag,
        (None, None) => &names[0],
    };
    let digest_repositories: HashSet<String> = names
        .iter()
        .filter(|name| name.digest().is_some())
        .map(ImageRef::name)
        .collect();
    digest_repositories.len() == 1 && digest_repositories.contains(&single.name())
}
