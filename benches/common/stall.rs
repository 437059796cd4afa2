//! The client-visible stall of a snapshot: an apply loop beside the snapshot, measuring
//! the longest gap between two applies (and the 99th percentile) until stopped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use raftkv::kvservice::command::{Command, Op};
use raftkv::kvservice::state_machine::KvStateMachine;

/// What the apply loop saw.
#[derive(Debug, Clone, Copy)]
pub struct Stall {
    /// The longest gap between two applies.
    pub worst: Duration,
    /// The 99th percentile gap.
    pub p99: Duration,
    /// Applies made.
    pub applies: u64,
}

/// An apply loop on its own thread: locks the state machine, applies one put (to one of
/// 1000 keys), unlocks, as the RSM's apply thread does for each committed entry.
pub struct StallProbe {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Stall>,
}

impl StallProbe {
    /// Starts applying puts of `value` to `sm`.
    pub fn start(sm: Arc<Mutex<KvStateMachine>>, value: Bytes) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut worst = Duration::ZERO;
                let mut gaps = Vec::new();
                let mut last = Instant::now();
                let mut k = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let mut g = sm.lock();
                    let i = g.applied_index() + 1;
                    let term = g.applied_term();
                    g.apply(
                        i,
                        term,
                        &Command {
                            client_id: 0,
                            seq: 0,
                            ts_ms: 0,
                            op: Op::Put {
                                key: Bytes::from(format!("user:{:010}", k % 1000)),
                                value: value.clone(),
                            },
                        },
                    );
                    drop(g);
                    k += 1;
                    let now = Instant::now();
                    let gap = now - last;
                    worst = worst.max(gap);
                    gaps.push(gap);
                    last = now;
                }
                gaps.sort_unstable();
                let p99 = gaps
                    .get(gaps.len().saturating_sub(1) * 99 / 100)
                    .copied()
                    .unwrap_or_default();
                Stall {
                    worst,
                    p99,
                    applies: k,
                }
            })
        };
        Self { stop, handle }
    }

    /// Stops the loop and returns what it saw.
    pub fn finish(self) -> Stall {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("apply loop")
    }
}
