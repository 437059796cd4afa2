//! [`Rsm`]: the replicated state machine layer. It turns client commands into Raft
//! proposals, applies the committed stream to the [`KvStateMachine`], answers each
//! caller when its own command applies, serves linearizable reads, and takes snapshots
//! when the Raft state nears `max_raft_state`.
//!
//! Rules it keeps (the lab's hard lessons):
//! * at start it restores the newest snapshot before applying anything;
//! * entries at or below the applied index (after an installed snapshot) are ignored;
//! * a caller is answered only for *its* command (matched by client id and sequence
//!   number); another command at its index fails it with `WrongLeader`;
//! * waiting callers never block the apply loop, and one that times out leaves nothing
//!   behind;
//! * a snapshot is the state, the dedup table and their index captured together, taken
//!   in O(1) and written on another thread while applies continue.

mod raft;
mod snapshotter;
mod waiters;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use raftkv_storage::{Persister, codec};

pub use raft::{ApplyMsg, Leadership, RaftHandle};
pub use snapshotter::SnapshotStats;

use crate::command::{Command, Op, Reply};
use crate::error::KvError;
use crate::sessions::SessionTable;
use crate::state_machine::KvStateMachine;
use snapshotter::Snapshotter;
use waiters::Waiters;

/// How linearizable reads are served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadMode {
    /// Raft ReadIndex: confirm leadership with a heartbeat round, wait until applied,
    /// read locally. Nothing is appended to the log. The default.
    #[default]
    ReadIndex,
    /// Put the read through the log like a write, as the lab does (for comparison).
    Log,
}

/// Settings of the replicated state machine.
#[derive(Debug, Clone)]
pub struct RsmConfig {
    /// Take a snapshot when the Raft state reaches `snapshot_ratio` of this many bytes;
    /// negative disables snapshots.
    pub max_raft_state: i64,
    /// The fraction of `max_raft_state` that triggers a snapshot (0.9).
    pub snapshot_ratio: f64,
    /// How long a caller waits for its command to apply.
    pub commit_timeout: Duration,
    /// How reads are served.
    pub read_mode: ReadMode,
    /// Sessions idle longer than this (log time) expire.
    pub session_ttl_ms: u64,
    /// At most this many sessions; the longest idle is evicted beyond it.
    pub max_sessions: usize,
    /// Largest encoded command accepted.
    pub max_command_bytes: u64,
}

impl Default for RsmConfig {
    fn default() -> Self {
        Self {
            max_raft_state: -1,
            snapshot_ratio: 0.9,
            commit_timeout: Duration::from_secs(5),
            read_mode: ReadMode::ReadIndex,
            session_ttl_ms: crate::sessions::DEFAULT_SESSION_TTL_MS,
            max_sessions: crate::sessions::DEFAULT_MAX_SESSIONS,
            max_command_bytes: 64 << 20,
        }
    }
}

/// How often a waiting caller re-checks that the leadership it proposed under holds.
const LEADERSHIP_POLL: Duration = Duration::from_millis(20);

struct Shared {
    sm: Mutex<KvStateMachine>,
    applied_changed: Condvar,
    waiters: Mutex<Waiters>,
    stopped: AtomicBool,
    /// Snapshots received from a leader and restored (not counting the one restored at
    /// start).
    installed: AtomicU64,
}

/// The replicated state machine.
pub struct Rsm {
    shared: Arc<Shared>,
    raft: Arc<dyn RaftHandle>,
    config: RsmConfig,
    snapshotter: Arc<Snapshotter>,
    apply_thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Rsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rsm")
            .field("applied", &self.applied_index())
            .finish_non_exhaustive()
    }
}

impl Rsm {
    /// Restores the newest snapshot from `persister`, then starts applying `applies`
    /// (the node's ordered apply stream) on a thread of its own.
    pub fn start<I>(
        raft: Arc<dyn RaftHandle>,
        applies: I,
        persister: Arc<dyn Persister>,
        config: RsmConfig,
    ) -> Result<Rsm, KvError>
    where
        I: IntoIterator<Item = ApplyMsg>,
        I::IntoIter: Send + 'static,
    {
        let sessions = SessionTable::new(config.session_ttl_ms, config.max_sessions);
        let sm = match persister.open_snapshot()? {
            Some(reader) => {
                let meta = reader.meta();
                let sm = KvStateMachine::read_snapshot(reader, sessions)?;
                if sm.applied_index() != meta.index {
                    return Err(KvError::Storage(raftkv_storage::StorageError::Codec {
                        op: "restore kv snapshot",
                        detail: format!(
                            "payload says index {} but the snapshot is at {}",
                            sm.applied_index(),
                            meta.index
                        ),
                    }));
                }
                sm
            }
            None => KvStateMachine::with_sessions(sessions),
        };
        let applied = sm.applied_index();
        let shared = Arc::new(Shared {
            sm: Mutex::new(sm),
            applied_changed: Condvar::new(),
            waiters: Mutex::new(Waiters::new(applied)),
            stopped: AtomicBool::new(false),
            installed: AtomicU64::new(0),
        });
        let snapshotter = Arc::new(Snapshotter::new(
            Arc::clone(&persister),
            Arc::clone(&raft),
            config.max_raft_state,
            config.snapshot_ratio,
        ));
        let thread = {
            let shared = Arc::clone(&shared);
            let snapshotter = Arc::clone(&snapshotter);
            let applies = applies.into_iter();
            std::thread::Builder::new()
                .name("rsm-apply".into())
                .spawn(move || apply_loop(applies, &shared, &snapshotter))
                .map_err(|e| {
                    KvError::Storage(raftkv_storage::StorageError::io(
                        "spawn apply thread",
                        "",
                        e,
                    ))
                })?
        };
        Ok(Rsm {
            shared,
            raft,
            config,
            snapshotter,
            apply_thread: Mutex::new(Some(thread)),
        })
    }

    /// Snapshots received from a leader and restored since start.
    pub fn snapshots_installed(&self) -> u64 {
        self.shared.installed.load(Ordering::Relaxed)
    }

    /// The index of the last applied entry.
    pub fn applied_index(&self) -> u64 {
        self.shared.sm.lock().applied_index()
    }

    /// How reads are served.
    pub fn read_mode(&self) -> ReadMode {
        self.config.read_mode
    }

    /// Snapshot activity so far.
    pub fn snapshot_stats(&self) -> SnapshotStats {
        self.snapshotter.stats()
    }

    /// Runs `f` on the current state (for reads already known to be linearizable, and
    /// for tests).
    pub fn with_state<T>(&self, f: impl FnOnce(&KvStateMachine) -> T) -> T {
        f(&self.shared.sm.lock())
    }

    /// Proposes `cmd` and waits until it applies, returning the state machine's reply.
    ///
    /// `cmd.client_id` must not be 0: the caller is matched to its command by
    /// (client id, sequence number).
    pub fn submit(&self, cmd: Command) -> Result<Reply, KvError> {
        self.submit_many(vec![cmd])
            .pop()
            .unwrap_or(Err(KvError::Shutdown))
    }

    /// Proposes `cmds` together, in order (one round trip to the node, consecutive
    /// indices, so a session's sequence numbers apply in the order given), then waits
    /// for all of them. One result each, in order.
    ///
    /// Every command needs a non-zero client id, and no two may share a
    /// (client id, sequence number). A command too large to propose fails alone; the
    /// others are still proposed. Once one command fails (its leadership ended, or the
    /// commit timeout passed), the commands after it fail the same way unless they
    /// already applied: a caller retries the failed ones, in order, with the same
    /// sequence numbers.
    pub fn submit_many(&self, cmds: Vec<Command>) -> Vec<Result<Reply, KvError>> {
        let n = cmds.len();
        let mut results: Vec<Option<Result<Reply, KvError>>> = (0..n).map(|_| None).collect();
        if self.shared.stopped.load(Ordering::Acquire) {
            return (0..n).map(|_| Err(KvError::Shutdown)).collect();
        }
        // (position in `cmds`, op id) of each command proposed, and its bytes.
        let mut ops = Vec::with_capacity(n);
        let mut batch = Vec::with_capacity(n);
        for (i, cmd) in cmds.iter().enumerate() {
            assert_ne!(cmd.client_id, 0, "submit needs a client session id");
            match codec::encode(cmd) {
                Ok(data) if data.len() as u64 > self.config.max_command_bytes => {
                    results[i] = Some(Err(KvError::TooLarge {
                        len: data.len(),
                        max: self.config.max_command_bytes,
                    }));
                }
                Ok(data) => {
                    ops.push((i, (cmd.client_id, cmd.seq)));
                    batch.push(data);
                }
                Err(e) => results[i] = Some(Err(e.into())),
            }
        }
        let receivers: Vec<_> = {
            let mut waiters = self.shared.waiters.lock();
            ops.iter().map(|&(_, op)| waiters.register(op)).collect()
        };
        let proposed = if batch.is_empty() {
            Vec::new()
        } else {
            self.raft.propose_batch(batch)
        };
        // (position, op id, receiver, term) of each command the node accepted.
        let mut pending = Vec::with_capacity(ops.len());
        {
            let mut waiters = self.shared.waiters.lock();
            let mut proposed = proposed.into_iter();
            for ((i, op), rx) in ops.into_iter().zip(receivers) {
                match proposed.next() {
                    Some(Ok((index, term))) => {
                        waiters.proposed(op, index);
                        pending.push((i, op, rx, term));
                    }
                    Some(Err(e)) => {
                        waiters.cancel(op);
                        results[i] = Some(Err(e));
                    }
                    None => {
                        waiters.cancel(op);
                        results[i] = Some(Err(KvError::Consensus(
                            "the node answered fewer proposals than it was given".into(),
                        )));
                    }
                }
            }
        }
        let deadline = Instant::now() + self.config.commit_timeout;
        let mut failure: Option<KvError> = None;
        for (i, op, rx, term) in pending {
            let result = match &failure {
                None => self.wait_for(op, &rx, term, deadline),
                Some(first) => {
                    self.shared.waiters.lock().cancel(op);
                    match rx.try_recv() {
                        Ok(result) => result,
                        Err(_) => Err(same_failure(first)),
                    }
                }
            };
            if failure.is_none()
                && let Err(e) = &result
            {
                failure = Some(same_failure(e));
            }
            results[i] = Some(result);
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or(Err(KvError::Shutdown)))
            .collect()
    }

    /// Waits for the answer to `op`, proposed in `term`, until `deadline`; gives up
    /// early if this replica stops leading `term`.
    fn wait_for(
        &self,
        op: (u64, u64),
        rx: &std::sync::mpsc::Receiver<Result<Reply, KvError>>,
        term: u64,
        deadline: Instant,
    ) -> Result<Reply, KvError> {
        loop {
            let now = Instant::now();
            if now >= deadline {
                self.shared.waiters.lock().cancel(op);
                // It may have applied in the meantime.
                if let Ok(result) = rx.try_recv() {
                    return result;
                }
                return Err(KvError::Timeout {
                    what: "the command to apply",
                    waited_ms: self.config.commit_timeout.as_millis() as u64,
                });
            }
            match rx.recv_timeout(LEADERSHIP_POLL.min(deadline - now)) {
                Ok(result) => return result,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    let l = self.raft.leadership();
                    if l.term != term || !l.is_leader {
                        self.shared.waiters.lock().cancel(op);
                        // It may still have applied in the meantime.
                        if let Ok(result) = rx.try_recv() {
                            return result;
                        }
                        return Err(KvError::WrongLeader {
                            leader_hint: l.leader,
                        });
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(KvError::Shutdown);
                }
            }
        }
    }

    /// A linearizable read of `key`, served as configured by [`ReadMode`].
    /// `client_id`/`seq` are used only in [`ReadMode::Log`].
    pub fn read(&self, key: bytes::Bytes, client_id: u64, seq: u64) -> Result<Reply, KvError> {
        match self.config.read_mode {
            ReadMode::Log => self.submit(Command {
                client_id,
                seq,
                ts_ms: now_ms(),
                op: Op::Get { key },
            }),
            ReadMode::ReadIndex => self.read_view(|sm| {
                sm.query(&Op::Get { key }).unwrap_or(Reply::Value {
                    value: None,
                    version: 0,
                })
            }),
        }
    }

    /// Runs `f` on the state after one linearizable read barrier: everything committed
    /// before the call is applied when `f` runs, so several reads made in `f` observe
    /// one linearizable moment. The barrier is a ReadIndex round, or in
    /// [`ReadMode::Log`] an empty read put through the log under a one-off client id.
    pub fn read_view<T>(&self, f: impl FnOnce(&KvStateMachine) -> T) -> Result<T, KvError> {
        if self.shared.stopped.load(Ordering::Acquire) {
            return Err(KvError::Shutdown);
        }
        match self.config.read_mode {
            ReadMode::ReadIndex => {
                let index = self.raft.read_index(self.config.commit_timeout)?;
                self.wait_applied(index, self.config.commit_timeout)?;
            }
            ReadMode::Log => {
                // Reads carry seq 0 and are not recorded, so a fresh id per barrier keeps
                // concurrent barriers' waiters apart without creating sessions.
                let barrier = Command {
                    client_id: rand::random::<u64>() | 1,
                    seq: 0,
                    ts_ms: now_ms(),
                    op: Op::KeyCount,
                };
                self.submit(barrier)?;
            }
        }
        Ok(self.with_state(f))
    }

    /// Waits until the applied index reaches `index`.
    pub fn wait_applied(&self, index: u64, timeout: Duration) -> Result<(), KvError> {
        let deadline = Instant::now() + timeout;
        let mut sm = self.shared.sm.lock();
        while sm.applied_index() < index {
            if self.shared.stopped.load(Ordering::Acquire) {
                return Err(KvError::Shutdown);
            }
            if self
                .shared
                .applied_changed
                .wait_until(&mut sm, deadline)
                .timed_out()
            {
                return Err(KvError::Timeout {
                    what: "the read index to apply",
                    waited_ms: timeout.as_millis() as u64,
                });
            }
        }
        Ok(())
    }

    /// Number of callers waiting for an apply (0 when idle: nothing leaks).
    pub fn pending_waiters(&self) -> usize {
        self.shared.waiters.lock().len()
    }

    /// Stops: fails every waiter and waits for the apply thread, which ends when the
    /// apply stream closes (shut the Raft node down first).
    pub fn shutdown(&self) {
        self.shared.stopped.store(true, Ordering::Release);
        self.shared.waiters.lock().fail_all(|| KvError::Shutdown);
        self.shared.applied_changed.notify_all();
        if let Some(t) = self.apply_thread.lock().take() {
            let _ = t.join();
        }
        self.snapshotter.wait_idle();
    }
}

/// A copy of a batch's first failure for the commands after it.
fn same_failure(e: &KvError) -> KvError {
    match e {
        KvError::WrongLeader { leader_hint } => KvError::WrongLeader {
            leader_hint: *leader_hint,
        },
        KvError::Timeout { what, waited_ms } => KvError::Timeout {
            what,
            waited_ms: *waited_ms,
        },
        KvError::Shutdown => KvError::Shutdown,
        KvError::Overloaded { backlog } => KvError::Overloaded { backlog: *backlog },
        other => KvError::Consensus(other.to_string()),
    }
}

/// Milliseconds since the Unix epoch, for command timestamps.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn apply_loop(
    applies: impl Iterator<Item = ApplyMsg>,
    shared: &Shared,
    snapshotter: &Arc<Snapshotter>,
) {
    for msg in applies {
        match msg {
            ApplyMsg::Command { index, term, data } => {
                let mut sm = shared.sm.lock();
                if index <= sm.applied_index() {
                    // Already covered by an installed snapshot.
                    continue;
                }
                if data.is_empty() {
                    sm.apply_noop(index, term);
                    shared.waiters.lock().applied(index, None, None);
                } else {
                    match codec::decode::<Command>(&data, usize::MAX) {
                        Ok(cmd) => {
                            let reply = sm.apply(index, term, &cmd);
                            shared.waiters.lock().applied(
                                index,
                                Some((cmd.client_id, cmd.seq)),
                                Some(&reply),
                            );
                        }
                        Err(e) => {
                            // Every replica sees the same bytes, so every replica skips it
                            // the same way; the proposer's waiter is failed by index.
                            tracing::error!(index, term, error = %e, "undecodable command skipped");
                            sm.apply_noop(index, term);
                            shared.waiters.lock().applied(index, None, None);
                        }
                    }
                }
                shared.applied_changed.notify_all();
                snapshotter.maybe_snapshot(&sm);
            }
            ApplyMsg::Snapshot { meta, payload } => {
                let mut sm = shared.sm.lock();
                if meta.index <= sm.applied_index() {
                    continue;
                }
                let sessions = SessionTable::new_like(sm.sessions());
                match KvStateMachine::read_snapshot(payload, sessions) {
                    Ok(restored) => {
                        *sm = restored;
                        shared.installed.fetch_add(1, Ordering::Relaxed);
                        shared.waiters.lock().snapshot_installed(meta.index);
                        shared.applied_changed.notify_all();
                    }
                    Err(e) => {
                        // The storage layer verified its checksums; a payload we cannot
                        // decode means a bug or a version mismatch. Stop applying rather
                        // than diverge.
                        tracing::error!(index = meta.index, error = %e, "installed snapshot unreadable; apply loop stops");
                        break;
                    }
                }
            }
        }
    }
    shared.stopped.store(true, Ordering::Release);
    shared.waiters.lock().fail_all(|| KvError::Shutdown);
    shared.applied_changed.notify_all();
}

#[cfg(test)]
mod tests;
