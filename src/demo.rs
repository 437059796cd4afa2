//! `raftkv demo`: writes a log, a hard state and a snapshot through a backend, reopens it
//! as a restarted node would, and checks that everything came back.

use std::io::{Read, Write};
use std::time::Instant;

use raftkv_storage::{
    Backend, Entry, HardState, Persister, StorageConfig, StorageError, WriteBatch,
};

/// What one demo run measured.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// The backend exercised.
    pub backend: Backend,
    /// Entries appended.
    pub entries: u64,
    /// Batches written (one sync each).
    pub batches: u64,
    /// Seconds spent appending.
    pub append_secs: f64,
    /// Snapshot payload bytes.
    pub snapshot_bytes: u64,
    /// Bytes the snapshot occupies in storage.
    pub snapshot_stored_bytes: u64,
    /// Seconds from reopening to having read the state back.
    pub recover_secs: f64,
}

/// A demo failure.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The storage layer failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Reading the snapshot payload failed.
    #[error("reading the snapshot back: {0}")]
    Io(#[from] std::io::Error),
    /// Something came back different from what was written.
    #[error("{0}")]
    Mismatch(String),
}

/// Runs the demo against `config`: `batches` batches of 64 entries of 100 bytes, a
/// snapshot of the first half, a reopen, and a check of everything recovered.
pub fn run(config: &StorageConfig, batches: u64) -> Result<DemoReport, DemoError> {
    const PER_BATCH: u64 = 64;
    let persister = config.open()?;
    let before = persister.recover()?;
    let start_index = before.last_index() + 1;
    let term = before.hard_state.term + 1;
    let t = Instant::now();
    let mut index = start_index;
    for _ in 0..batches {
        let entries: Vec<Entry> = (0..PER_BATCH)
            .map(|i| Entry {
                index: index + i,
                term,
                data: format!("{:0100}", index + i).into_bytes(),
            })
            .collect();
        index += PER_BATCH;
        let hs = HardState {
            term,
            voted_for: Some(1),
            commit: index - 1,
        };
        persister.write(&WriteBatch::new().hard_state(hs).append(entries))?;
    }
    let append_secs = t.elapsed().as_secs_f64();
    let last = index - 1;
    let snap_index = start_index + (last - start_index) / 2;
    let payload: Vec<u8> = (0..(1u32 << 20))
        .flat_map(|i| (i % 251).to_le_bytes())
        .collect();
    let mut w = persister.begin_snapshot(raftkv_storage::SnapshotMeta {
        index: snap_index,
        term,
    })?;
    w.write_all(&payload)?;
    let info = w.commit()?;
    drop(persister);

    let t = Instant::now();
    let reopened: Box<dyn Persister> = if config.backend == Backend::Memory {
        // Nothing survives a memory backend's reopen; show the recovery of the live one.
        return Ok(DemoReport {
            backend: config.backend,
            entries: batches * PER_BATCH,
            batches,
            append_secs,
            snapshot_bytes: info.uncompressed_bytes,
            snapshot_stored_bytes: info.stored_bytes,
            recover_secs: 0.0,
        });
    } else {
        config.open()?
    };
    let state = reopened.recover()?;
    let mut read_back = Vec::new();
    if let Some(mut r) = reopened.open_snapshot()? {
        r.read_to_end(&mut read_back)?;
    }
    let recover_secs = t.elapsed().as_secs_f64();
    if state.snapshot.map(|m| m.index) != Some(snap_index) {
        return Err(DemoError::Mismatch(format!(
            "recovered snapshot {:?}, expected index {snap_index}",
            state.snapshot
        )));
    }
    if state.last_index() != last || state.first_index() != snap_index + 1 {
        return Err(DemoError::Mismatch(format!(
            "recovered log {}..={}, expected {}..={last}",
            state.first_index(),
            state.last_index(),
            snap_index + 1
        )));
    }
    if read_back != payload {
        return Err(DemoError::Mismatch("snapshot payload differs".into()));
    }
    Ok(DemoReport {
        backend: config.backend,
        entries: batches * PER_BATCH,
        batches,
        append_secs,
        snapshot_bytes: info.uncompressed_bytes,
        snapshot_stored_bytes: info.stored_bytes,
        recover_secs,
    })
}
