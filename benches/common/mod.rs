//! Helpers shared by the root benches: run modes and state sizes, realistic keys and
//! values, building a state or a whole data directory without going through Raft,
//! dropping a directory from the page cache, the stall probe, the "physical limit"
//! baselines, and the results file the report reads.
//!
//! Each bench includes this module with `#[allow(dead_code)] mod common;`: not every
//! bench uses every helper.

pub mod limit;
pub mod results;
pub mod stall;
pub mod svg;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use raftkv::Db;
use raftkv::kvservice::command::{Command, Op};
use raftkv::kvservice::state_machine::KvStateMachine;
use raftkv::storage::{
    Backend, Entry, HardState, Persister, SnapshotInfo, SnapshotMeta, StorageConfig, WriteBatch,
    codec,
};

/// `RAFTKV_BENCH_QUICK` is set: short measurements, no 4M-key state.
pub fn quick() -> bool {
    std::env::var_os("RAFTKV_BENCH_QUICK").is_some()
}

/// Run by `cargo test --benches` (no `--bench` argument): criterion runs each bench
/// once, so keep states tiny and record nothing.
pub fn test_mode() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

/// The backends built into this binary.
pub fn backends() -> Vec<Backend> {
    vec![
        Backend::File,
        #[cfg(feature = "rocksdb")]
        Backend::Rocksdb,
        Backend::Memory,
    ]
}

/// Criterion timing settings for one state: 10 samples (criterion's minimum), one
/// iteration each for the large states.
pub fn configure(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    g.sample_size(10)
        .sampling_mode(criterion::SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(if quick() { 1 } else { 5 }));
}

/// A state to benchmark: `keys` keys of `value_len`-byte values, reached after
/// `commands` puts (more commands than keys overwrite).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateSize {
    pub keys: u64,
    pub value_len: usize,
    pub commands: u64,
}

impl StateSize {
    pub const fn new(keys: u64, value_len: usize) -> Self {
        Self {
            keys,
            value_len,
            commands: keys,
        }
    }

    /// `1M_x100B`, or `100k_x100B_after_1M` when commands overwrite.
    pub fn label(&self) -> String {
        let mut s = format!("{}_x{}B", human(self.keys), self.value_len);
        if self.commands != self.keys {
            s.push_str(&format!("_after_{}", human(self.commands)));
        }
        s
    }

    /// Fields for the results file.
    pub fn fields(&self) -> [(&'static str, String); 3] {
        [
            ("keys", self.keys.to_string()),
            ("vlen", self.value_len.to_string()),
            ("commands", self.commands.to_string()),
        ]
    }
}

/// 10k, 100k, 1M, 4M.
pub fn human(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// The states every snapshot and restart bench covers: 10k, 100k and 1M keys × 100 B,
/// 4M where memory allows (not in quick mode), and 100k keys × 1 KiB (about the same
/// payload as 1M × 100 B, with a tenth of the keys). `RAFTKV_BENCH_KEYS=10000,100000`
/// replaces the 100-byte sizes (for development).
pub fn state_sizes() -> Vec<StateSize> {
    if test_mode() {
        return vec![StateSize::new(2_000, 100), StateSize::new(300, 1024)];
    }
    if let Ok(list) = std::env::var("RAFTKV_BENCH_KEYS") {
        return list
            .split(',')
            .filter_map(|k| k.trim().parse().ok())
            .map(|k| StateSize::new(k, 100))
            .collect();
    }
    let mut sizes = vec![
        StateSize::new(10_000, 100),
        StateSize::new(100_000, 100),
        StateSize::new(1_000_000, 100),
    ];
    // 4M keys hold about 1.2 GB in memory, twice over while a bench compares two copies.
    if !quick() && mem_available_bytes() > 8 << 30 {
        sizes.push(StateSize::new(4_000_000, 100));
    }
    sizes.push(StateSize::new(100_000, 1024));
    sizes
}

fn mem_available_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The key of record `k`: `user:0000000042`.
pub fn key(k: u64) -> Bytes {
    Bytes::from(format!("user:{k:010}"))
}

/// `len` bytes that compress like real application values (about 1.3x with zstd -1):
/// a few fixed-format fields and a random alphanumeric tail from a seeded LCG.
/// `benches/peer_restart.py` generates the same bytes.
pub fn realistic_value(k: u64, len: usize) -> Bytes {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut x = k
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    let mut v = format!("{{\"id\":{k},\"name\":\"").into_bytes();
    while v.len() < len {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        v.push(ALPHABET[((x >> 33) % ALPHABET.len() as u64) as usize]);
    }
    v.truncate(len);
    Bytes::from(v)
}

/// Sessions the generated commands come from (so the snapshot carries a dedup table,
/// as a real one does).
const CLIENTS: u64 = 64;

/// The `i`-th generated put: key `i % keys`, from client `first_client + i % 64`.
fn put_command(i: u64, keys: u64, value_len: usize, first_client: u64) -> Command {
    Command {
        client_id: first_client + i % CLIENTS,
        seq: i / CLIENTS + 1,
        ts_ms: 0,
        op: Op::Put {
            key: key(i % keys),
            value: realistic_value(i, value_len),
        },
    }
}

/// A state machine holding `size`, built by applying its puts directly (no Raft, no
/// log): the state a node has after applying that many commands.
pub fn build_state(size: StateSize) -> KvStateMachine {
    let mut sm = KvStateMachine::new();
    for i in 0..size.commands {
        sm.apply(i + 1, 1, &put_command(i, size.keys, size.value_len, 1));
    }
    sm
}

/// Writes the data directory of a one-replica [`Db`] at `base` (`<base>/node-1`) as a
/// node would have left it: a snapshot of `sm` at its applied index, then `tail`
/// committed log entries after it (100-byte puts over the same keys), written 1024
/// per synced batch. Much faster than putting the state through Raft one command at a
/// time, and the bytes are the same.
pub fn write_data_dir(
    backend: Backend,
    base: &Path,
    sm: &KvStateMachine,
    keys: u64,
    tail: u64,
) -> SnapshotInfo {
    let persister = StorageConfig::new(backend, base.join("node-1"))
        .open()
        .expect("open persister");
    let info = take_snapshot(persister.as_ref(), sm);
    let first = sm.applied_index() + 1;
    let mut next = 0u64;
    loop {
        let n = (tail - next).min(1024);
        let entries: Vec<Entry> = (next..next + n)
            .map(|i| Entry {
                index: first + i,
                term: 1,
                data: codec::encode(&put_command(i, keys, 100, 1_000)).expect("encode"),
            })
            .collect();
        next += n;
        let hard_state = HardState {
            term: 1,
            voted_for: Some(1),
            commit: first + next - 1,
        };
        persister
            .write(&WriteBatch::new().hard_state(hard_state).append(entries))
            .expect("write log");
        if next == tail {
            break;
        }
    }
    info
}

/// One snapshot of `sm` into `persister`, as the RSM's snapshotter takes it: an O(1)
/// frozen view streamed into the persister's writer, then commit.
pub fn take_snapshot(persister: &dyn Persister, sm: &KvStateMachine) -> SnapshotInfo {
    let view = sm.snapshot_view();
    let meta = SnapshotMeta {
        index: view.applied_index(),
        term: view.applied_term(),
    };
    let mut w = persister.begin_snapshot(meta).expect("begin snapshot");
    view.write_snapshot(&mut w).expect("write snapshot");
    w.commit().expect("commit snapshot")
}

/// Drops every file under `dir` from the page cache (after syncing it, since dirty
/// pages cannot be dropped), as raft-engine's recovery benchmark does, so that the next
/// open reads from the device. Returns the bytes dropped.
pub fn drop_page_cache(dir: &Path) -> u64 {
    use std::os::fd::AsRawFd;
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            total += drop_page_cache(&path);
        } else if kind.is_file() {
            let Ok(f) = std::fs::File::open(&path) else {
                continue;
            };
            let _ = f.sync_data();
            // SAFETY: `f` is an open file descriptor for the duration of the call;
            // posix_fadvise only reads its arguments.
            let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            if rc == 0 {
                total += f.metadata().map_or(0, |m| m.len());
            }
        }
    }
    total
}

/// Runs `op(db, writer, i)` for `i in 0..per_writer` on each of `writers` threads and
/// waits for all of them.
pub fn run_writers(db: &Db, writers: u64, per_writer: u64, op: impl Fn(&Db, u64, u64) + Sync) {
    std::thread::scope(|s| {
        for w in 0..writers {
            let op = &op;
            s.spawn(move || {
                for i in 0..per_writer {
                    op(db, w, i);
                }
            });
        }
    });
}

/// `RAFTKV_BENCH_FILTER` is unset or a substring of `id` (a full bench id,
/// `group/function`). Unlike criterion's own filter, it also skips building the state
/// and the data directories that only filtered-out benches need. Pass the same string to
/// criterion.
pub fn selected(id: &str) -> bool {
    std::env::var("RAFTKV_BENCH_FILTER").map_or(true, |f| id.contains(&f))
}

/// Runs the criterion bench `group/id`, each iteration timed by `once` (which returns
/// the duration of what it measured, so that setup and cleanup stay out of it).
/// Returns the median iteration, or `None` if the bench was filtered out.
pub fn timed_bench(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    group: &str,
    id: &str,
    mut once: impl FnMut() -> Duration,
) -> Option<Duration> {
    if !selected(&format!("{group}/{id}")) {
        return None;
    }
    let mut samples = Vec::new();
    g.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let d = once();
                samples.push(d);
                total += d;
            }
            total
        })
    });
    (!samples.is_empty()).then(|| median(&mut samples))
}

/// The median of `samples` (zero when empty).
pub fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}
