//! Random-seed sweep of the deterministic simulator: many seeds, each a random
//! workload with random faults (message loss and delay, long reordering, disconnections,
//! partitions and one-way link cuts, crashes and restarts — a quarter of the seeds in
//! "crash storms" aimed at Raft's Figure 8 —, asynchronous disk writes lost in crashes,
//! snapshots and their transfer, leadership transfers, ReadIndex reads) and random
//! Raft knobs (PreVote, CheckQuorum, batch and pipeline sizes), with every safety
//! invariant checked after every event and, once everything heals, a final command that
//! must commit on every node.
//!
//! * `RAFTKV_SIM_SEEDS=<count>`: how many seeds (default 200).
//! * `RAFTKV_SIM_SEED=<seed>`: replay exactly that one seed.
//! * `RAFTKV_SIM_BASE_SEED=<seed>`: the base the seeds are derived from; by default it
//!   comes from the clock, so every CI run explores new seeds. It is printed first.
//! * `RAFTKV_SIM_STORAGE=file`: run on the file backend (a tempdir per seed) instead of
//!   the memory backend.
//!
//! A failing seed is printed as `seed=<n>` with the one command that replays it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use raftkv_consensus::sim::StorageMode;
use raftkv_consensus::sim::rng::mix64;
use raftkv_consensus::sim::workload::{self, Outcome, Plan};

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a u64")),
    )
}

fn replay_command(seed: u64) -> String {
    format!("RAFTKV_SIM_SEED={seed} cargo test -p raftkv-consensus --test sim_sweep -- --nocapture")
}

fn panic_text(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(non-string panic)".into())
}

/// Runs one seed; `Err` holds the failure.
fn run_one(seed: u64) -> Result<Outcome, String> {
    let plan = Plan::random(seed);
    let file = std::env::var("RAFTKV_SIM_STORAGE").is_ok_and(|v| v == "file");
    let dir = if file {
        Some(tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?)
    } else {
        None
    };
    let storage = dir.as_ref().map_or(StorageMode::Memory, |d| {
        StorageMode::File(d.path().to_path_buf())
    });
    catch_unwind(AssertUnwindSafe(|| workload::run(&plan, storage)))
        .map_err(|e| format!("{}\nplan: {plan:?}", panic_text(e.as_ref())))
}

#[test]
fn sweep_random_seeds() {
    let seeds: Vec<u64> = match env_u64("RAFTKV_SIM_SEED") {
        Some(seed) => {
            println!("sim_sweep: replaying seed={seed}");
            vec![seed]
        }
        None => {
            let base = env_u64("RAFTKV_SIM_BASE_SEED").unwrap_or_else(|| {
                let t = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0);
                mix64(t)
            });
            let count = env_u64("RAFTKV_SIM_SEEDS").unwrap_or(200) as usize;
            println!(
                "sim_sweep: base seed {base} ({count} seeds; RAFTKV_SIM_BASE_SEED={base} repeats \
                 this sweep)"
            );
            (0..count as u64).map(|i| mix64(base ^ mix64(i))).collect()
        }
    };

    let wall = Instant::now();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(u64, Result<Outcome, String>)>> = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 4)
        .min(seeds.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&seed) = seeds.get(i) else { break };
                    let r = run_one(seed);
                    if let Err(e) = &r {
                        eprintln!(
                            "\nseed={seed} FAILED:\n{e}\nreplay: {}\n",
                            replay_command(seed)
                        );
                    }
                    results
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((seed, r));
                }
            });
        }
    });
    let elapsed = wall.elapsed();
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());

    let mut failed = Vec::new();
    let (mut virt, mut events, mut crashes, mut accepted, mut reads, mut faults) =
        (0, 0, 0, 0, 0, 0);
    let (mut leaders, mut applied, mut messages, mut installs) = (0, 0, 0, 0);
    for (seed, r) in &results {
        match r {
            Ok(o) => {
                virt += o.virtual_us;
                events += o.stats.events;
                crashes += o.stats.crashes;
                accepted += o.accepted;
                reads += o.reads;
                faults += o.faults;
                leaders += o.stats.leaders;
                applied += o.final_index;
                messages += o.messages;
                installs += o.snapshots_installed;
            }
            Err(_) => failed.push(*seed),
        }
    }
    println!(
        "sim_sweep: {} seeds ({} failed) in {:.1} s wall: {:.0} s virtual ({:.0}x real time), \
         {events} events, {messages} messages, {faults} faults ({crashes} crashes), {leaders} \
         elected terms, {accepted} proposals accepted, {applied} entries committed, {installs} \
         snapshots installed, {reads} linearizable reads checked",
        results.len(),
        failed.len(),
        elapsed.as_secs_f64(),
        virt as f64 / 1e6,
        virt as f64 / 1e6 / elapsed.as_secs_f64().max(1e-9),
    );
    if !failed.is_empty() {
        failed.sort_unstable();
        let cmds: Vec<String> = failed
            .iter()
            .map(|s| format!("seed={s}: {}", replay_command(*s)))
            .collect();
        panic!("{} seed(s) failed:\n{}", failed.len(), cmds.join("\n"));
    }
}

/// The same seed replays the same run, event for event (compared by trace hash), and a
/// different seed gives a different run.
#[test]
fn same_seed_same_run() {
    let seed = env_u64("RAFTKV_SIM_SEED").unwrap_or(0x5eed_0001);
    let a = run_one(seed).unwrap_or_else(|e| panic!("seed={seed}: {e}"));
    let b = run_one(seed).unwrap_or_else(|e| panic!("seed={seed}: {e}"));
    assert_eq!(
        a.trace_hash, b.trace_hash,
        "seed={seed} did not replay identically"
    );
    assert_eq!(a.stats, b.stats);
    assert_eq!(a.final_index, b.final_index);
    let c = run_one(seed ^ 1).unwrap_or_else(|e| panic!("seed={}: {e}", seed ^ 1));
    assert_ne!(a.trace_hash, c.trace_hash, "two seeds gave the same trace");
}
