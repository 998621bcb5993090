//! The metadata database file: location, mode and schema versioning.

use kiln_builder::store::{ImageStore, StoreError, default_root};
use rusqlite::Connection;

#[test]
fn database_is_versioned_and_in_wal_mode() {
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let path = root.path().join("metadata-v1.db");
    assert_eq!(store.db().path(), path);
    let conn = Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!((version, mode.as_str()), (4, "wal"));
    drop(store);
    // Reopening an up-to-date database migrates nothing and keeps the data.
    ImageStore::open(root.path()).unwrap();
}

#[test]
fn a_newer_schema_is_refused() {
    let root = tempfile::tempdir().unwrap();
    drop(ImageStore::open(root.path()).unwrap());
    let path = root.path().join("metadata-v1.db");
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let error = ImageStore::open(root.path()).unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::SchemaTooNew {
                found: 99,
                supported: 4,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "metadata database {} has schema version 99, newer than the 4 this kiln knows",
            path.display()
        )
    );
}

#[test]
fn default_root_for_root_is_var_lib_kiln() {
    if rustix::process::geteuid().is_root() {
        assert_eq!(default_root(), std::path::Path::new("/var/lib/kiln"));
    } else {
        assert!(default_root().ends_with("kiln"), "{}", default_root().display());
    }
}
