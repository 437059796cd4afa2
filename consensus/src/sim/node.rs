//! One simulated node: a [`RaftCore`], its storage, the service's applied state, and
//! the driver that processes every [`Ready`](crate::Ready) exactly as the API asks.
//!
//! The driver, after every input: takes `ready()`; hands `messages` to the network;
//! writes `persist` with one `Persister::write` and calls `on_persisted`; hands
//! `persisted_messages` to the network; applies `apply` in order (taking a snapshot every
//! `snapshot_every` entries, as the lab's `applierSnap` does); and repeats while the core
//! has more output. Persistence is synchronous, so at the end of a round the durable
//! state is exactly what the core has asked to persist.
//!
//! The service's state machine is a digest chained over every applied command. A
//! snapshot payload carries that digest, so a node that receives state wholesale is
//! checked against the canonical history as strictly as one that applied entry by
//! entry.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::path::PathBuf;

use raftkv_storage::{Backend, MemoryPersister, NodeId, Persister, SnapshotMeta, StorageConfig};

use crate::sim::durable_log::DurableLog;
use crate::sim::invariants::{Invariants, Violation};
use crate::{Apply, Config, Message, RaftCore, ReadState, SnapshotSend, Status};

/// Where a node keeps its durable state.
#[derive(Debug)]
pub enum Storage {
    /// A [`MemoryPersister`]; a crash keeps its `crash_image()`.
    Memory(MemoryPersister),
    /// The file backend in a directory; a crash drops it and a restart reopens the
    /// directory.
    File {
        /// The node's data directory.
        dir: PathBuf,
        /// The open persister.
        persister: Box<dyn Persister>,
    },
}

/// What survives a crash: the crash image or the directory.
#[derive(Debug)]
pub enum StorageImage {
    /// A memory crash image (the lab's `Persister.Copy()`).
    Memory(MemoryPersister),
    /// A data directory to reopen.
    File(PathBuf),
}

impl Storage {
    /// The persister.
    pub fn persister(&self) -> &dyn Persister {
        match self {
            Storage::Memory(p) => p,
            Storage::File { persister, .. } => persister.as_ref(),
        }
    }

    /// Crashes: what a restarted node will find. The old persister is dropped, so
    /// nothing the crashed instance could still do is seen.
    pub fn crash(self) -> StorageImage {
        match self {
            Storage::Memory(p) => StorageImage::Memory(p.crash_image()),
            Storage::File { dir, persister } => {
                drop(persister);
                StorageImage::File(dir)
            }
        }
    }
}

impl StorageImage {
    /// Opens storage for a new instance.
    ///
    /// # Panics
    /// If the file backend cannot open the directory: the simulation cannot go on.
    pub fn open(self) -> Storage {
        match self {
            StorageImage::Memory(p) => Storage::Memory(p),
            StorageImage::File(dir) => open_file(dir),
        }
    }

    /// Bytes of Raft state (hard state and log) in the image.
    pub fn raft_state_size(&self) -> Option<u64> {
        match self {
            StorageImage::Memory(p) => Some(p.raft_state_size()),
            StorageImage::File(_) => None,
        }
    }
}

/// Opens (creating) the file backend in `dir`.
///
/// # Panics
/// If the backend fails to open: the simulation cannot go on without storage.
pub fn open_file(dir: PathBuf) -> Storage {
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("sim: cannot create {}: {e}", dir.display());
    }
    match StorageConfig::new(Backend::File, &dir).open() {
        Ok(persister) => Storage::File { dir, persister },
        Err(e) => panic!(
            "sim: cannot open the file backend in {}: {e}",
            dir.display()
        ),
    }
}

/// What one round of processing produced for the rest of the simulation.
#[derive(Debug, Default)]
pub struct Output {
    /// Messages to hand to the network, in order.
    pub messages: Vec<Message>,
    /// Snapshot streams the leader asked for.
    pub snapshot_sends: Vec<SnapshotSend>,
    /// Completed ReadIndex requests.
    pub read_states: Vec<ReadState>,
    /// Entries this node was the first to apply: (index, term).
    pub newly_committed: Vec<(u64, u64)>,
    /// Persist ids queued on the asynchronous disk, in order (each needs a completion).
    pub disk_writes: Vec<u64>,
}

/// How the service snapshots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Snapshot after applying index `i` whenever `(i + 1) % every == 0` (the lab's
    /// `SnapShotInterval` rule); `None` never snapshots.
    pub every: Option<u64>,
    /// Extra payload bytes, to give snapshots a realistic size.
    pub filler_bytes: usize,
}

const SNAPSHOT_MAGIC: &[u8; 4] = b"SIMS";
/// Rounds of `ready()` one input may cause before the core is declared stuck.
const MAX_ROUNDS: usize = 10_000;

/// The payload of a simulated service snapshot.
fn encode_snapshot(index: u64, digest: u64, filler: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(20 + filler);
    v.extend_from_slice(SNAPSHOT_MAGIC);
    v.extend_from_slice(&index.to_le_bytes());
    v.extend_from_slice(&digest.to_le_bytes());
    v.resize(20 + filler, 0x5a);
    v
}

/// Decodes a simulated service snapshot payload: (index, digest).
pub fn decode_snapshot(bytes: &[u8]) -> Option<(u64, u64)> {
    if bytes.len() < 20 || &bytes[..4] != SNAPSHOT_MAGIC {
        return None;
    }
    let index = u64::from_le_bytes(bytes[4..12].try_into().ok()?);
    let digest = u64::from_le_bytes(bytes[12..20].try_into().ok()?);
    Some((index, digest))
}

fn contract(detail: String) -> Violation {
    Violation::new("core API contract", "consensus/API.md", detail)
}

fn storage_failure(detail: String) -> Violation {
    Violation::new("storage", "Persister contract", detail)
}

/// How to start one instance of a node.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// The core's configuration (its `id` is the node's).
    pub config: Config,
    /// Which instance this is (1 for the first start).
    pub incarnation: u64,
    /// The core's RNG seed.
    pub rng_seed: u64,
    /// When the service snapshots.
    pub policy: SnapshotPolicy,
    /// Whether writes complete asynchronously (see [`SimNode::drive`]).
    pub async_disk: bool,
}

/// A live node instance.
pub struct SimNode {
    id: NodeId,
    incarnation: u64,
    core: RaftCore,
    storage: Storage,
    log: DurableLog,
    applied: u64,
    digest: u64,
    policy: SnapshotPolicy,
    async_disk: bool,
    /// Ready rounds waiting for the asynchronous disk, oldest first.
    pending: VecDeque<PendingRound>,
    snapshots_taken: u64,
    snapshots_installed: u64,
}

/// The part of a `Ready` that must wait until its batch (or an earlier one) is durable.
struct PendingRound {
    persist: Option<crate::Persist>,
    persisted_messages: Vec<Message>,
    apply: Vec<Apply>,
}

impl std::fmt::Debug for SimNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimNode")
            .field("id", &self.id)
            .field("incarnation", &self.incarnation)
            .field("applied", &self.applied)
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

impl SimNode {
    /// Starts an instance on `storage`: recovers, loads the service's snapshot (as the
    /// lab's tester ingests it at restart), builds the core, and runs its first round,
    /// which must re-apply everything up to the persisted commit.
    pub fn start(
        spec: NodeSpec,
        storage: Storage,
        inv: &mut Invariants,
        out: &mut Output,
    ) -> Result<SimNode, Violation> {
        let NodeSpec {
            config,
            incarnation,
            rng_seed,
            policy,
            async_disk,
        } = spec;
        let id = config.id;
        let rec = storage
            .persister()
            .recover()
            .map_err(|e| storage_failure(format!("node {id}: recover failed: {e}")))?;
        let log = DurableLog::from_recovered(id, &rec, &mut inv.log_matching)?;
        let (applied, digest) = match rec.snapshot {
            Some(meta) => {
                let digest = read_snapshot(id, storage.persister(), meta)?;
                inv.state_machine.on_snapshot(id, meta, digest)?;
                (meta.index, digest)
            }
            None => (0, 0),
        };
        inv.applied.on_restart(id, rec.hard_state.commit)?;
        let core = RaftCore::new(config, &rec, rng_seed)
            .map_err(|e| contract(format!("node {id}: RaftCore::new failed: {e}")))?;
        let mut node = SimNode {
            id,
            incarnation,
            core,
            storage,
            log,
            applied,
            digest,
            policy,
            async_disk,
            pending: VecDeque::new(),
            snapshots_taken: 0,
            snapshots_installed: 0,
        };
        inv.applied.on_applied(id, applied);
        node.drive(inv, out)?;
        inv.applied.after_first_round(id, node.applied)?;
        Ok(node)
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Which instance of the node this is (1 for the first start).
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The core's status.
    pub fn status(&self) -> Status {
        self.core.status()
    }

    /// The core, for inputs the simulation does not wrap.
    pub fn core_mut(&mut self) -> &mut RaftCore {
        &mut self.core
    }

    /// The durable log mirror.
    pub fn log(&self) -> &DurableLog {
        &self.log
    }

    /// The storage.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The highest index the service has applied.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Snapshots the service took, and snapshots installed from a leader.
    pub fn snapshot_counts(&self) -> (u64, u64) {
        (self.snapshots_taken, self.snapshots_installed)
    }

    /// Crashes the instance, returning what survives.
    pub fn crash(self) -> StorageImage {
        self.storage.crash()
    }

    /// Processes output until the core has none left.
    ///
    /// With the synchronous disk, each round is handled completely: messages out,
    /// persist, `on_persisted`, persisted messages out, apply. With the asynchronous
    /// disk, messages go out at once and the rest of the round waits (in order) until
    /// the simulation completes its write with [`complete_writes`](Self::complete_writes);
    /// a crash before that loses the write.
    pub fn drive(&mut self, inv: &mut Invariants, out: &mut Output) -> Result<(), Violation> {
        for _ in 0..MAX_ROUNDS {
            if !self.core.has_ready() {
                return Ok(());
            }
            let rd = self.core.ready();
            let empty = rd.persist.is_none()
                && rd.messages.is_empty()
                && rd.persisted_messages.is_empty()
                && rd.apply.is_empty()
                && rd.read_states.is_empty()
                && rd.snapshot_sends.is_empty();
            for m in rd.messages {
                inv.replies.on_send(self.id, &m, &self.log)?;
                out.messages.push(m);
            }
            let round = PendingRound {
                persist: rd.persist,
                persisted_messages: rd.persisted_messages,
                apply: rd.apply,
            };
            if self.async_disk && (round.persist.is_some() || !self.pending.is_empty()) {
                if let Some(p) = &round.persist {
                    out.disk_writes.push(p.id);
                }
                self.pending.push_back(round);
            } else {
                self.finish_round(round, inv, out)?;
            }
            out.read_states.extend(rd.read_states);
            out.snapshot_sends.extend(rd.snapshot_sends);
            if empty {
                return Err(contract(format!(
                    "node {}: has_ready() is true but ready() is empty",
                    self.id
                )));
            }
        }
        Err(contract(format!(
            "node {}: the core still has output after {MAX_ROUNDS} Ready rounds for one input",
            self.id
        )))
    }

    /// Writes a round's batch, tells the core, then sends its persisted messages and
    /// applies its entries.
    fn finish_round(
        &mut self,
        round: PendingRound,
        inv: &mut Invariants,
        out: &mut Output,
    ) -> Result<(), Violation> {
        if let Some(p) = round.persist {
            if let Err(e) = self.storage.persister().write(&p.batch) {
                return Err(contract(format!(
                    "node {}: storage refused the Ready's batch (truncate_from {:?}, {} entries \
                     from {:?}, hard state {:?}): {e}",
                    self.id,
                    p.batch.truncate_from,
                    p.batch.entries.len(),
                    p.batch.entries.first().map(|e| e.index),
                    p.batch.hard_state
                )));
            }
            self.log
                .apply_batch(self.id, &p.batch, &mut inv.log_matching, &mut inv.votes)?;
            self.core.on_persisted(p.id);
        }
        for m in round.persisted_messages {
            inv.replies.on_send(self.id, &m, &self.log)?;
            out.messages.push(m);
        }
        for a in round.apply {
            self.apply(a, inv, out)?;
        }
        Ok(())
    }

    /// The asynchronous disk finished the write with `persist_id`: completes every
    /// pending round up to it, and the rounds without a write queued behind it, then
    /// processes whatever the core has to say about it. A no-op if that write was
    /// already completed (by [`flush_disk`](Self::flush_disk)).
    pub fn complete_writes(
        &mut self,
        persist_id: u64,
        inv: &mut Invariants,
        out: &mut Output,
    ) -> Result<(), Violation> {
        let queued = self
            .pending
            .iter()
            .any(|r| r.persist.as_ref().is_some_and(|p| p.id == persist_id));
        if !queued {
            return Ok(());
        }
        while let Some(round) = self.pending.pop_front() {
            let done = round.persist.as_ref().is_some_and(|p| p.id == persist_id);
            self.finish_round(round, inv, out)?;
            if done {
                break;
            }
        }
        while self.pending.front().is_some_and(|r| r.persist.is_none()) {
            if let Some(round) = self.pending.pop_front() {
                self.finish_round(round, inv, out)?;
            }
        }
        self.drive(inv, out)
    }

    /// Completes every pending write now (a runtime with one disk queue waits for it
    /// before storing an incoming snapshot).
    pub fn flush_disk(&mut self, inv: &mut Invariants, out: &mut Output) -> Result<(), Violation> {
        while let Some(round) = self.pending.pop_front() {
            self.finish_round(round, inv, out)?;
        }
        Ok(())
    }

    /// Flushes the disk and drives the core until neither has anything left.
    fn settle(&mut self, inv: &mut Invariants, out: &mut Output) -> Result<(), Violation> {
        loop {
            self.flush_disk(inv, out)?;
            if !self.core.has_ready() {
                return Ok(());
            }
            self.drive(inv, out)?;
        }
    }

    fn apply(&mut self, a: Apply, inv: &mut Invariants, out: &mut Output) -> Result<(), Violation> {
        match a {
            Apply::Command { index, term, data } => {
                if index != self.applied + 1 {
                    return Err(contract(format!(
                        "node {}: applied index {index} after {} (apply must be gap-free and in \
                         order)",
                        self.id, self.applied
                    )));
                }
                let known = inv.state_machine.max_index();
                self.digest =
                    inv.state_machine
                        .on_apply(self.id, index, term, &data, self.digest)?;
                if index > known {
                    out.newly_committed.push((index, term));
                }
                self.applied = index;
                inv.applied.on_applied(self.id, index);
                if let Some(every) = self.policy.every
                    && (index + 1) % every == 0
                {
                    self.take_snapshot(SnapshotMeta { index, term }, inv)?;
                }
            }
            Apply::Snapshot { meta } => {
                if meta.index <= self.applied {
                    return Err(contract(format!(
                        "node {}: Apply::Snapshot at index {} but it had applied through {}",
                        self.id, meta.index, self.applied
                    )));
                }
                let digest = read_snapshot(self.id, self.storage.persister(), meta)?;
                inv.state_machine.on_snapshot(self.id, meta, digest)?;
                self.applied = meta.index;
                self.digest = digest;
                inv.applied.on_applied(self.id, meta.index);
            }
        }
        Ok(())
    }

    /// The service's snapshot: written, committed, compacted, then told to the core.
    fn take_snapshot(&mut self, meta: SnapshotMeta, inv: &mut Invariants) -> Result<(), Violation> {
        let payload = encode_snapshot(meta.index, self.digest, self.policy.filler_bytes);
        self.write_snapshot(meta, &payload)?;
        self.log.apply_snapshot(self.id, meta, &inv.log_matching)?;
        self.check_mirror()?;
        self.snapshots_taken += 1;
        self.core.snapshot_taken(meta);
        Ok(())
    }

    fn write_snapshot(&self, meta: SnapshotMeta, payload: &[u8]) -> Result<(), Violation> {
        let p = self.storage.persister();
        let id = self.id;
        let mut w = p
            .begin_snapshot(meta)
            .map_err(|e| storage_failure(format!("node {id}: begin_snapshot({meta:?}): {e}")))?;
        w.write_all(payload)
            .map_err(|e| storage_failure(format!("node {id}: writing snapshot {meta:?}: {e}")))?;
        w.commit().map_err(|e| {
            storage_failure(format!("node {id}: committing snapshot {meta:?}: {e}"))
        })?;
        p.compact(meta.index)
            .map_err(|e| storage_failure(format!("node {id}: compact({}): {e}", meta.index)))?;
        Ok(())
    }

    /// Compares the durable-log mirror with what storage recovers.
    pub fn check_mirror(&self) -> Result<(), Violation> {
        let rec = self
            .storage
            .persister()
            .recover()
            .map_err(|e| storage_failure(format!("node {}: recover failed: {e}", self.id)))?;
        match self.log.diff(&rec) {
            None => Ok(()),
            Some(d) => Err(storage_failure(format!(
                "node {}: durable state differs from what was written: {d}",
                self.id
            ))),
        }
    }

    /// The leader side of a snapshot transfer: the current snapshot's payload and meta.
    pub fn read_snapshot_payload(&self) -> Result<Option<(SnapshotMeta, Vec<u8>)>, Violation> {
        let id = self.id;
        let reader = self
            .storage
            .persister()
            .open_snapshot()
            .map_err(|e| storage_failure(format!("node {id}: open_snapshot: {e}")))?;
        let Some(mut reader) = reader else {
            return Ok(None);
        };
        let meta = reader.meta();
        let mut buf = Vec::with_capacity(usize::try_from(reader.payload_len()).unwrap_or(0));
        reader
            .read_to_end(&mut buf)
            .map_err(|e| storage_failure(format!("node {id}: reading snapshot {meta:?}: {e}")))?;
        Ok(Some((meta, buf)))
    }

    /// The receiver side of a snapshot transfer: offer, store, then step
    /// `InstallSnapshot`. Returns whether the core accepted the offer.
    pub fn install_snapshot(
        &mut self,
        from: NodeId,
        term: u64,
        meta: SnapshotMeta,
        payload: &[u8],
        inv: &mut Invariants,
        out: &mut Output,
    ) -> Result<bool, Violation> {
        self.settle(inv, out)?;
        let accepted = self.core.snapshot_offer(from, term, meta);
        self.settle(inv, out)?;
        if !accepted {
            return Ok(false);
        }
        let status = self.core.status();
        if meta.index <= status.commit {
            return Err(contract(format!(
                "node {}: snapshot_offer accepted a snapshot at index {} although its commit index \
                 is {}",
                self.id, meta.index, status.commit
            )));
        }
        self.write_snapshot(meta, payload)?;
        self.log.apply_snapshot(self.id, meta, &inv.log_matching)?;
        self.check_mirror()?;
        self.snapshots_installed += 1;
        self.core.step(Message {
            from,
            to: self.id,
            term,
            body: crate::MessageBody::InstallSnapshot { meta },
        });
        self.drive(inv, out)?;
        Ok(true)
    }
}

/// Reads and decodes the snapshot `storage` holds, which must be the one at `meta`.
fn read_snapshot(id: NodeId, p: &dyn Persister, meta: SnapshotMeta) -> Result<u64, Violation> {
    let reader = p
        .open_snapshot()
        .map_err(|e| storage_failure(format!("node {id}: open_snapshot: {e}")))?;
    let Some(mut reader) = reader else {
        return Err(contract(format!(
            "node {id}: told to apply snapshot {meta:?} but storage holds no snapshot"
        )));
    };
    if reader.meta() != meta {
        return Err(contract(format!(
            "node {id}: told to apply snapshot {meta:?} but storage holds {:?}",
            reader.meta()
        )));
    }
    let mut buf = Vec::new();
    reader
        .read_to_end(&mut buf)
        .map_err(|e| storage_failure(format!("node {id}: reading snapshot {meta:?}: {e}")))?;
    match decode_snapshot(&buf) {
        Some((index, digest)) if index == meta.index => Ok(digest),
        Some((index, _)) => Err(storage_failure(format!(
            "node {id}: snapshot {meta:?} holds a service state of index {index}"
        ))),
        None => Err(storage_failure(format!(
            "node {id}: snapshot {meta:?} payload does not decode"
        ))),
    }
}
