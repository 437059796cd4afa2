//! [`Snapshotter`]: decides when to snapshot and writes snapshots beside the apply loop.
//!
//! The trigger is `raft_state_size() >= snapshot_ratio * max_raft_state` (0.9 by
//! default, so the snapshot lands before the limit). The apply loop hands over an O(1)
//! frozen view of the state machine — state, dedup table and index together — and a
//! background thread streams it into the persister and tells Raft it may compact. At
//! most one snapshot is in flight.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use raftkv_storage::{Persister, SnapshotMeta};

use crate::rsm::raft::RaftHandle;
use crate::state_machine::KvStateMachine;

/// What the snapshotter has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotStats {
    /// Snapshots committed.
    pub taken: u64,
    /// Snapshots that failed.
    pub failed: u64,
    /// Index of the last committed snapshot.
    pub last_index: u64,
    /// Payload bytes of the last committed snapshot.
    pub last_payload_bytes: u64,
    /// Bytes the last snapshot occupies in storage.
    pub last_stored_bytes: u64,
    /// How long the last snapshot took to write and commit.
    pub last_duration: Duration,
    /// True while a snapshot is being written.
    pub in_progress: bool,
}

pub(crate) struct Snapshotter {
    persister: Arc<dyn Persister>,
    raft: Arc<dyn RaftHandle>,
    threshold: Option<u64>,
    stats: Mutex<SnapshotStats>,
    /// Why the last failed snapshot failed, until one succeeds.
    last_error: Mutex<Option<String>>,
    idle: Condvar,
}

impl Snapshotter {
    pub(crate) fn new(
        persister: Arc<dyn Persister>,
        raft: Arc<dyn RaftHandle>,
        max_raft_state: i64,
        ratio: f64,
    ) -> Self {
        let threshold = (max_raft_state >= 0).then_some((max_raft_state as f64 * ratio) as u64);
        Self {
            persister,
            raft,
            threshold,
            stats: Mutex::new(SnapshotStats::default()),
            last_error: Mutex::new(None),
            idle: Condvar::new(),
        }
    }

    pub(crate) fn stats(&self) -> SnapshotStats {
        *self.stats.lock()
    }

    /// Why the last snapshot failed, if no snapshot succeeded since.
    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
    }

    /// Called by the apply loop after each apply, with the state machine locked.
    pub(crate) fn maybe_snapshot(self: &Arc<Self>, sm: &KvStateMachine) {
        let Some(threshold) = self.threshold else {
            return;
        };
        if self.persister.raft_state_size() < threshold || sm.applied_index() == 0 {
            return;
        }
        {
            let mut stats = self.stats.lock();
            if stats.in_progress || sm.applied_index() <= stats.last_index {
                return;
            }
            stats.in_progress = true;
        }
        let view = sm.snapshot_view();
        let this = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("rsm-snapshot".into())
            .spawn(move || this.write(view));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot spawn the snapshot thread");
            let mut stats = self.stats.lock();
            stats.in_progress = false;
            stats.failed += 1;
            *self.last_error.lock() = Some(format!("cannot spawn the snapshot thread: {e}"));
            self.idle.notify_all();
        }
    }

    fn write(&self, view: KvStateMachine) {
        let meta = SnapshotMeta {
            index: view.applied_index(),
            term: view.applied_term(),
        };
        let start = Instant::now();
        let result = (|| {
            let mut w = self.persister.begin_snapshot(meta)?;
            let payload = view.write_snapshot(&mut w)?;
            let info = w.commit()?;
            Ok::<_, raftkv_storage::StorageError>((payload, info))
        })();
        let elapsed = start.elapsed();
        match result {
            Ok((payload, info)) => {
                self.raft.snapshot_taken(meta);
                *self.last_error.lock() = None;
                let mut stats = self.stats.lock();
                stats.taken += 1;
                stats.last_index = meta.index;
                stats.last_payload_bytes = payload;
                stats.last_stored_bytes = info.stored_bytes;
                stats.last_duration = elapsed;
                stats.in_progress = false;
                tracing::debug!(
                    index = meta.index,
                    payload,
                    stored = info.stored_bytes,
                    ms = elapsed.as_millis() as u64,
                    "snapshot taken"
                );
            }
            Err(raftkv_storage::StorageError::StaleSnapshot { .. }) => {
                // A newer snapshot was installed from the leader meanwhile.
                let mut stats = self.stats.lock();
                stats.in_progress = false;
            }
            Err(e) => {
                tracing::error!(index = meta.index, error = %e, "snapshot failed; the node keeps serving from its log");
                *self.last_error.lock() = Some(e.to_string());
                let mut stats = self.stats.lock();
                stats.failed += 1;
                stats.in_progress = false;
            }
        }
        self.idle.notify_all();
    }

    /// Blocks until no snapshot is being written.
    pub(crate) fn wait_idle(&self) {
        let mut stats = self.stats.lock();
        while stats.in_progress {
            self.idle.wait(&mut stats);
        }
    }
}
