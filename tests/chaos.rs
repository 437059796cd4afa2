//! Chaos across real processes, checked for linearizability.
//!
//! Five `raftkv server` processes (file backend, `--max-raft-state 65536` so that they
//! snapshot often) whose Raft links all pass through fault-injecting proxies. Client
//! threads run `VGET`, `VSET`, `SET` and `DEL` on a small keyspace through random
//! members and record every call and answer on one clock; an answer they never got (a
//! timeout, a broken connection, `-ERR no reachable leader`, ...) makes a write
//! indeterminate (it may or may not have applied), as in porcupine. Meanwhile a nemesis
//! (this thread) injects one fault at a time, the leader as likely a target as the
//! rest: SIGKILL + restart, SIGSTOP + SIGCONT, a partition (dropping or blackholing
//! every link across it), one-way link faults, a partition and a kill or pause at
//! once, a restart with the newest snapshot file deleted, truncated or corrupted, and a
//! crash of every member at once.
//!
//! At the end everything is healed; the members must converge (same applied index and
//! keyspace size, reported by each member from its own state), every key must read the
//! same through every member, the history (with those final reads) must be
//! linearizable for the versioned KV model, and every member must stop cleanly on
//! SIGTERM.
//!
//! Settings (environment): `RAFTKV_CHAOS_SEED` (random by default, printed),
//! `RAFTKV_CHAOS_SECS` (60), `RAFTKV_CHAOS_CLIENTS` (6), `RAFTKV_CHAOS_KEYS` (12),
//! `RAFTKV_CHAOS_CHECK_SECS` (checker timeout, 300), `RAFTKV_CHAOS_KEEP` (set: keep
//! the directory with the members' logs and data; it is always kept on a failure).
//!
//! Replay: `RAFTKV_CHAOS_SEED=123 cargo test --test chaos -- --nocapture` (same fault
//! schedule and client choices; process timing still varies).
//! Soak: `RAFTKV_CHAOS_SECS=600 cargo test --release --test chaos -- --nocapture`.

mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use raftkv::client::{RespClient, run_on_any};
use raftkv::kvservice::linearizability::{
    CheckResult, KvInput, KvModel, KvOutput, UNKNOWN_RETURN, check_operations,
    check_operations_parallel, explain,
};
use raftkv::kvservice::resp::Value;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use support::chaos::{ChaosCluster, SnapshotDamage};
use support::history::{History, KvOp, Outcome, output_of};
use support::proxy::LinkMode;
use support::{exe, info_field};

/// How long a client waits for one reply (the server retries for 5 s, a forwarded
/// request for up to 6 s more).
const OP_TIMEOUT: Duration = Duration::from_secs(12);
/// How long the healed cluster may take to converge.
const CONVERGE_LIMIT: Duration = Duration::from_secs(120);

struct Settings {
    seed: u64,
    secs: u64,
    clients: u64,
    keys: u64,
    check_secs: u64,
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
    )
}

fn settings() -> Settings {
    let seed = env_u64("RAFTKV_CHAOS_SEED").unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos() as u64;
        (t ^ (u64::from(std::process::id()) << 32)) % 1_000_000_000
    });
    Settings {
        seed,
        secs: env_u64("RAFTKV_CHAOS_SECS").unwrap_or(60),
        clients: env_u64("RAFTKV_CHAOS_CLIENTS").unwrap_or(6).max(1),
        keys: env_u64("RAFTKV_CHAOS_KEYS").unwrap_or(12).max(1),
        check_secs: env_u64("RAFTKV_CHAOS_CHECK_SECS").unwrap_or(300),
    }
}

/// Sets the flag when dropped, so that client threads stop even if the test panics.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn key_name(k: u64) -> String {
    format!("k{k}")
}

/// One client: random operations on random members until `stop`.
fn client(
    id: u64,
    seed: u64,
    addrs: Vec<String>,
    keys: u64,
    history: Arc<History>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = SmallRng::seed_from_u64(seed ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut known = vec![0u64; keys as usize];
    let mut conn: Option<RespClient> = None;
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Some(c) = conn.as_mut() else {
            let addr = addrs.choose(&mut rng).expect("addrs");
            match RespClient::connect(addr, OP_TIMEOUT) {
                Ok(c) => conn = Some(c),
                Err(_) => {
                    history.count(Outcome::Failed);
                    thread::sleep(Duration::from_millis(50));
                }
            }
            continue;
        };
        let k = rng.gen_range(0..keys);
        let key = key_name(k);
        seq += 1;
        let value = format!("c{id}-{seq}-{}", "x".repeat(rng.gen_range(8..64)));
        let roll = rng.gen_range(0..100);
        let input = match roll {
            0..45 => KvInput::get(key),
            45..88 => {
                let known = known[k as usize];
                let version = match rng.gen_range(0..20) {
                    0 => 0,
                    1 | 2 => known + 1,
                    _ => known,
                };
                KvInput::put(key, value, version)
            }
            88..97 => KvInput::set(key, value),
            _ => KvInput::delete(key),
        };
        let (outcome, reply) = history.run(id, c, input.clone());
        let slot = &mut known[k as usize];
        match (&input, outcome, &reply) {
            (_, Outcome::Ok, Ok(Value::Array(Some(items)))) => {
                if let Some(Value::Integer(v)) = items.get(1) {
                    *slot = *v as u64;
                }
            }
            (KvInput::Put { version, .. }, Outcome::Ok, Ok(Value::SimpleString(_))) => {
                *slot = version + 1;
            }
            (KvInput::Put { .. }, Outcome::Ok, Ok(Value::Error(e))) => {
                // "ERRVERSION version mismatch: the key is at version N" / "ERRNOKEY ...".
                let text = String::from_utf8_lossy(e);
                *slot = text
                    .rsplit(' ')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
            }
            (KvInput::Set { .. }, Outcome::Ok, _) => *slot += 1,
            (KvInput::Delete { .. }, Outcome::Ok, _) => *slot = 0,
            (_, Outcome::Ok, _) => {}
            // No definite answer: try another member.
            _ => conn = None,
        }
        if rng.gen_range(0..4) == 0 {
            thread::sleep(Duration::from_millis(rng.gen_range(1..5)));
        }
    }
}

/// Sleeps until `until` or `deadline`, whichever is first.
fn hold(until: Instant, deadline: Instant) {
    let end = until.min(deadline);
    let now = Instant::now();
    if end > now {
        thread::sleep(end - now);
    }
}

/// A random member, the leader half of the time (if one is found quickly).
fn target(c: &ChaosCluster, rng: &mut SmallRng) -> (u64, bool) {
    let n = c.members.len() as u64;
    if rng.gen_bool(0.5) {
        if let Some(l) = c.leader(Duration::from_millis(500)) {
            return (l, true);
        }
    }
    (rng.gen_range(1..=n), false)
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Injects faults, one at a time, until `deadline`; returns the count of each kind.
fn nemesis(
    c: &mut ChaosCluster,
    rng: &mut SmallRng,
    start: Instant,
    deadline: Instant,
) -> BTreeMap<String, u64> {
    let mut faults: BTreeMap<String, u64> = BTreeMap::new();
    let n = c.members.len() as u64;
    let log = |what: String| {
        println!("[{:>6.1}s] {what}", start.elapsed().as_secs_f64());
    };
    // Let the clients warm up.
    hold(Instant::now() + Duration::from_secs(2), deadline);
    while Instant::now() < deadline {
        let kind = rng.gen_range(0..100);
        let dur =
            |rng: &mut SmallRng, lo: u64, hi: u64| Duration::from_millis(rng.gen_range(lo..=hi));
        let name = match kind {
            0..20 => {
                let (id, leader) = target(c, rng);
                let down = dur(rng, 300, 4000);
                log(format!(
                    "SIGKILL member {id}{} for {}",
                    if leader { " (leader)" } else { "" },
                    secs(down)
                ));
                c.kill(id);
                hold(Instant::now() + down, deadline);
                c.member(id).start();
                "kill"
            }
            20..38 => {
                let (id, leader) = target(c, rng);
                let paused = dur(rng, 1000, 6000);
                log(format!(
                    "SIGSTOP member {id}{} for {}",
                    if leader { " (leader)" } else { "" },
                    secs(paused)
                ));
                c.pause(id);
                hold(Instant::now() + paused, deadline);
                c.resume(id);
                "pause"
            }
            38..60 => {
                let (first, leader) = target(c, rng);
                let mut side = vec![first];
                if rng.gen_bool(0.4) {
                    let mut other = rng.gen_range(1..=n);
                    while other == first {
                        other = rng.gen_range(1..=n);
                    }
                    side.push(other);
                }
                let mode = if rng.gen_bool(0.5) {
                    LinkMode::Drop
                } else {
                    LinkMode::Blackhole
                };
                let held = dur(rng, 2000, 8000);
                log(format!(
                    "partition {side:?}{} from the rest ({mode:?}) for {}",
                    if leader { " (with the leader)" } else { "" },
                    secs(held)
                ));
                c.partition(&side, mode);
                hold(Instant::now() + held, deadline);
                c.heal_links();
                if mode == LinkMode::Drop {
                    "partition-drop"
                } else {
                    "partition-blackhole"
                }
            }
            60..70 => {
                // Two faults at once: one member cut off (the leader half of the time)
                // and another one killed or paused; three of five remain.
                let (cut, leader) = target(c, rng);
                let mut other = rng.gen_range(1..=n);
                while other == cut {
                    other = rng.gen_range(1..=n);
                }
                let mode = if rng.gen_bool(0.5) {
                    LinkMode::Drop
                } else {
                    LinkMode::Blackhole
                };
                let kill = rng.gen_bool(0.5);
                let held = dur(rng, 2000, 6000);
                log(format!(
                    "partition [{cut}]{} ({mode:?}) and {} member {other} for {}",
                    if leader { " (leader)" } else { "" },
                    if kill { "SIGKILL" } else { "SIGSTOP" },
                    secs(held)
                ));
                c.partition(&[cut], mode);
                if kill {
                    c.kill(other);
                } else {
                    c.pause(other);
                }
                hold(Instant::now() + held, deadline);
                if kill {
                    c.member(other).start();
                } else {
                    c.resume(other);
                }
                c.heal_links();
                "partition+kill/pause"
            }
            70..80 => {
                let links: Vec<(u64, u64)> = (0..rng.gen_range(1..=3))
                    .map(|_| {
                        let from = rng.gen_range(1..=n);
                        let mut to = rng.gen_range(1..=n);
                        while to == from {
                            to = rng.gen_range(1..=n);
                        }
                        (from, to)
                    })
                    .collect();
                let mode = if rng.gen_bool(0.5) {
                    LinkMode::Drop
                } else {
                    LinkMode::Blackhole
                };
                let held = dur(rng, 2000, 6000);
                log(format!(
                    "one-way links {links:?} ({mode:?}) for {}",
                    secs(held)
                ));
                for &(from, to) in &links {
                    c.set_link(from, to, mode);
                }
                hold(Instant::now() + held, deadline);
                c.heal_links();
                "one-way-links"
            }
            80..95 => {
                let id = rng.gen_range(1..=n);
                let damage = *[
                    SnapshotDamage::Delete,
                    SnapshotDamage::Truncate,
                    SnapshotDamage::Corrupt,
                ]
                .choose(rng)
                .expect("damage");
                c.kill(id);
                let damaged = c.damage_snapshot(id, damage, rng.r#gen());
                let Some(file) = damaged else {
                    log(format!(
                        "SIGKILL member {id} and restart (no snapshot to damage yet)"
                    ));
                    c.member(id).start();
                    *faults.entry("kill".into()).or_default() += 1;
                    continue;
                };
                log(format!(
                    "SIGKILL member {id}, {damage:?} its newest snapshot {}, restart",
                    file.file_name().expect("name").to_string_lossy()
                ));
                c.member(id).start();
                // A member that cannot recover exits at once; give it a moment.
                let refused = (0..40).find_map(|_| {
                    thread::sleep(Duration::from_millis(100));
                    c.member(id).exit_status()
                });
                if let Some(status) = refused {
                    let tail = c.members[id as usize - 1].log_tail(5);
                    // The one refusal that is right: the damaged file was the only copy
                    // of some committed entries (a snapshot installed from the leader
                    // replaces a log that never reached back to the older snapshot), so
                    // starting would forget entries this member acknowledged.
                    let only_copy = tail.contains("but the newest valid snapshot ends at");
                    log(format!(
                        "{} member {id} refused to start with a damaged newest snapshot \
                         ({status}){}; restoring the file. Log tail:\n{tail}",
                        if only_copy { "--" } else { "!!" },
                        if only_copy {
                            " that held the only copy of committed entries (refusing is right)"
                        } else {
                            ""
                        },
                    ));
                    let kind = if only_copy {
                        "snapshot-only-copy-refused"
                    } else {
                        "snapshot-refused-start"
                    };
                    *faults.entry(kind.into()).or_default() += 1;
                    c.restore_snapshot(&file);
                    c.member(id).start();
                }
                match damage {
                    SnapshotDamage::Delete => "snapshot-delete",
                    SnapshotDamage::Truncate => "snapshot-truncate",
                    SnapshotDamage::Corrupt => "snapshot-corrupt",
                }
            }
            _ => {
                let down = dur(rng, 300, 2000);
                log(format!("SIGKILL every member for {}", secs(down)));
                for id in 1..=n {
                    c.kill(id);
                }
                hold(Instant::now() + down, deadline);
                for id in 1..=n {
                    c.member(id).start();
                }
                "crash-all"
            }
        };
        *faults.entry(name.into()).or_default() += 1;
        let quiet = dur(rng, 500, 2500);
        hold(Instant::now() + quiet, deadline);
        for id in 1..=n {
            if let Some(status) = c.member(id).exit_status() {
                log(format!(
                    "!! member {id} exited on its own ({status}); restarting it. Log tail:\n{}",
                    c.members[id as usize - 1].log_tail(10)
                ));
                *faults.entry("UNEXPECTED-EXIT".into()).or_default() += 1;
                c.member(id).start();
            }
        }
    }
    faults
}

/// Checks that the checker would catch a lost write here: the history of the key with
/// the fewest operations, cut to its first 2,000 operations (those still running at the
/// cut: reads dropped, writes made indeterminate, so the cut history is linearizable if
/// the whole one is), followed by a read of a value never written, must not be
/// linearizable. (The cut keeps the refutation, which is exhaustive, cheap.)
fn forged_read_is_caught(ops: &[KvOp]) -> (CheckResult, Duration) {
    const CUT: usize = 2000;
    let mut by_key: BTreeMap<&[u8], Vec<KvOp>> = BTreeMap::new();
    for op in ops {
        by_key.entry(op.input.key()).or_default().push(op.clone());
    }
    let Some(mut part) = by_key.into_values().min_by_key(Vec::len) else {
        return (CheckResult::Ok, Duration::ZERO);
    };
    part.sort_by_key(|o| o.call);
    part.truncate(CUT);
    let cut = part.last().expect("an operation").call;
    let key = part[0].input.key().to_vec();
    let mut part: Vec<KvOp> = part
        .into_iter()
        .filter_map(|mut o| {
            if o.ret <= cut {
                return Some(o);
            }
            if matches!(o.input, KvInput::Get { .. }) {
                return None;
            }
            o.output = KvOutput::Unknown;
            o.ret = UNKNOWN_RETURN;
            Some(o)
        })
        .collect();
    part.push(KvOp::new(
        0,
        KvInput::get(key),
        cut + 1,
        KvOutput::value("never written", 1),
        cut + 2,
    ));
    let start = Instant::now();
    let verdict = check_operations(&KvModel, &part, Some(Duration::from_secs(30)));
    (verdict, start.elapsed())
}

/// What a member reports of its own state: applied index and keyspace.
fn local_state(c: &ChaosCluster) -> Vec<Option<(u64, String)>> {
    c.members
        .iter()
        .map(|m| {
            let info = m.info_within(Duration::from_secs(2))?;
            let applied = info_field(&info, "applied_index")?.parse().ok()?;
            Some((applied, info_field(&info, "db0")?))
        })
        .collect()
}

/// Fails the test with the seed, the member logs' tails, and the kept directory.
fn fail(c: &mut ChaosCluster, seed: u64, what: &str) -> ! {
    let dir = c.keep_dir();
    panic!(
        "chaos seed {seed}: {what}\nlogs, configs and data kept in {}\n{}",
        dir.display(),
        c.log_tails(20)
    );
}

#[test]
fn chaos_five_members_stay_linearizable() {
    let s = settings();
    println!(
        "chaos: seed {} ({} s, {} clients, {} keys); replay: RAFTKV_CHAOS_SEED={} cargo test \
         --test chaos -- --nocapture",
        s.seed, s.secs, s.clients, s.keys, s.seed
    );
    let mut rng = SmallRng::seed_from_u64(s.seed);
    let mut c = ChaosCluster::start(5, &["--max-raft-state", "65536"]);
    let addrs = c.addrs();
    let history = Arc::new(History::default());
    let stop = Arc::new(AtomicBool::new(false));
    let stop_guard = StopOnDrop(Arc::clone(&stop));
    let clients: Vec<_> = (1..=s.clients)
        .map(|id| {
            let (addrs, history, stop) = (addrs.clone(), Arc::clone(&history), Arc::clone(&stop));
            let (seed, keys) = (s.seed, s.keys);
            thread::spawn(move || client(id, seed, addrs, keys, history, stop))
        })
        .collect();

    let start = Instant::now();
    let deadline = start + Duration::from_secs(s.secs);
    let faults = nemesis(&mut c, &mut rng, start, deadline);
    drop(stop_guard);
    for h in clients {
        h.join().expect("client thread");
    }
    let run_time = start.elapsed();

    // Heal, and wait for the members to agree.
    println!("[{:>6.1}s] heal everything", start.elapsed().as_secs_f64());
    c.heal_all();
    if !matches!(
        run_on_any(&addrs, &["SET", "__healed", "1"], Duration::from_secs(60)),
        Ok(Value::SimpleString(_))
    ) {
        fail(&mut c, s.seed, "no write succeeds 60 s after healing");
    }
    let converge_start = Instant::now();
    let converged = loop {
        let states = local_state(&c);
        if states.iter().all(Option::is_some) && states.windows(2).all(|w| w[0] == w[1]) {
            break states[0].clone().expect("state");
        }
        if converge_start.elapsed() > CONVERGE_LIMIT {
            fail(
                &mut c,
                s.seed,
                &format!("members did not converge in {CONVERGE_LIMIT:?}: {states:?}"),
            );
        }
        thread::sleep(Duration::from_millis(200));
    };
    let converge_time = converge_start.elapsed();

    // Final reads of every key through every member, into the history.
    for k in 0..s.keys {
        let key = key_name(k);
        let mut seen: Vec<(u64, KvOutput)> = Vec::new();
        for i in 0..c.members.len() {
            let m = &c.members[i];
            let id = m.id;
            let got = RespClient::connect(&m.client, OP_TIMEOUT)
                .ok()
                .and_then(|mut conn| {
                    let input = KvInput::get(&*key);
                    let (_, reply) = history.run(100 + m.id, &mut conn, input.clone());
                    output_of(&input, &reply.ok()?)
                });
            let Some(got) = got else {
                fail(
                    &mut c,
                    s.seed,
                    &format!("final VGET {key} through member {id} failed"),
                );
            };
            seen.push((id, got));
        }
        if seen.windows(2).any(|w| w[0].1 != w[1].1) {
            fail(
                &mut c,
                s.seed,
                &format!("members answer VGET {key} differently: {seen:?}"),
            );
        }
    }

    // The check.
    let ops = history.ops();
    let check_start = Instant::now();
    let verdict =
        check_operations_parallel(&KvModel, &ops, Some(Duration::from_secs(s.check_secs)), 2);
    let check_time = check_start.elapsed();
    let (forged, forged_time) = forged_read_is_caught(&ops);

    let mut report = String::new();
    let _ = writeln!(report, "chaos report (seed {})", s.seed);
    let _ = writeln!(
        report,
        "  run {} (+ converge {}), {} members, {} clients, {} keys",
        secs(run_time),
        secs(converge_time),
        c.members.len(),
        s.clients,
        s.keys
    );
    let _ = writeln!(
        report,
        "  operations: {} ok, {} failed (no effect), {} indeterminate; {} in the history",
        history.ok.load(Ordering::Relaxed),
        history.failed.load(Ordering::Relaxed),
        history.indeterminate.load(Ordering::Relaxed),
        ops.len()
    );
    let writes_ok = ops
        .iter()
        .filter(|o| !matches!(o.input, KvInput::Get { .. }) && matches!(o.output, KvOutput::Ok))
        .count();
    let reads_with_value = ops
        .iter()
        .filter(|o| matches!(o.output, KvOutput::Value { .. }))
        .count();
    let _ = writeln!(
        report,
        "  acknowledged writes: {writes_ok}; reads that found a value: {reads_with_value}"
    );
    let _ = writeln!(
        report,
        "  faults: {} total: {}",
        faults.values().sum::<u64>(),
        faults
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        report,
        "  converged: applied_index {}, {}",
        converged.0, converged.1
    );
    let violations = u64::from(verdict.is_illegal());
    let _ = writeln!(
        report,
        "  linearizability: {} (violations: {violations}), checked in {}",
        match &verdict {
            CheckResult::Ok => "ok",
            CheckResult::Illegal { .. } => "NOT LINEARIZABLE",
            CheckResult::Unknown => "unknown (checker timed out)",
        },
        secs(check_time)
    );
    let _ = writeln!(
        report,
        "  self-test: a cut of the history plus a forged read is {} ({})",
        match forged {
            CheckResult::Ok => "LINEARIZABLE (the check is vacuous!)",
            CheckResult::Illegal { .. } => "not linearizable, as it must be",
            CheckResult::Unknown => "undecided within 30 s",
        },
        secs(forged_time)
    );
    println!("{report}");
    assert!(
        writes_ok > 0 && reads_with_value > 0,
        "seed {}: the history holds no acknowledged write or no read of a value",
        s.seed
    );
    assert!(
        !forged.is_ok(),
        "seed {}: the checker accepts a forged final read",
        s.seed
    );

    if !verdict.is_ok() {
        let dir = c.keep_dir();
        let dump: String = ops.iter().map(|o| format!("{o:?}\n")).collect();
        let _ = std::fs::write(dir.join("history.txt"), dump);
        fail(
            &mut c,
            s.seed,
            &format!(
                "{}\nhistory in {}",
                explain(&KvModel, &ops, &verdict),
                dir.join("history.txt").display()
            ),
        );
    }
    if let Some(n) = faults.get("UNEXPECTED-EXIT") {
        fail(
            &mut c,
            s.seed,
            &format!("{n} member exit(s) that no fault caused (see the !! lines above)"),
        );
    }
    assert!(
        !faults.contains_key("snapshot-refused-start"),
        "seed {}: a member refused to start with a damaged newest snapshot",
        s.seed
    );

    if std::env::var_os("RAFTKV_CHAOS_KEEP").is_some() {
        println!("logs, configs and data kept in {}", c.keep_dir().display());
    }

    // A clean stop, and healthy data directories.
    for id in 1..=c.members.len() as u64 {
        if !c.member(id).terminate(Duration::from_secs(20)) {
            fail(
                &mut c,
                s.seed,
                &format!("member {id} did not exit 0 on SIGTERM"),
            );
        }
    }
    for m in &c.members {
        let out = Command::new(exe())
            .arg("inspect")
            .arg(&m.dir)
            .output()
            .expect("run inspect");
        if !out.status.success() {
            println!(
                "note: raftkv inspect {}: {}\n{}",
                m.dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
