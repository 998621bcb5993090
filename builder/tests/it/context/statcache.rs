//! The persistent stat cache: hits skip reading, changes are caught, processes share it.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use kiln_builder::content::Digest;
use kiln_builder::context::{Context, HashStats, IgnoreSource, Source, StatCache};

use super::Tree;

const CHILD_ENV: &str = "KILN_IT_CONTEXT_CHILD";

/// Files this old are past the racy window (a change in the same timestamp tick as a read), so
/// their digests may be cached.
fn settle() {
    std::thread::sleep(Duration::from_millis(60));
}

fn tree() -> Tree {
    let tree = Tree::new();
    for i in 0..20 {
        tree.file(&format!("src/m{}/f{i}.rs", i % 3), &format!("// file {i}\n"));
    }
    tree.file("README.md", "readme\n");
    settle();
    tree
}

/// The checksum of the whole context in a fresh context using `cache`, and the work it took.
fn run(root: &Path, cache: &Arc<StatCache>) -> (Digest, HashStats) {
    let context = Context::builder(root)
        .ignore(IgnoreSource::ContextRoot)
        .stat_cache(Arc::clone(cache))
        .open()
        .unwrap();
    let selection = context.select(&Source::new(".")).unwrap();
    (context.checksum(&selection).unwrap(), context.stats())
}

fn cache_in(dir: &tempfile::TempDir) -> Arc<StatCache> {
    Arc::new(StatCache::open(dir.path()).unwrap())
}

#[test]
fn a_warm_cache_reads_no_file() {
    let (tree, kiln) = (tree(), tempfile::tempdir().unwrap());
    let cache = cache_in(&kiln);
    let (cold, stats) = run(tree.path(), &cache);
    assert_eq!((stats.files_read, stats.cache_hits), (21, 0));
    let (warm, stats) = run(tree.path(), &cache);
    assert_eq!(warm, cold);
    assert_eq!(stats.files_read, 0);
    // 21 files, 4 directories, the root.
    assert_eq!(stats.cache_hits, 26);
    // The same digest as without any cache.
    assert_eq!(tree.checksum("."), cold);
    assert_eq!(kiln.path().join("context-cache-v2"), cache.path());
}

#[test]
fn a_touched_file_is_read_again_and_keeps_its_checksum() {
    let (tree, kiln) = (tree(), tempfile::tempdir().unwrap());
    let cache = cache_in(&kiln);
    let (cold, _) = run(tree.path(), &cache);
    let later = std::time::SystemTime::now() + Duration::from_secs(60);
    let file = std::fs::File::options()
        .write(true)
        .open(tree.join("README.md"))
        .unwrap();
    file.set_modified(later).unwrap();
    settle();
    let (touched, stats) = run(tree.path(), &cache);
    assert_eq!(touched, cold, "a touch must not invalidate the build cache");
    assert_eq!(stats.files_read, 1);
    let (_, stats) = run(tree.path(), &cache);
    assert_eq!(stats.files_read, 0, "the new version is cached");
}

#[test]
fn a_rewrite_with_the_same_size_and_mtime_is_caught_by_ctime() {
    let (tree, kiln) = (tree(), tempfile::tempdir().unwrap());
    let cache = cache_in(&kiln);
    let (cold, _) = run(tree.path(), &cache);
    let path = tree.join("README.md");
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::fs::write(&path, "README\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);
    let (changed, stats) = run(tree.path(), &cache);
    assert_ne!(changed, cold);
    assert_eq!(stats.files_read, 1);
}

#[test]
fn rows_of_deleted_files_are_dropped() {
    let (tree, kiln) = (tree(), tempfile::tempdir().unwrap());
    let cache = cache_in(&kiln);
    run(tree.path(), &cache);
    let root = tree.path().canonicalize().unwrap();
    assert_eq!(cache.len_for(&root).unwrap(), 26);
    std::fs::remove_dir_all(tree.join("src/m0")).unwrap();
    // The deletion changed `src`, whose new version is cached once it is old enough; that write
    // drops the rows of src/m0 and its seven files (f0, f3 ... f18).
    settle();
    let (_, stats) = run(tree.path(), &cache);
    assert_eq!(stats.cache_hits, 26 - 8 - 1);
    assert_eq!(cache.len_for(&root).unwrap(), 26 - 8);
}

#[test]
fn a_damaged_cache_is_read_as_empty_and_rewritten() {
    let (tree, kiln) = (tree(), tempfile::tempdir().unwrap());
    let cache = cache_in(&kiln);
    let (cold, _) = run(tree.path(), &cache);
    for file in std::fs::read_dir(cache.path()).unwrap() {
        let file = file.unwrap().path();
        let bytes = std::fs::read(&file).unwrap();
        std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    }
    let (again, stats) = run(tree.path(), &cache);
    assert_eq!(again, cold);
    assert_eq!((stats.files_read, stats.cache_hits), (21, 0));
    let (_, stats) = run(tree.path(), &cache);
    assert_eq!(stats.files_read, 0, "rewritten whole");
}

#[test]
fn two_processes_share_one_cache() {
    let (tree, kiln) = (tree(), tempfile::tempdir().unwrap());
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "context::statcache::second_process",
            "--include-ignored",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(
            CHILD_ENV,
            format!("{}\n{}", tree.path().display(), kiln.path().display()),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let cache = cache_in(&kiln);
    let (mine, _) = run(tree.path(), &cache);
    let child = child.wait_with_output().unwrap();
    assert!(
        child.status.success(),
        "{}",
        String::from_utf8_lossy(&child.stderr)
    );
    let stdout = String::from_utf8_lossy(&child.stdout);
    assert!(stdout.contains(&format!("checksum {mine}")), "{stdout}");
    // Whichever wrote last, every digest is now cached.
    let (again, stats) = run(tree.path(), &cache);
    assert_eq!((again, stats.files_read), (mine, 0));
}

/// The other process of `two_processes_share_one_cache` (does nothing when run on its own).
#[test]
#[ignore = "run by two_processes_share_one_cache"]
fn second_process() {
    let Ok(args) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (root, kiln) = args.split_once('\n').unwrap();
    let cache = Arc::new(StatCache::open(Path::new(kiln)).unwrap());
    let (digest, _) = run(Path::new(root), &cache);
    println!("checksum {digest}");
}
