//! The content store on real files: ingest, verification, concurrency, cleanup.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, SystemTime};

use kiln_builder::content::{BlobSource, ContentError, ContentStore, Digest, DigestError, Digester};
use tempfile::TempDir;

fn store() -> (TempDir, ContentStore) {
    let root = tempfile::tempdir().unwrap();
    let store = ContentStore::open(root.path()).unwrap();
    (root, store)
}

fn ingest_dir_entries(root: &TempDir) -> usize {
    fs::read_dir(root.path().join("ingest-v1")).unwrap().count()
}

#[test]
fn digest_parsing_follows_go_digest() {
    let hex = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    let d = Digest::parse(&format!("sha256:{hex}")).unwrap();
    assert_eq!(
        (d.algorithm(), d.hex(), d.short()),
        ("sha256", hex, "2cf24dba5fb0")
    );
    assert_eq!(d, Digest::of(b"hello"));
    assert_eq!(Digest::from_hex(hex).unwrap(), d);

    let invalid = [
        "",
        "sha256",
        "sha256:",
        ":abc",
        &format!("sha256:{}", &hex[..63]),
        &format!("sha256:{hex}0"),
        &format!("sha256:{}", hex.to_uppercase()),
        &format!("sha256:{}g", &hex[..63]),
        &format!("SHA256:{hex}"),
        &format!("sha256:{hex}\n"),
    ];
    for input in invalid {
        let error = Digest::parse(input).unwrap_err();
        assert!(
            matches!(error, DigestError::InvalidFormat { .. }),
            "{input:?}: {error:?}"
        );
        assert_eq!(error.to_string(), "invalid checksum digest format");
    }
    for input in [
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        &format!("sha512:{hex}{hex}"),
        "sha256+b64:abc=",
    ] {
        let error = Digest::parse(input).unwrap_err();
        assert!(
            matches!(error, DigestError::Unsupported { .. }),
            "{input:?}: {error:?}"
        );
        assert_eq!(error.to_string(), "unsupported digest algorithm");
    }
}

#[test]
fn digester_streams_and_serde_round_trips() {
    let mut digester = Digester::new();
    for chunk in [&b"hel"[..], b"", b"lo"] {
        digester.write_all(chunk).unwrap();
    }
    assert_eq!(digester.len(), 5);
    assert_eq!(digester.peek(), Digest::of(b"hello"));
    assert_eq!(digester.finish(), Digest::of(b"hello"));

    let d = Digest::of(b"x");
    let json = serde_json::to_string(&d).unwrap();
    assert_eq!(json, format!("\"{d}\""));
    assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
    assert!(serde_json::from_str::<Digest>("\"sha256:nothex\"").is_err());
}

#[test]
fn ingest_commits_verified_read_only_blob() {
    let (root, store) = store();
    let bytes = b"some layer bytes".repeat(10_000);
    let mut ingest = store
        .ingest(Some((Digest::of(&bytes), bytes.len() as u64)))
        .unwrap();
    for chunk in bytes.chunks(4096) {
        ingest.write_all(chunk).unwrap();
    }
    assert_eq!(ingest.written(), bytes.len() as u64);
    assert_eq!(ingest.digest(), Digest::of(&bytes));
    let info = ingest.commit().unwrap();
    assert_eq!(info.digest, Digest::of(&bytes));
    assert_eq!(info.size, bytes.len() as u64);

    let path = root.path().join("blobs/sha256").join(info.digest.hex());
    assert_eq!(fs::read(&path).unwrap(), bytes);
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o444);
    assert_eq!(ingest_dir_entries(&root), 0);
    assert!(store.exists(&info.digest).unwrap());
    assert_eq!(store.stat(&info.digest).unwrap(), info);
    assert_eq!(store.size(&info.digest).unwrap(), info.size);
    assert_eq!(store.read(&info.digest).unwrap(), bytes);
}

#[test]
fn ingest_without_expectation_names_blob_by_its_content() {
    let (_root, store) = store();
    let info = store.write_blob(b"{}").unwrap();
    assert_eq!(
        info.digest.as_str(),
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    );
}

#[test]
fn digest_mismatch_names_both_digests_and_stores_nothing() {
    let (root, store) = store();
    let expected = Digest::of(b"good");
    let mut ingest = store.ingest(Some((expected.clone(), 4))).unwrap();
    ingest.write_all(b"evil").unwrap();
    let error = ingest.commit().unwrap_err();
    let actual = Digest::of(b"evil");
    assert_eq!(
        error.to_string(),
        format!("digest mismatch: expected {expected}, got {actual}")
    );
    assert!(!store.exists(&expected).unwrap());
    assert!(!store.exists(&actual).unwrap());
    assert_eq!(ingest_dir_entries(&root), 0);
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn short_content_is_a_size_mismatch_at_commit() {
    let (root, store) = store();
    let expected = Digest::of(b"hello world");
    let mut ingest = store.ingest(Some((expected.clone(), 11))).unwrap();
    ingest.write_all(b"hello").unwrap();
    let error = ingest.commit().unwrap_err();
    assert!(
        matches!(
            error,
            ContentError::SizeMismatch {
                expected: 11,
                actual: 5,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!("size mismatch for blob {expected}: expected 11 bytes, got 5")
    );
    assert_eq!(ingest_dir_entries(&root), 0);
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn overlong_content_fails_on_the_write_that_overruns() {
    let (root, store) = store();
    let mut ingest = store.ingest(Some((Digest::of(b"abc"), 3))).unwrap();
    ingest.write_all(b"ab").unwrap();
    let error = ingest.write_all(b"cd").unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    let inner = error.into_inner().unwrap().downcast::<ContentError>().unwrap();
    assert!(
        matches!(
            *inner,
            ContentError::SizeMismatch {
                expected: 3,
                actual: 4,
                ..
            }
        ),
        "{inner:?}"
    );
    drop(ingest);
    assert_eq!(ingest_dir_entries(&root), 0);
}

#[test]
fn existing_blob_is_success_and_refreshes_its_mtime() {
    let (_root, store) = store();
    let first = store.write_blob(b"same").unwrap();
    let path = store.blob_path(&first.digest);
    let old = SystemTime::now() - Duration::from_secs(86_400);
    fs::File::open(&path).unwrap().set_modified(old).unwrap();

    let second = store.write_blob(b"same").unwrap();
    assert_eq!(first, second);
    assert_eq!(store.list().unwrap().len(), 1);
    let modified = fs::metadata(&path).unwrap().modified().unwrap();
    assert!(modified > old + Duration::from_secs(3600), "mtime not refreshed");
}

#[test]
fn reingesting_repairs_a_truncated_blob() {
    let (_root, store) = store();
    let info = store.write_blob(b"complete content").unwrap();
    corrupt(&store, &info.digest, b"complete");
    assert!(store.read(&info.digest).is_err());
    assert_eq!(store.write_blob(b"complete content").unwrap(), info);
    assert_eq!(store.read(&info.digest).unwrap(), b"complete content");
}

#[test]
fn dropped_ingest_removes_its_temp_file() {
    let (root, store) = store();
    let mut ingest = store.ingest(None).unwrap();
    ingest.write_all(&vec![7; 100_000]).unwrap();
    let temp = ingest.temp_path().to_owned();
    assert!(temp.starts_with(root.path().join("ingest-v1")));
    assert!(temp.exists());
    drop(ingest);
    assert!(!temp.exists());
    assert_eq!(ingest_dir_entries(&root), 0);
    assert!(store.list().unwrap().is_empty());
}

/// Overwrites a stored blob in place, as disk corruption or a stray writer would.
fn corrupt(store: &ContentStore, digest: &Digest, bytes: &[u8]) {
    let path = store.blob_path(digest);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&path, bytes).unwrap();
}

#[test]
fn corrupted_blob_is_detected_at_read() {
    let (_root, store) = store();
    let info = store.write_blob(b"original content").unwrap();
    corrupt(&store, &info.digest, b"0riginal content");

    let mut reader = store.open(&info.digest).unwrap();
    let mut out = Vec::new();
    let error = reader.read_to_end(&mut out).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    assert!(
        error
            .to_string()
            .starts_with(&format!("digest mismatch: expected {}", info.digest)),
        "{error}"
    );

    let error = store.read(&info.digest).unwrap_err();
    let ContentError::DigestMismatch { expected, actual } = error else {
        panic!("{error:?}")
    };
    assert_eq!(
        (expected, actual),
        (info.digest.clone(), Digest::of(b"0riginal content"))
    );

    corrupt(&store, &info.digest, b"original");
    let error = store.read(&info.digest).unwrap_err();
    assert!(matches!(error, ContentError::DigestMismatch { .. }), "{error:?}");
}

#[test]
fn missing_blob_is_not_found() {
    let (_root, store) = store();
    let digest = Digest::of(b"never stored");
    assert!(store.open(&digest).err().unwrap().is_not_found());
    assert!(store.stat(&digest).unwrap_err().is_not_found());
    assert!(store.delete(&digest).unwrap_err().is_not_found());
    assert_eq!(
        store.read(&digest).unwrap_err().to_string(),
        format!("blob {digest} not found")
    );
}

#[test]
fn two_writers_of_the_same_blob_both_succeed_with_one_copy() {
    let root = tempfile::tempdir().unwrap();
    let bytes: Arc<Vec<u8>> = Arc::new((0..4_000_000u32).map(|i| (i % 251) as u8).collect());
    let barrier = Arc::new(Barrier::new(2));
    let writers: Vec<_> = (0..2)
        .map(|_| {
            // Each thread opens its own store handle, as two processes would.
            let store = ContentStore::open(root.path()).unwrap();
            let (bytes, barrier) = (Arc::clone(&bytes), Arc::clone(&barrier));
            thread::spawn(move || {
                let mut ingest = store
                    .ingest(Some((Digest::of(&bytes), bytes.len() as u64)))
                    .unwrap();
                barrier.wait();
                for chunk in bytes.chunks(65_536) {
                    ingest.write_all(chunk).unwrap();
                }
                ingest.commit()
            })
        })
        .collect();
    let results: Vec<_> = writers.into_iter().map(|w| w.join().unwrap().unwrap()).collect();
    assert_eq!(results[0], results[1]);
    let store = ContentStore::open(root.path()).unwrap();
    let listed = store.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].info, results[0]);
    assert_eq!(store.read(&results[0].digest).unwrap(), *bytes);
    assert_eq!(fs::read_dir(root.path().join("ingest-v1")).unwrap().count(), 0);
}

#[test]
fn list_and_delete() {
    let (root, store) = store();
    let mut digests: Vec<Digest> = ["a", "b", "c"]
        .iter()
        .map(|s| store.write_blob(s.as_bytes()).unwrap().digest)
        .collect();
    digests.sort();
    // A file that is not named by a digest is not a blob: listed neither, nor touched.
    fs::write(root.path().join("blobs/sha256/README"), "not a blob").unwrap();
    let listed: Vec<Digest> = store.list().unwrap().into_iter().map(|b| b.info.digest).collect();
    assert_eq!(listed, digests);

    store.delete(&digests[1]).unwrap();
    assert!(!store.exists(&digests[1]).unwrap());
    assert_eq!(store.list().unwrap().len(), 2);
    assert!(root.path().join("blobs/sha256/README").exists());
}

#[test]
fn open_reader_survives_delete() {
    let (_root, store) = store();
    let bytes = vec![42u8; 300_000];
    let info = store.write_blob(&bytes).unwrap();
    let mut reader = store.open(&info.digest).unwrap();
    let mut head = vec![0; 1000];
    reader.read_exact(&mut head).unwrap();
    store.delete(&info.digest).unwrap();
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    assert_eq!(head.len() + rest.len(), bytes.len());
}

#[test]
fn cleanup_ingests_removes_only_stale_leftovers() {
    let (root, store) = store();
    let mut crashed = store.ingest(None).unwrap();
    crashed.write_all(b"half a blob").unwrap();
    crashed.flush().unwrap();
    let temp = crashed.temp_path().to_owned();
    // A crash never runs Drop.
    std::mem::forget(crashed);
    assert!(temp.exists());

    assert_eq!(store.cleanup_ingests(Duration::from_secs(3600)).unwrap(), 0);
    assert!(temp.exists());
    assert_eq!(store.cleanup_ingests(Duration::ZERO).unwrap(), 1);
    assert!(!temp.exists());
    assert_eq!(ingest_dir_entries(&root), 0);
}
