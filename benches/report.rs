//! Turns the results the `snapshot`, `restart` and `throughput` benches and
//! `benches/peer_restart.py` recorded into `benches/REPORT.md` (tables and targets)
//! and `benches/report.svg` (restart and snapshot time against state size, log axes,
//! one line per backend). Run by `benches/report.sh`; measures nothing itself.
//!
//! Under `cargo test --benches` it renders a small made-up result set into a temporary
//! directory instead, to check that the report still builds.

#![allow(missing_docs, reason = "a bench binary")]

#[allow(dead_code, reason = "each bench uses part of the shared helpers")]
mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use common::{human, svg};

/// One line of the results file.
#[derive(Debug, Clone, Default)]
struct Rec(BTreeMap<String, String>);

impl Rec {
    fn parse(line: &str) -> Rec {
        Rec(line
            .split('\t')
            .filter_map(|f| f.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }

    fn num(&self, k: &str) -> Option<f64> {
        self.get(k)?.parse().ok()
    }

    fn is(&self, conds: &[(&str, &str)]) -> bool {
        conds.iter().all(|(k, v)| self.get(k) == Some(v))
    }
}

struct Results(Vec<Rec>);

impl Results {
    /// The last record matching every `(field, value)`.
    fn find(&self, conds: &[(&str, &str)]) -> Option<&Rec> {
        self.0.iter().rev().find(|r| r.is(conds))
    }

    fn secs(&self, conds: &[(&str, &str)]) -> Option<f64> {
        self.find(conds)?.num("secs")
    }

    /// The states measured, as (keys, vlen, commands), ordered.
    fn states(&self, kind: &str) -> Vec<(u64, u64, u64)> {
        let mut v: Vec<_> = self
            .0
            .iter()
            .filter(|r| r.get("kind") == Some(kind))
            .filter_map(|r| {
                Some((
                    r.num("keys")? as u64,
                    r.num("vlen")? as u64,
                    r.num("commands")? as u64,
                ))
            })
            .collect();
        v.sort_unstable_by_key(|&(k, l, c)| (l, c != k, k, c));
        v.dedup();
        v
    }
}

struct State {
    keys: String,
    vlen: String,
    commands: String,
}

impl State {
    fn new((k, l, c): (u64, u64, u64)) -> State {
        State {
            keys: k.to_string(),
            vlen: l.to_string(),
            commands: c.to_string(),
        }
    }

    fn conds<'a>(&'a self, kind: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("kind", kind),
            ("keys", &self.keys),
            ("vlen", &self.vlen),
            ("commands", &self.commands),
        ]
    }

    fn label(&self) -> String {
        let k: u64 = self.keys.parse().unwrap_or(0);
        let c: u64 = self.commands.parse().unwrap_or(0);
        let mut s = format!("{} × {} B", human(k), self.vlen);
        if c != k {
            s.push_str(&format!(" after {} puts", human(c)));
        }
        s
    }
}

fn ms(s: Option<f64>) -> String {
    match s {
        None => "–".into(),
        Some(s) if s >= 10.0 => format!("{s:.1} s"),
        Some(s) if s >= 1.0 => format!("{s:.2} s"),
        Some(s) if s >= 0.01 => format!("{:.0} ms", s * 1e3),
        Some(s) if s >= 0.001 => format!("{:.1} ms", s * 1e3),
        Some(s) => format!("{:.0} µs", s * 1e6),
    }
}

fn mb(b: Option<f64>) -> String {
    b.map_or("–".into(), |b| {
        if b >= 1e8 {
            format!("{:.0} MB", b / 1e6)
        } else {
            format!("{:.1} MB", b / 1e6)
        }
    })
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? / b?)
}

fn x(r: Option<f64>) -> String {
    r.map_or("–".into(), |r| format!("{r:.2}x"))
}

const DURABLE: [&str; 2] = ["file", "rocksdb"];
const ALL: [&str; 3] = ["file", "rocksdb", "memory"];

fn render(results: &Results, out: &Path) -> std::io::Result<()> {
    let mut md = String::new();
    let machine = results.find(&[("kind", "machine")]);
    let m = |k: &str| machine.and_then(|r| r.get(k)).unwrap_or("?").to_string();
    let _ = writeln!(md, "# Restart and snapshot: measured\n");
    let _ = writeln!(
        md,
        "Machine: {} cores ({}), {} RAM, {}, {}. Run: {} (criterion, 10 samples per \
         figure, medians). Figures are noisy: other builds shared the two cores. \
         Reproduce with `benches/report.sh` (see the README, \"Restart and snapshot\").\n",
        m("cores"),
        m("cpu"),
        m("ram"),
        m("kernel"),
        m("rustc"),
        m("mode"),
    );
    let _ = writeln!(
        md,
        "![restart and snapshot time against state size](report.svg)\n\n\
         *limit*: for a snapshot, serializing the state and zstd-compressing it in the \
         same frames on the same threads, without checksums, file or fsync; for a \
         restart, reading a file of those compressed frames and decompressing them on the \
         same threads, without checksums or deserialization. Restart = `Db::open` until \
         the first linearizable `get` answers; cold = every file of the data directory \
         dropped from the page cache first. Stall = the longest gap between two applies \
         of an apply loop running beside the snapshot, median of 3 snapshots (the p99 gap \
         after the slash, the worst of the 3 in parentheses). The \
         memory backend keeps the payload uncompressed: its limit is serializing alone.\n"
    );

    // Main table.
    let _ = writeln!(md, "## Snapshot and restart against state size\n");
    let _ = writeln!(
        md,
        "| backend | state | payload | stored (ratio) | snapshot | × limit | MB/s | stall max / p99 (worst) | restart warm | × limit | restart cold | × limit |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for st in results.states("snapshot").into_iter().map(State::new) {
        let snap_limit = results.secs(&st.conds("snapshot_limit"));
        let rl = |cache: &str| {
            let mut c = st.conds("restart_limit");
            c.push(("cache", cache));
            results.secs(&c)
        };
        let limit_rec = results.find(&st.conds("snapshot_limit"));
        let serialize = limit_rec.and_then(|r| r.num("serialize_secs"));
        let _ = writeln!(
            md,
            "| *limit* | {} | {} | {} | {} (serialize alone {}) | 1x | {} | | {} | 1x | {} | 1x |",
            st.label(),
            mb(limit_rec.and_then(|r| r.num("payload"))),
            mb(limit_rec.and_then(|r| r.num("stored"))),
            ms(snap_limit),
            ms(serialize),
            mbps(limit_rec.and_then(|r| r.num("payload")), snap_limit),
            ms(rl("warm")),
            ms(rl("cold")),
        );
        for backend in ["file", "file_no_fsync", "rocksdb", "memory"] {
            let mut c = st.conds("snapshot");
            c.push(("backend", backend));
            let Some(r) = results.find(&c) else { continue };
            if backend == "file_no_fsync" {
                let _ = writeln!(
                    md,
                    "| file without fsync | {} | | {} | {} | {} | {} | | | | | |",
                    st.label(),
                    mb(r.num("stored")),
                    ms(r.num("secs")),
                    x(ratio(r.num("secs"), snap_limit)),
                    mbps(r.num("payload"), r.num("secs")),
                );
                continue;
            }
            let restart = |cache: &str| {
                let mut c = st.conds("restart");
                c.extend([("backend", backend), ("tail", "0"), ("cache", cache)]);
                results.secs(&c)
            };
            let (rw, rc) = if backend == "memory" {
                ("N/A (no durable state)".to_string(), "N/A".to_string())
            } else {
                (ms(restart("warm")), ms(restart("cold")))
            };
            let mult = |cache: &str| {
                if backend == "memory" {
                    "–".to_string()
                } else {
                    x(ratio(restart(cache), rl(cache)))
                }
            };
            let _ = writeln!(
                md,
                "| {backend} | {} | {} | {} ({}) | {} | {} | {} | {} / {} ({}) | {rw} | {} | {rc} | {} |",
                st.label(),
                mb(r.num("payload")),
                mb(r.num("stored")),
                x(ratio(r.num("payload"), r.num("stored"))),
                ms(r.num("secs")),
                x(ratio(
                    r.num("secs"),
                    if backend == "memory" {
                        serialize
                    } else {
                        snap_limit
                    }
                )),
                mbps(r.num("payload"), r.num("secs")),
                ms(r.num("stall_max")),
                ms(r.num("stall_p99")),
                ms(r.num("stall_worst")),
                mult("warm"),
                mult("cold"),
            );
        }
    }

    // Restart split.
    let _ = writeln!(
        md,
        "\n## Restart: loading the snapshot, then replaying the log tail\n\n\
         *load snapshot* is the persister's recovery plus reading and deserializing the \
         snapshot, without Raft; *tail n* is a full restart with n committed entries \
         (100-byte puts) after the snapshot; the replay cost per entry is \
         (tail 100k − tail 0) / 100k.\n"
    );
    let _ = writeln!(
        md,
        "| backend | state | load snapshot warm / cold | tail 0 warm / cold | tail 10k warm | tail 100k warm | replay per entry |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    for st in results.states("restart").into_iter().map(State::new) {
        for backend in DURABLE {
            let get = |kind: &str, tail: Option<&str>, cache: &str| {
                let mut c = st.conds(kind);
                c.extend([("backend", backend), ("cache", cache)]);
                if let Some(t) = tail {
                    c.push(("tail", t));
                }
                results.secs(&c)
            };
            let Some(t0) = get("restart", Some("0"), "warm") else {
                continue;
            };
            let t100k = get("restart", Some("100000"), "warm");
            let _ = writeln!(
                md,
                "| {backend} | {} | {} / {} | {} / {} | {} | {} | {} |",
                st.label(),
                ms(get("load_snapshot", None, "warm")),
                ms(get("load_snapshot", None, "cold")),
                ms(Some(t0)),
                ms(get("restart", Some("0"), "cold")),
                ms(get("restart", Some("10000"), "warm")),
                ms(t100k),
                t100k.map_or("–".into(), |t| format!("{:.1} µs", (t - t0) / 1e5 * 1e6)),
            );
        }
    }

    // Peers.
    let peer = |system: &str, op: &str, cache: Option<&str>| {
        let mut c = vec![("kind", "peer"), ("system", system), ("op", op)];
        if let Some(cache) = cache {
            c.push(("cache", cache));
        }
        results.find(&c)
    };
    let peer_keys = peer("redis", "save", None)
        .or(peer("etcd", "snapshot", None))
        .and_then(|r| r.get("keys"))
        .unwrap_or("1000000")
        .to_string();
    let ours = |kind: &str, backend: &str, cache: Option<&str>| {
        let mut c = vec![
            ("kind", kind),
            ("backend", backend),
            ("keys", peer_keys.as_str()),
            ("vlen", "100"),
            ("commands", peer_keys.as_str()),
        ];
        if let Some(cache) = cache {
            c.extend([("tail", "0"), ("cache", cache)]);
        }
        results.secs(&c)
    };
    let _ = writeln!(
        md,
        "\n## Beside Redis and etcd (the same {} keys × 100 B, same run)\n\n\
         `benches/peer_restart.py`: Redis with RDB only (`SAVE`, then `kill -9` and a \
         restart that loads `dump.rdb`), etcd as one member (`etcdctl snapshot save`, \
         then `kill -9` and a restart); restart = process start until the first `GET` / \
         linearizable range answers (for etcd this includes its leader election). Ratios \
         are raftkv's time over the peer's (below 1: raftkv is faster).\n",
        human(peer_keys.parse().unwrap_or(0)),
    );
    let _ = writeln!(
        md,
        "| system | snapshot | snapshot size | restart warm | restart cold |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|");
    for backend in DURABLE {
        let snap = results.find(&[
            ("kind", "snapshot"),
            ("backend", backend),
            ("keys", peer_keys.as_str()),
            ("vlen", "100"),
            ("commands", peer_keys.as_str()),
        ]);
        if snap.is_none() {
            continue;
        }
        let _ = writeln!(
            md,
            "| raftkv {backend} | {} | {} | {} | {} |",
            ms(snap.and_then(|r| r.num("secs"))),
            mb(snap.and_then(|r| r.num("stored"))),
            ms(ours("restart", backend, Some("warm"))),
            ms(ours("restart", backend, Some("cold"))),
        );
    }
    for (system, op, name) in [
        ("redis", "save", "Redis RDB (`SAVE`)"),
        ("etcd", "snapshot", "etcd (`snapshot save`)"),
    ] {
        let Some(s) = peer(system, op, None) else {
            continue;
        };
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} | {} |",
            ms(s.num("secs")),
            mb(s.num("bytes")),
            ms(peer(system, "restart", Some("warm")).and_then(|r| r.num("secs"))),
            ms(peer(system, "restart", Some("cold")).and_then(|r| r.num("secs"))),
        );
    }
    for (system, op, name) in [("redis", "save", "Redis"), ("etcd", "snapshot", "etcd")] {
        let Some(s) = peer(system, op, None) else {
            continue;
        };
        for backend in DURABLE {
            let Some(snap) = ours("snapshot", backend, None) else {
                continue;
            };
            let pr = |cache| peer(system, "restart", Some(cache)).and_then(|r| r.num("secs"));
            let _ = writeln!(
                md,
                "| *raftkv {backend} / {name}* | {} | | {} | {} |",
                x(ratio(Some(snap), s.num("secs"))),
                x(ratio(ours("restart", backend, Some("warm")), pr("warm"))),
                x(ratio(ours("restart", backend, Some("cold")), pr("cold"))),
            );
        }
    }
    if let Some(r) = peer("etcd", "load", None) {
        let _ = writeln!(
            md,
            "\nLoading took {} into Redis (`redis-cli --pipe`) and {} into etcd (JSON \
             gateway, {} puts per txn).",
            ms(peer("redis", "load", None).and_then(|r| r.num("secs"))),
            ms(r.num("secs")),
            r.get("ops_per_txn").unwrap_or("?"),
        );
    }

    // Peak RSS.
    let _ = writeln!(
        md,
        "\n## Memory while a snapshot is taken\n\n\
         In a child process: resident set after building the state, then the high-water \
         mark (reset through `/proc/self/clear_refs` just before) while one snapshot is \
         taken. *peak / state* = (peak − base) / (state − base), where base is the \
         process before the state was built.\n"
    );
    let _ = writeln!(
        md,
        "| backend | state | state RSS | peak RSS during snapshot | peak / state |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|");
    for st in results.states("snapshot").into_iter().map(State::new) {
        for backend in ALL {
            let mut c = st.conds("snapshot");
            c.push(("backend", backend));
            let Some(r) = results.find(&c) else { continue };
            let (Some(base), Some(state), Some(peak)) =
                (r.num("rss_base"), r.num("rss_state"), r.num("rss_peak"))
            else {
                continue;
            };
            let _ = writeln!(
                md,
                "| {backend} | {} | {} | {} | {} |",
                st.label(),
                mb(Some(state - base)),
                mb(Some(peak - base)),
                x(Some((peak - base) / (state - base))),
            );
        }
    }

    // Throughput.
    let _ = writeln!(
        md,
        "\n## Embedded throughput (fsync on; the memory backend has none)\n\n\
         Operations per second, each thread calling `Db::put` / `Db::get` (linearizable, \
         ReadIndex) one at a time.\n"
    );
    let _ = writeln!(
        md,
        "| backend | replicas | op | 1 thread | 16 threads | 64 threads |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    for backend in ALL {
        for replicas in ["1", "3"] {
            for op in ["put", "get"] {
                let cell = |w: &str| {
                    results
                        .find(&[
                            ("kind", "throughput"),
                            ("backend", backend),
                            ("replicas", replicas),
                            ("op", op),
                            ("writers", w),
                        ])
                        .and_then(|r| r.num("ops_per_sec"))
                        .map_or("–".into(), thousands)
                };
                if results
                    .find(&[("kind", "throughput"), ("backend", backend)])
                    .is_none()
                {
                    continue;
                }
                let _ = writeln!(
                    md,
                    "| {backend} | {replicas} | {op} | {} | {} | {} |",
                    cell("1"),
                    cell("16"),
                    cell("64")
                );
            }
        }
    }

    targets(results, &peer_keys, &mut md);

    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("REPORT.md"), md)?;
    std::fs::write(out.join("report.svg"), plot(results))?;
    Ok(())
}

fn mbps(bytes: Option<f64>, secs: Option<f64>) -> String {
    match (bytes, secs) {
        (Some(b), Some(s)) if s > 0.0 => format!("{:.0}", b / s / 1e6),
        _ => "–".into(),
    }
}

fn thousands(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// The targets, each checked against this run's figures.
fn targets(results: &Results, keys: &str, md: &mut String) {
    let _ = writeln!(
        md,
        "\n## Targets ({} keys × 100 B unless said)\n",
        human(keys.parse().unwrap_or(0))
    );
    let _ = writeln!(md, "| target | backend | measured | |");
    let _ = writeln!(md, "|---|---|---|---|");
    let state = |kind: &'static str, k: &str| -> Vec<(&'static str, String)> {
        vec![
            ("kind", kind.to_string()),
            ("keys", k.to_string()),
            ("vlen", "100".to_string()),
            ("commands", k.to_string()),
        ]
    };
    let find = |mut c: Vec<(&'static str, String)>, extra: &[(&'static str, &str)]| {
        c.extend(extra.iter().map(|(a, b)| (*a, b.to_string())));
        let c: Vec<(&str, &str)> = c.iter().map(|(a, b)| (*a, b.as_str())).collect();
        results.find(&c).cloned()
    };
    let peer = |system: &str, op: &str, cache: Option<&str>| {
        let mut c = vec![("kind", "peer"), ("system", system), ("op", op)];
        if let Some(cache) = cache {
            c.push(("cache", cache));
        }
        results.find(&c).and_then(|r| r.num("secs"))
    };
    let mut row = |target: &str, backend: &str, value: Option<f64>, ok: Option<bool>, fmt: &str| {
        let shown = match value {
            None => "not measured".to_string(),
            Some(v) => fmt.replace("{}", &format!("{v:.2}")),
        };
        let verdict = match ok {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "–",
        };
        let _ = writeln!(md, "| {target} | {backend} | {shown} | {verdict} |");
    };
    for backend in DURABLE {
        let restart = |cache: &str| {
            find(
                state("restart", keys),
                &[("backend", backend), ("tail", "0"), ("cache", cache)],
            )
            .and_then(|r| r.num("secs"))
        };
        let limit = |cache: &str| {
            find(state("restart_limit", keys), &[("cache", cache)]).and_then(|r| r.num("secs"))
        };
        if restart("warm").is_none() {
            continue;
        }
        for cache in ["warm", "cold"] {
            let r = ratio(restart(cache), limit(cache));
            row(
                &format!("restart ≤ 2x read + decompress ({cache})"),
                backend,
                r,
                r.map(|r| r <= 2.0),
                "{}x",
            );
        }
        let r = ratio(restart("warm"), peer("redis", "restart", Some("warm")));
        row(
            "restart ≤ 0.5x Redis RDB load (warm)",
            backend,
            r,
            r.map(|r| r <= 0.5),
            "{}x",
        );
        let r = ratio(restart("cold"), peer("redis", "restart", Some("cold")));
        row(
            "restart ≤ 0.5x Redis RDB load (cold)",
            backend,
            r,
            r.map(|r| r <= 0.5),
            "{}x",
        );
    }
    for backend in ALL {
        let snap = find(state("snapshot", keys), &[("backend", backend)]);
        let Some(snap) = snap else { continue };
        let limit = find(state("snapshot_limit", keys), &[]).and_then(|r| {
            r.num(if backend == "memory" {
                "serialize_secs"
            } else {
                "secs"
            })
        });
        let r = ratio(snap.num("secs"), limit);
        row(
            if backend == "memory" {
                "snapshot ≤ 1.5x serialize (memory does not compress)"
            } else {
                "snapshot ≤ 1.5x serialize + compress"
            },
            backend,
            r,
            r.map(|r| r <= 1.5),
            "{}x",
        );
        let r = ratio(snap.num("secs"), peer("redis", "save", None));
        row(
            "snapshot ≤ 0.5x Redis SAVE",
            backend,
            r,
            r.map(|r| r <= 0.5),
            "{}x",
        );
        let stall = snap.num("stall_max").map(|s| s * 1e3);
        row(
            "stall < 10 ms",
            backend,
            stall,
            stall.map(|s| s < 10.0),
            "{} ms",
        );
        let rss = match (
            snap.num("rss_base"),
            snap.num("rss_state"),
            snap.num("rss_peak"),
        ) {
            (Some(b), Some(s), Some(p)) => Some((p - b) / (s - b)),
            _ => None,
        };
        row(
            "peak RSS during snapshot ≤ 1.5x state",
            backend,
            rss,
            rss.map(|r| r <= 1.5),
            "{}x",
        );
    }
    // Linear in state size: time per key at the largest state against 100k keys.
    for backend in DURABLE {
        let per_key = |k: &str| {
            find(
                state("restart", k),
                &[("backend", backend), ("tail", "0"), ("cache", "warm")],
            )
            .and_then(|r| Some(r.num("secs")? / k.parse::<f64>().ok()?))
        };
        let largest = results
            .states("restart")
            .into_iter()
            .filter(|&(k, l, c)| l == 100 && c == k)
            .map(|(k, _, _)| k)
            .max()
            .unwrap_or(0);
        let r = ratio(per_key(&largest.to_string()), per_key("100000"));
        row(
            &format!(
                "restart linear in state: time per key at {} / at 100k within 0.7–1.3",
                human(largest)
            ),
            backend,
            r,
            r.map(|r| (0.7..=1.3).contains(&r)),
            "{}x",
        );
        let after = find(
            vec![
                ("kind", "restart".to_string()),
                ("keys", "100000".to_string()),
                ("vlen", "100".to_string()),
                ("commands", "1000000".to_string()),
            ],
            &[("backend", backend), ("tail", "0"), ("cache", "warm")],
        )
        .and_then(|r| r.num("secs"));
        let plain = find(
            state("restart", "100000"),
            &[("backend", backend), ("tail", "0"), ("cache", "warm")],
        )
        .and_then(|r| r.num("secs"));
        let r = ratio(after, plain);
        row(
            "restart independent of commands applied: 100k keys after 1M puts / after 100k, within 0.8–1.25",
            backend,
            r,
            r.map(|r| (0.8..=1.25).contains(&r)),
            "{}x",
        );
    }
}

/// The plot: restart (left) and snapshot (right) time against keys, 100-byte values.
fn plot(results: &Results) -> String {
    let series = |kind: &str, extra: &[(&str, &str)]| -> Vec<(f64, f64)> {
        let mut pts: Vec<(f64, f64)> = results
            .states(kind)
            .into_iter()
            .filter(|&(k, l, c)| l == 100 && c == k)
            .filter_map(|s| {
                let st = State::new(s);
                let mut c = st.conds(kind);
                c.extend_from_slice(extra);
                Some((s.0 as f64, results.secs(&c)?))
            })
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        pts
    };
    let peer_point = |system: &str, op: &str, cache: Option<&str>| {
        let mut c = vec![("kind", "peer"), ("system", system), ("op", op)];
        if let Some(cache) = cache {
            c.push(("cache", cache));
        }
        let r = results.find(&c)?;
        Some((r.num("keys")?, r.num("secs")?))
    };
    let mut restart = Vec::new();
    for (backend, color) in [("file", svg::BLUE), ("rocksdb", svg::ORANGE)] {
        for (cache, dashed) in [("warm", false), ("cold", true)] {
            restart.push(svg::Series {
                name: format!("raftkv {backend}, {cache}"),
                color,
                dashed,
                points: series(
                    "restart",
                    &[("backend", backend), ("tail", "0"), ("cache", cache)],
                ),
            });
        }
    }
    for (cache, dashed) in [("warm", false), ("cold", true)] {
        restart.push(svg::Series {
            name: format!("limit (read + unzstd), {cache}"),
            color: svg::GREY,
            dashed,
            points: series("restart_limit", &[("cache", cache)]),
        });
    }
    let restart_marks: Vec<svg::Mark> = [
        ("Redis (RDB), warm", "redis", svg::RED),
        ("etcd restart, warm", "etcd", svg::GREEN),
    ]
    .into_iter()
    .filter_map(|(name, system, color)| {
        Some(svg::Mark {
            name: name.into(),
            color,
            at: peer_point(system, "restart", Some("warm"))?,
        })
    })
    .collect();
    let mut snapshot = Vec::new();
    for (backend, color) in [
        ("file", svg::BLUE),
        ("rocksdb", svg::ORANGE),
        ("memory", svg::PURPLE),
    ] {
        snapshot.push(svg::Series {
            name: format!("raftkv {backend}"),
            color,
            dashed: false,
            points: series("snapshot", &[("backend", backend)]),
        });
    }
    snapshot.push(svg::Series {
        name: "limit (serialize + zstd)".into(),
        color: svg::GREY,
        dashed: false,
        points: series("snapshot_limit", &[]),
    });
    let snapshot_marks: Vec<svg::Mark> = [
        ("Redis SAVE", "redis", "save", svg::RED),
        ("etcd snapshot save", "etcd", "snapshot", svg::GREEN),
    ]
    .into_iter()
    .filter_map(|(name, system, op, color)| {
        Some(svg::Mark {
            name: name.into(),
            color,
            at: peer_point(system, op, None)?,
        })
    })
    .collect();
    svg::two_panels(
        (
            "Restart to first read (100-byte values)",
            &restart,
            &restart_marks,
        ),
        ("Snapshot (100-byte values)", &snapshot, &snapshot_marks),
    )
}

fn out_dir() -> PathBuf {
    std::env::var_os("RAFTKV_REPORT_DIR").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/benches")),
        PathBuf::from,
    )
}

/// A small made-up result set, for the smoke test.
fn sample() -> Results {
    let mut lines = vec!["kind=machine\tcores=2\tcpu=test\tmode=test".to_string()];
    for (keys, t) in [(10_000u64, 0.01), (100_000, 0.1), (1_000_000, 1.0)] {
        let s = format!("keys={keys}\tvlen=100\tcommands={keys}");
        lines.push(format!(
            "kind=snapshot_limit\t{s}\tsecs={}\tpayload={}\tstored={}",
            t / 3.0,
            keys * 118,
            keys * 64
        ));
        for cache in ["warm", "cold"] {
            lines.push(format!(
                "kind=restart_limit\t{s}\tcache={cache}\tsecs={}",
                t / 10.0
            ));
            lines.push(format!(
                "kind=restart\t{s}\tbackend=file\ttail=0\tcache={cache}\tsecs={t}"
            ));
        }
        lines.push(format!(
            "kind=load_snapshot\t{s}\tbackend=file\tcache=warm\tsecs={}",
            t / 2.0
        ));
        lines.push(format!(
            "kind=snapshot\t{s}\tbackend=file\tsecs={}\tpayload={}\tstored={}\tstall_max=0.002\tstall_p99=0.000001\trss_base=1000000\trss_state={}\trss_peak={}",
            t / 2.0,
            keys * 118,
            keys * 64,
            keys * 300,
            keys * 330
        ));
    }
    lines.push("kind=peer\tsystem=redis\top=save\tkeys=1000000\tsecs=2.5\tbytes=90000000".into());
    lines.push("kind=peer\tsystem=redis\top=restart\tcache=warm\tkeys=1000000\tsecs=1.25".into());
    lines.push(
        "kind=throughput\tbackend=file\treplicas=1\top=put\twriters=1\tops_per_sec=2400".into(),
    );
    Results(lines.iter().map(|l| Rec::parse(l)).collect())
}

fn main() {
    if common::test_mode() {
        let tmp = tempfile::tempdir().expect("tempdir");
        render(&sample(), tmp.path()).expect("render the sample report");
        let md = std::fs::read_to_string(tmp.path().join("REPORT.md")).expect("report");
        assert!(md.contains("| file | 1M × 100 B |"), "{md}");
        let svg = std::fs::read_to_string(tmp.path().join("report.svg")).expect("svg");
        assert!(svg.starts_with("<svg") && svg.contains("polyline"), "{svg}");
        return;
    }
    let path = common::results::path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "no results at {} ({e}): run benches/report.sh, or the snapshot, restart and \
             throughput benches first",
            path.display()
        )
    });
    let results = Results(text.lines().map(Rec::parse).collect());
    let out = out_dir();
    render(&results, &out).expect("write the report");
    println!(
        "wrote {} and {}",
        out.join("REPORT.md").display(),
        out.join("report.svg").display()
    );
}
