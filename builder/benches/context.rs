//! Walk + checksum of the w2-bigcontext workload (20,000 files, ~294 MB, a `.dockerignore`), as
//! `COPY . /app` needs it: with an empty stat cache (every file read), a warm one (none read), and
//! after touching every file (all read again, same checksum).
//!
//! `cargo bench -p kiln-builder --bench context`. The context is generated once with the workload's
//! `gen.py` into `$KILN_BENCH_CONTEXT` (default: `<tmp>/kiln-bench-w2`); set it to reuse a tree.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use kiln_builder::content::Digest;
use kiln_builder::context::{Context, IgnoreSource, Source, StatCache};

/// The generated context, or `None` (after saying why) when the workload script is not here.
fn workload() -> Option<PathBuf> {
    let dir = std::env::var_os("KILN_BENCH_CONTEXT")
        .map_or_else(|| std::env::temp_dir().join("kiln-bench-w2"), PathBuf::from);
    if dir.join("Dockerfile").is_file() {
        return Some(dir);
    }
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/bench/workloads/w2-bigcontext/gen.py");
    if !script.is_file() {
        eprintln!("skipped: {} not found", script.display());
        return None;
    }
    let status = std::process::Command::new("python3")
        .arg(&script)
        .arg(&dir)
        .status()
        .expect("python3 runs");
    assert!(status.success(), "gen.py failed");
    Some(dir)
}

fn checksum(root: &Path, cache: &Arc<StatCache>) -> Digest {
    let context = Context::builder(root)
        .ignore(IgnoreSource::ContextRoot)
        .stat_cache(Arc::clone(cache))
        .open()
        .unwrap();
    let selection = context.select(&Source::new(".")).unwrap();
    context.checksum(&selection).unwrap()
}

/// Sets every file's and directory's mtime to `time`, as `find | xargs touch` would.
fn touch_all(root: &Path, time: SystemTime) {
    for entry in std::fs::read_dir(root).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            touch_all(&entry.path(), time);
        }
        if !kind.is_symlink() {
            std::fs::File::open(entry.path())
                .unwrap()
                .set_modified(time)
                .unwrap();
        }
    }
}

fn bench(c: &mut Criterion) {
    let Some(root) = workload() else { return };
    let kiln = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("context-w2");
    group.sample_size(10).measurement_time(Duration::from_secs(20));

    group.bench_function("walk", |b| {
        b.iter(|| {
            Context::builder(&root)
                .ignore(IgnoreSource::ContextRoot)
                .open()
                .unwrap()
        });
    });

    let fresh_cache = || {
        let _ = std::fs::remove_dir_all(kiln.path().join(StatCache::DIR_NAME));
        Arc::new(StatCache::open(kiln.path()).unwrap())
    };
    group.bench_function("cold", |b| {
        b.iter_batched(
            fresh_cache,
            |cache| checksum(&root, &cache),
            BatchSize::PerIteration,
        );
    });

    let cache = fresh_cache();
    let expected = checksum(&root, &cache);
    // Let every file's ctime age past the racy window, then fill the cache for good.
    std::thread::sleep(Duration::from_millis(100));
    checksum(&root, &cache);
    group.bench_function("warm", |b| {
        b.iter(|| assert_eq!(checksum(&root, &cache), expected));
    });

    let mut tick = 0;
    group.bench_function("touched", |b| {
        b.iter_batched(
            || {
                tick += 1;
                touch_all(
                    &root,
                    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + tick),
                );
            },
            |()| assert_eq!(checksum(&root, &cache), expected),
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
