//! [`MemoryPersister`]: everything in memory, with crash images for tests.

use std::io::{Cursor, Read, Write};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::StorageError;
use crate::fault::{self, FaultPlan};
use crate::persister::{Persister, Result, SnapshotReader, SnapshotWriter};
use crate::poison::Poison;
use crate::rules;
use crate::types::{
    Entry, HARD_STATE_ACCOUNTED_SIZE, HardState, RecoveredState, SnapshotInfo, SnapshotMeta,
    WriteBatch,
};

/// A persister that keeps everything in memory.
///
/// Every call is "durable" when it returns, in the sense that a
/// [`crash_image`](MemoryPersister::crash_image) taken afterwards holds it; a snapshot
/// being written is not in a crash image until it is committed. This is the lab's
/// `Persister.Copy()`: tests simulate a crash by dropping a node and restarting it on a
/// crash image, so nothing the old instance writes afterwards is seen.
///
/// Cloning shares the same state (as an `Arc` would).
#[derive(Debug, Clone, Default)]
pub struct MemoryPersister {
    state: Arc<Mutex<MemState>>,
    poison: Arc<Poison>,
    faults: Option<Arc<FaultPlan>>,
}

#[derive(Debug, Clone, Default)]
struct MemState {
    hard_state: HardState,
    snapshot: Option<(SnapshotMeta, Arc<Vec<u8>>)>,
    entries: Vec<Entry>,
    log_bytes: u64,
}

impl MemState {
    fn snapshot_index(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |(m, _)| m.index)
    }

    fn last_index(&self) -> u64 {
        self.entries
            .last()
            .map_or_else(|| self.snapshot_index(), |e| e.index)
    }
}

impl MemoryPersister {
    /// An empty persister.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty persister whose writes pass through `plan`'s failpoints
    /// (`memory.write`, `memory.snapshot_commit`).
    pub fn with_faults(plan: Arc<FaultPlan>) -> Self {
        Self {
            faults: Some(plan),
            ..Self::default()
        }
    }

    /// This persister with its writes passing through `plan`'s failpoints (or none).
    pub fn with_plan(mut self, plan: Option<Arc<FaultPlan>>) -> Self {
        self.faults = plan;
        self
    }

    /// A new, independent persister holding exactly what is durable now: what a node
    /// restarted after a crash at this instant would find.
    pub fn crash_image(&self) -> MemoryPersister {
        MemoryPersister {
            state: Arc::new(Mutex::new(self.state.lock().clone())),
            poison: Arc::default(),
            faults: None,
        }
    }
}

impl Persister for MemoryPersister {
    fn recover(&self) -> Result<RecoveredState> {
        let s = self.state.lock();
        let snapshot = s.snapshot.as_ref().map(|(m, _)| *m);
        let mut hard_state = s.hard_state;
        hard_state.commit = hard_state.commit.max(s.snapshot_index());
        Ok(RecoveredState {
            hard_state,
            snapshot,
            entries: s.entries.clone(),
            skipped_snapshots: Vec::new(),
        })
    }

    fn write(&self, batch: &WriteBatch) -> Result<()> {
        self.poison.check("write")?;
        let mut s = self.state.lock();
        rules::validate_batch(batch, s.snapshot_index(), s.last_index())?;
        self.poison
            .latch(fault::check(&self.faults, "memory.write"))?;
        if let Some(from) = batch.truncate_from {
            let first = s.snapshot_index() + 1;
            let keep = (from.saturating_sub(first) as usize).min(s.entries.len());
            let removed: u64 = s.entries[keep..].iter().map(Entry::accounted_size).sum();
            s.entries.truncate(keep);
            s.log_bytes -= removed;
        }
        for e in &batch.entries {
            s.log_bytes += e.accounted_size();
            s.entries.push(e.clone());
        }
        if let Some(hs) = batch.hard_state {
            s.hard_state = hs;
        }
        Ok(())
    }

    fn begin_snapshot(&self, meta: SnapshotMeta) -> Result<Box<dyn SnapshotWriter>> {
        self.poison.check("begin snapshot")?;
        Ok(Box::new(MemorySnapshotWriter {
            owner: self.clone(),
            meta,
            buf: Vec::new(),
        }))
    }

    fn open_snapshot(&self) -> Result<Option<Box<dyn SnapshotReader>>> {
        let s = self.state.lock();
        Ok(s.snapshot.as_ref().map(|(meta, payload)| {
            Box::new(MemorySnapshotReader {
                meta: *meta,
                len: payload.len() as u64,
                cursor: Cursor::new(SharedBytes(Arc::clone(payload))),
            }) as Box<dyn SnapshotReader>
        }))
    }

    fn snapshot_meta(&self) -> Option<SnapshotMeta> {
        self.state.lock().snapshot.as_ref().map(|(m, _)| *m)
    }

    fn compact(&self, through: u64) -> Result<()> {
        let s = self.state.lock();
        if through > s.snapshot_index() {
            return Err(StorageError::InvalidArgument {
                op: "compact",
                detail: format!(
                    "through {through} is above the snapshot index {}",
                    s.snapshot_index()
                ),
            });
        }
        // Entries at or below the snapshot index are already gone from memory.
        Ok(())
    }

    fn raft_state_size(&self) -> u64 {
        HARD_STATE_ACCOUNTED_SIZE + self.state.lock().log_bytes
    }

    fn snapshot_size(&self) -> u64 {
        self.state
            .lock()
            .snapshot
            .as_ref()
            .map_or(0, |(_, p)| p.len() as u64)
    }

    fn backend_name(&self) -> &'static str {
        "memory"
    }
}

struct MemorySnapshotWriter {
    owner: MemoryPersister,
    meta: SnapshotMeta,
    buf: Vec<u8>,
}

impl Write for MemorySnapshotWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SnapshotWriter for MemorySnapshotWriter {
    fn commit(self: Box<Self>) -> Result<SnapshotInfo> {
        let owner = &self.owner;
        owner.poison.check("commit snapshot")?;
        let mut s = owner.state.lock();
        let current = s.snapshot_index();
        if self.meta.index <= current && s.snapshot.is_some() {
            return Err(StorageError::StaleSnapshot {
                index: self.meta.index,
                current,
            });
        }
        owner
            .poison
            .latch(fault::check(&owner.faults, "memory.snapshot_commit"))?;
        let drop_n = rules::superseded_by_snapshot(&s.entries, self.meta);
        let dropped: u64 = s.entries[..drop_n].iter().map(Entry::accounted_size).sum();
        s.entries.drain(..drop_n);
        s.log_bytes -= dropped;
        if s.entries
            .first()
            .is_some_and(|e| e.index != self.meta.index + 1)
        {
            // Log older than the snapshot that did not reach it: superseded too.
            s.entries.clear();
            s.log_bytes = 0;
        }
        s.hard_state.commit = s.hard_state.commit.max(self.meta.index);
        let len = self.buf.len() as u64;
        s.snapshot = Some((self.meta, Arc::new(self.buf)));
        Ok(SnapshotInfo {
            meta: self.meta,
            uncompressed_bytes: len,
            stored_bytes: len,
        })
    }
}

struct SharedBytes(Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

struct MemorySnapshotReader {
    meta: SnapshotMeta,
    len: u64,
    cursor: Cursor<SharedBytes>,
}

impl Read for MemorySnapshotReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.cursor.read(buf)
    }
}

impl SnapshotReader for MemorySnapshotReader {
    fn meta(&self) -> SnapshotMeta {
        self.meta
    }

    fn payload_len(&self) -> u64 {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_image_excludes_uncommitted_snapshot_and_later_writes() {
        let p = MemoryPersister::new();
        let e = |i| Entry {
            index: i,
            term: 1,
            data: vec![i as u8],
        };
        p.write(&WriteBatch::new().append([e(1), e(2)]))
            .expect("write");
        let mut w = p
            .begin_snapshot(SnapshotMeta { index: 2, term: 1 })
            .expect("begin");
        w.write_all(b"state").expect("payload");
        let image = p.crash_image();
        w.commit().expect("commit");
        p.write(&WriteBatch::new().append([e(3)])).expect("write");
        let r = image.recover().expect("recover");
        assert_eq!(r.snapshot, None);
        assert_eq!(r.entries.len(), 2);
        let r = p.recover().expect("recover");
        assert_eq!(r.snapshot, Some(SnapshotMeta { index: 2, term: 1 }));
        assert_eq!(r.entries, vec![e(3)]);
        assert_eq!(r.hard_state.commit, 2);
    }

    #[test]
    fn injected_failure_poisons_and_applies_nothing() {
        let plan = Arc::new(FaultPlan::new());
        let p = MemoryPersister::with_faults(Arc::clone(&plan));
        plan.fail_at("memory.write", 1);
        let batch = WriteBatch::new().append([Entry {
            index: 1,
            term: 1,
            data: vec![],
        }]);
        assert!(matches!(
            p.write(&batch),
            Err(StorageError::Injected { .. })
        ));
        assert!(matches!(
            p.write(&batch),
            Err(StorageError::Poisoned { .. })
        ));
        assert!(p.recover().expect("recover").entries.is_empty());
    }
}
