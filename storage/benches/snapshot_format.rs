//! Snapshot file format throughput against zstd alone, on one payload of realistic KV
//! data (256 MiB; 16 MiB with `RAFTKV_BENCH_QUICK=1` or under `-- --test`).
//!
//! * `snapshot_write`: our writer (frames, crcs, temp file, fsync, rename, directory
//!   fsync) with 1 and 2 threads, also without the syncs, against zstd's streaming
//!   encoder on the same payload at the same level with the same number of threads
//!   (zstd's own multithreaded mode for 2).
//! * `snapshot_read`: our reader (mmap, frame crc, decompression, whole-file crc) with 1
//!   and 2 threads against zstd's streaming decoder on a single-frame compression of the
//!   same payload.
//! * `zstd_bulk`: one-shot zstd over the whole payload in memory (no streaming, no IO),
//!   the fastest single-threaded baseline.
//!
//! The figures measured on the development machine are in `storage/FORMAT.md`.

use std::hint::black_box;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use raftkv_storage::snapshot::{SnapshotFileReader, SnapshotStore};
use raftkv_storage::{Backend, Durability, SnapshotMeta, StorageConfig};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The config's default level, which is what a node uses.
const LEVEL: i32 = 1;
/// Bytes handed to each `write` / asked of each `read`.
const IO_CHUNK: usize = 256 << 10;

const WORDS: [&str; 48] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "active", "pending", "closed",
    "admin", "guest", "member", "eu-west", "us-east", "ap-south", "true", "false", "null", "order",
    "invoice", "cart", "session", "token", "email", "phone", "street", "city", "zip",
];

/// A KV snapshot as the service writes one: records of `u32 len, key, u32 len, value`,
/// keys `user:{n}` with random `n`, 100-byte values of words and numbers from a seeded
/// generator. Compresses about as well as real user records, unlike zeros or noise.
fn kv_payload(len: usize) -> Vec<u8> {
    let mut rng = SmallRng::seed_from_u64(0x5eed_cafe);
    let mut out = Vec::with_capacity(len + 256);
    let mut value = Vec::with_capacity(128);
    while out.len() < len {
        let key = format!("user:{}", rng.gen_range(0..50_000_000u64));
        value.clear();
        while value.len() < 100 {
            value.extend_from_slice(WORDS[rng.gen_range(0..WORDS.len())].as_bytes());
            value.push(if rng.gen_bool(0.3) { b',' } else { b' ' });
            if rng.gen_bool(0.25) {
                value.extend_from_slice(rng.gen_range(0..1_000_000u32).to_string().as_bytes());
                value.push(b' ');
            }
        }
        value.truncate(100);
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(&value);
    }
    out.truncate(len);
    out
}

fn store(dir: &Path, durability: Durability) -> SnapshotStore {
    let config = StorageConfig {
        zstd_level: LEVEL,
        durability,
        ..StorageConfig::new(Backend::File, dir)
    };
    let (store, _) = SnapshotStore::open(dir, &config, None).expect("open snapshot store");
    store
}

fn write_snapshot(store: &SnapshotStore, index: u64, data: &[u8]) -> u64 {
    let mut w = store.begin(SnapshotMeta { index, term: 1 }).expect("begin");
    for chunk in data.chunks(IO_CHUNK) {
        w.write_all(chunk).expect("write");
    }
    w.finish().expect("finish").stored_bytes
}

fn zstd_compress(data: &[u8], threads: u32) -> u64 {
    let mut counter = CountingSink(0);
    let mut enc = zstd::stream::Encoder::new(&mut counter, LEVEL).expect("encoder");
    if threads > 1 {
        enc.multithread(threads).expect("zstd multithreading");
    }
    for chunk in data.chunks(IO_CHUNK) {
        enc.write_all(chunk).expect("compress");
    }
    enc.finish().expect("finish");
    counter.0
}

/// Counts what is written to it.
struct CountingSink(u64);

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn drain(mut r: impl Read, buf: &mut [u8]) -> u64 {
    let mut total = 0u64;
    loop {
        let n = r.read(buf).expect("read");
        if n == 0 {
            return total;
        }
        black_box(&buf[..n]);
        total += n as u64;
    }
}

fn group<'a>(
    c: &'a mut Criterion,
    name: &str,
    len: usize,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Bytes(len as u64));
    g
}

fn bench_write(c: &mut Criterion, data: &[u8], tmp: &Path) {
    let synced = store(&tmp.join("write-synced"), Durability::Immediate);
    let unsynced = store(&tmp.join("write-unsynced"), Durability::None);
    let mut index = 0u64;
    let ours = write_snapshot(
        &synced,
        {
            index += 1;
            index
        },
        data,
    );
    let alone = zstd_compress(data, 1);
    eprintln!(
        "payload {} bytes: snapshot file {} bytes (ratio {:.2}), zstd alone {} bytes (ratio {:.2})",
        data.len(),
        ours,
        data.len() as f64 / ours as f64,
        alone,
        data.len() as f64 / alone as f64
    );
    let mut g = group(c, "snapshot_write", data.len());
    for threads in [1usize, 2] {
        synced.set_threads(threads);
        unsynced.set_threads(threads);
        g.bench_function(
            BenchmarkId::new("format_fsync", format!("{threads}t")),
            |b| {
                b.iter(|| {
                    index += 1;
                    write_snapshot(&synced, index, data)
                });
            },
        );
        g.bench_function(
            BenchmarkId::new("format_no_fsync", format!("{threads}t")),
            |b| {
                b.iter(|| {
                    index += 1;
                    write_snapshot(&unsynced, index, data)
                });
            },
        );
        g.bench_function(BenchmarkId::new("zstd_alone", format!("{threads}t")), |b| {
            b.iter(|| zstd_compress(data, threads as u32));
        });
    }
    // The fastest single-threaded zstd: one call over the whole payload, into a buffer
    // allocated once.
    let mut cctx = zstd::bulk::Compressor::new(LEVEL).expect("compressor");
    let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(data.len()));
    g.bench_function(BenchmarkId::new("zstd_bulk", "1t"), |b| {
        b.iter(|| {
            out.clear();
            cctx.compress_to_buffer(data, &mut out).expect("compress")
        });
    });
    g.finish();
}

fn bench_read(c: &mut Criterion, data: &[u8], tmp: &Path) {
    let store = store(&tmp.join("read"), Durability::Immediate);
    write_snapshot(&store, 1, data);
    let path = store.current().expect("current").path;
    let compressed = zstd::stream::encode_all(data, LEVEL).expect("compress");
    let mut buf = vec![0u8; IO_CHUNK];
    // Check once that both paths return the payload.
    let mut back = Vec::with_capacity(data.len());
    SnapshotFileReader::open(&path)
        .expect("open")
        .read_to_end(&mut back)
        .expect("read");
    assert!(back == data, "the snapshot reads back differently");
    drop(back);

    let mut g = group(c, "snapshot_read", data.len());
    for threads in [1usize, 2] {
        g.bench_function(BenchmarkId::new("format", format!("{threads}t")), |b| {
            b.iter(|| {
                let r = SnapshotFileReader::open_with_threads(&path, threads).expect("open");
                assert_eq!(drain(r, &mut buf), data.len() as u64);
            });
        });
    }
    g.bench_function(BenchmarkId::new("zstd_alone", "1t"), |b| {
        b.iter(|| {
            let r = zstd::stream::Decoder::new(&compressed[..]).expect("decoder");
            assert_eq!(drain(r, &mut buf), data.len() as u64);
        });
    });
    // The fastest zstd decompression: one call into a buffer allocated once.
    let mut dctx = zstd::bulk::Decompressor::new().expect("decompressor");
    let mut out = vec![0u8; data.len()];
    g.bench_function(BenchmarkId::new("zstd_bulk", "1t"), |b| {
        b.iter(|| {
            let n = dctx
                .decompress_to_buffer(&compressed, &mut out[..])
                .expect("decompress");
            assert_eq!(n, data.len());
        });
    });
    g.finish();
}

fn main() {
    let quick = std::env::var("RAFTKV_BENCH_QUICK").is_ok_and(|v| v == "1")
        || std::env::args().any(|a| a == "--test");
    let len = if quick { 16 << 20 } else { 256 << 20 };
    let data = kv_payload(len);
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let mut c = Criterion::default().configure_from_args();
    bench_write(&mut c, &data, tmp.path());
    bench_read(&mut c, &data, tmp.path());
    c.final_summary();
}
