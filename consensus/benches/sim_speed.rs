//! How many times faster than real time the simulator runs a representative workload:
//! 5 nodes on the lab's unreliable network (0–26 ms delays, 10 % request and 10 %
//! response loss), a proposal every 1–20 ms, ReadIndex reads, snapshots every 50
//! entries, all invariants checked after every event. The figure printed is virtual
//! seconds simulated per wall-clock second (target: at least 10x).
//!
//! `RAFTKV_BENCH_QUICK=1` shortens everything (for CI smoke runs).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_main};
use raftkv_consensus::sim::StorageMode;
use raftkv_consensus::sim::clock::SECOND;
use raftkv_consensus::sim::workload::{self, Plan};

fn quick() -> bool {
    std::env::var("RAFTKV_BENCH_QUICK").is_ok_and(|v| v == "1")
}

fn speed(c: &mut Criterion) {
    let headline_virtual = if quick() { 5 * SECOND } else { 60 * SECOND };
    let plan = Plan::benchmark(42, headline_virtual);
    let t = Instant::now();
    let out = workload::run(&plan, StorageMode::Memory);
    let wall = t.elapsed().as_secs_f64();
    let virt = out.virtual_us as f64 / 1e6;
    println!(
        "sim_speed: {virt:.1} s of virtual time (5 nodes, unreliable network, {} proposals \
         accepted, {} committed, {} messages, {} events) in {wall:.3} s wall = {:.1}x real time \
         (target >= 10x)",
        out.accepted,
        out.final_index,
        out.messages,
        out.stats.events,
        virt / wall.max(1e-9)
    );

    let per_iter = if quick() { 2 * SECOND } else { 10 * SECOND };
    let mut g = c.benchmark_group("sim_speed");
    g.sample_size(10);
    if quick() {
        g.warm_up_time(Duration::from_millis(200));
        g.measurement_time(Duration::from_secs(1));
    }
    g.bench_function("5_nodes_unreliable_per_virtual_run", |b| {
        b.iter(|| {
            black_box(workload::run(
                &Plan::benchmark(7, per_iter),
                StorageMode::Memory,
            ))
        })
    });
    g.finish();
}

mod group {
    #![allow(
        missing_docs,
        reason = "criterion_group! generates an undocumented public function"
    )]
    criterion::criterion_group!(benches, super::speed);
}
criterion_main!(group::benches);
