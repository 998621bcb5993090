//! Layer throughput and memory on a generated tree: 20,000 files, about 300 MB (mostly small files,
//! ten of 20 MB), content that compresses like real binaries and text (neither all zeros nor noise).
//!
//! `cargo bench -p kiln-builder --bench layer` runs every phase in this process and prints MB/s.
//! `bench/layer.sh` runs each phase as its own process under `/usr/bin/time -v` to report peak RSS;
//! it calls this binary with a phase name:
//!
//! ```text
//! layer generate <dir>                       write the tree
//! layer diff <dir> <gzip|zstd|none> <blob>   diff the whole tree (a base layer) into <blob>
//! layer apply <blob> <dir>                   apply <blob> into the empty directory <dir>
//! layer codecs                               single-thread speed of each codec and level
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Instant;

use kiln_builder::layer::{self, ApplyOptions, Changes, Compression, DiffOptions};

const FILES: usize = 20_000;
const BIG_FILES: usize = 10;
const BIG_SIZE: usize = 20 << 20;
const DIRS: usize = 200;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["generate", dir] => {
            let bytes = generate(Path::new(dir));
            println!("generated {FILES} files, {} MB", bytes / 1_000_000);
        }
        ["diff", dir, compression, blob] => diff(Path::new(dir), parse(compression), Path::new(blob)),
        ["apply", blob, dir] => apply(Path::new(blob), Path::new(dir)),
        [] => all(),
        ["codecs"] => codecs(),
        _ => {
            eprintln!(
                "usage: layer [generate <dir> | diff <dir> <gzip|zstd|none> <blob> | apply <blob> <dir>]"
            );
            std::process::exit(2);
        }
    }
}

/// Every phase in one process, in a temporary directory.
fn all() {
    let base = std::env::var_os("KILN_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let work = base.join(format!("kiln-layer-bench-{}", std::process::id()));
    fs::create_dir_all(&work).unwrap();
    let tree = work.join("tree");
    fs::create_dir(&tree).unwrap();
    let t = Instant::now();
    let bytes = generate(&tree);
    println!(
        "generated {FILES} files, {} MB in {:.1?}",
        bytes / 1_000_000,
        t.elapsed()
    );
    for (name, compression) in [
        ("none", Compression::Uncompressed),
        ("gzip", Compression::GZIP),
        ("zstd", Compression::ZSTD),
    ] {
        diff(&tree, compression, &work.join(format!("layer.{name}")));
    }
    for name in ["gzip", "zstd"] {
        let target = work.join(format!("applied-{name}"));
        fs::create_dir(&target).unwrap();
        apply(&work.join(format!("layer.{name}")), &target);
    }
    fs::remove_dir_all(&work).unwrap();
}

/// `gzip`, `zstd` (kiln's default levels), `gzip:<level>`, `zstd:<level>` or `none`.
fn parse(compression: &str) -> Compression {
    let (name, level) = compression
        .split_once(':')
        .map_or((compression, None), |(n, l)| (n, Some(l)));
    match (name, level) {
        ("gzip", None) => Compression::GZIP,
        ("zstd", None) => Compression::ZSTD,
        ("gzip", Some(level)) => Compression::Gzip {
            level: level.parse().expect("a gzip level"),
        },
        ("zstd", Some(level)) => Compression::Zstd {
            level: level.parse().expect("a zstd level"),
        },
        ("none", None) => Compression::Uncompressed,
        _ => panic!("unknown compression {compression}"),
    }
}

fn diff(tree: &Path, compression: Compression, blob: &Path) {
    let out = BufWriter::with_capacity(1 << 20, File::create(blob).unwrap());
    let t = Instant::now();
    let options = DiffOptions::new().compression(compression);
    let (descriptor, out) = layer::diff(Changes::TreeCompare { parent: None, tree }, out, &options).unwrap();
    out.into_inner().unwrap();
    // The blob is in the page cache; flushing it to disk is the content store's cost, not the layer's.
    let secs = t.elapsed().as_secs_f64();
    println!(
        "diff+{:<12} {:>7.1} MB/s of input  ({} MB -> {} MB, {secs:.2} s, peak RSS {} MiB)",
        descriptor.media_type.rsplit('.').next().unwrap(),
        mb(descriptor.uncompressed_size) / secs,
        descriptor.uncompressed_size / 1_000_000,
        descriptor.size / 1_000_000,
        peak_rss_mib()
    );
}

fn apply(blob: &Path, target: &Path) {
    let t = Instant::now();
    let applied = layer::apply(File::open(blob).unwrap(), target, &ApplyOptions::new()).unwrap();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "apply {:<16} {:>7.1} MB/s of tar    ({} MB, {} entries, {secs:.2} s, peak RSS {} MiB)",
        blob.file_name().unwrap().to_string_lossy(),
        mb(applied.uncompressed_size) / secs,
        applied.uncompressed_size / 1_000_000,
        applied.entries,
        peak_rss_mib()
    );
}

#[allow(clippy::cast_precision_loss)]
fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// `VmHWM`: this process's peak resident set so far.
fn peak_rss_mib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// Writes the tree; returns its byte count. Deterministic: the same tree on every machine.
fn generate(root: &Path) -> u64 {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut total = 0u64;
    for d in 0..DIRS {
        fs::create_dir_all(root.join(format!("pkg{:03}/lib", d % 40)).join(format!("m{d}"))).unwrap();
    }
    for i in 0..FILES {
        let dir = root.join(format!("pkg{:03}/lib/m{}", (i % DIRS) % 40, i % DIRS));
        let size = if i < BIG_FILES {
            BIG_SIZE
        } else {
            // Mostly tiny, some medium: about 5 KB on average.
            match rng.next() % 100 {
                0..=59 => 64 + (rng.next() % 1_000) as usize,
                60..=89 => 1_000 + (rng.next() % 8_000) as usize,
                _ => 8_000 + (rng.next() % 28_000) as usize,
            }
        };
        fs::write(dir.join(format!("file{i}.so")), content(&mut rng, size)).unwrap();
        total += size as u64;
    }
    total
}

/// Runs of tokens (compress well) alternating with runs of noise (do not compress), about 2:1 overall.
fn content(rng: &mut Rng, size: usize) -> Vec<u8> {
    const WORDS: [&[u8]; 12] = [
        b"libc.so.6 ",
        b"GLIBC_2.34 ",
        b"__cxa_finalize ",
        b"malloc ",
        b"\x00\x00\x00\x00",
        b"std::vector<int> ",
        b"\x48\x89\xe5",
        b"\xff\xff\xff\xff",
        b".text ",
        b"_ZNSt6vector ",
        b"free ",
        b"\x0f\x1f\x44\x00\x00",
    ];
    let mut out = Vec::with_capacity(size);
    while out.len() < size {
        let run = 64 + (rng.next() % 512) as usize;
        let end = out.len() + run;
        let noise = rng.next() % 3 == 0;
        while out.len() < end {
            if noise {
                out.extend_from_slice(&rng.next().to_le_bytes());
            } else {
                out.extend_from_slice(WORDS[(rng.next() % 12) as usize]);
            }
        }
    }
    out.truncate(size);
    out
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Single-thread speed of each codec and hash on bench content, per level: what the defaults rest on.
fn codecs() {
    use sha2::Digest as _;
    let mut rng = Rng(1);
    let data = content(&mut rng, 64 << 20);
    let report = |what: &str, t: Instant, out_len: usize| {
        println!(
            "{what:<10} {:>7.0} MB/s  ratio {:.2}",
            mb(data.len() as u64) / t.elapsed().as_secs_f64(),
            mb(data.len() as u64) / mb(out_len as u64)
        );
    };
    let t = Instant::now();
    let hash = sha2::Sha256::digest(&data);
    report("sha256", t, data.len() + usize::from(hash[0] == 0));
    let t = Instant::now();
    let mut crc = flate2::Crc::new();
    crc.update(&data);
    report("crc32", t, data.len() + usize::from(crc.sum() == 0));
    for level in [1, 2, 3, 4, 6, 9] {
        let t = Instant::now();
        let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(level));
        std::io::Write::write_all(&mut encoder, &data).unwrap();
        report(&format!("deflate {level}"), t, encoder.finish().unwrap().len());
    }
    for level in [1, 2, 3, 6] {
        let t = Instant::now();
        report(
            &format!("zstd {level}"),
            t,
            zstd::bulk::compress(&data, level).unwrap().len(),
        );
    }
}
