//! [`Rsm`]: the replicated state machine layer. It turns client commands into Raft
//! proposals, applies the committed stream to the [`KvStateMachine`], answers each
//! caller when its own command applies, serves linearizable reads, and takes snapshots
//! when the Raft state nears `max_raft_state`.
//!
//! Rules it keeps (the lab's hard lessons):
//! * at start it restores the newest snapshot before applying anything (on the apply
//!   thread, reporting progress in a [`LoadProgress`]: the replica is alive meanwhile);
//! * entries at or below the applied index (after an installed snapshot) are ignored;
//! * a caller is answered only for *its* command (matched by client id and sequence
//!   number); another command at its index fails it with `WrongLeader`;
//! * waiting callers never block the apply loop (nor the Raft driver), and one that
//!   times out or is dropped leaves nothing behind;
//! * a caller whose leadership ends is failed as soon as the node reports it (or, with
//!   a [`RaftHandle`] that cannot report it, within a 20 ms poll).
//!
//! Every operation comes in two forms: blocking ([`Rsm::submit_many`],
//! [`Rsm::read_view`]) for threads, and async ([`Rsm::submit_many_async`],
//! [`Rsm::read_view_async`]) for tasks, which never block a runtime worker for longer
//! than a short lock and are woken once, when their answer is there.
//! * a snapshot is the state, the dedup table and their index captured together, taken
//!   in O(1) and written on another thread while applies continue.

mod outcomes;
mod raft;
mod snapshotter;
mod waiters;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use raftkv_storage::fault::{self, FaultPlan};
use raftkv_storage::{Persister, SnapshotReader, codec};

pub use outcomes::ProposalStats;
pub use raft::{
    ApplyMsg, Leadership, LeadershipWatcher, ProposeCallback, RaftHandle, ReadIndexCallback,
};
pub use snapshotter::SnapshotStats;

use crate::command::{Command, Op, Reply};
use crate::error::KvError;
use crate::load_progress::LoadProgress;
use crate::sessions::SessionTable;
use crate::state_machine::KvStateMachine;
use outcomes::ProposalOutcomes;
use snapshotter::Snapshotter;
use tokio::sync::oneshot;
use waiters::{Answer, Completions, Notify, OpId, Waiters};

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
    /// Failpoints of the apply loop, for tests: `rsm.before_install_snapshot` and
    /// `rsm.after_install_snapshot` around replacing the state with a snapshot the
    /// leader sent. A failure there stops the apply loop, as a crash at that step
    /// would (the node's persisted snapshot is restored at the next start).
    pub faults: Option<Arc<FaultPlan>>,
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
            faults: None,
        }
    }
}

/// How often a waiting caller re-checks that the leadership it proposed under holds,
/// when the [`RaftHandle`] cannot report leadership changes.
const LEADERSHIP_POLL: Duration = Duration::from_millis(20);

struct Shared {
    sm: Mutex<KvStateMachine>,
    applied_changed: Condvar,
    waiters: Mutex<Waiters>,
    stopped: AtomicBool,
    /// Snapshots received from a leader and restored (not counting the one restored at
    /// start).
    installed: AtomicU64,
    /// Loading the state at start: the snapshot, then the log up to the commit index.
    progress: Arc<LoadProgress>,
}

impl Shared {
    /// Runs `f` on the waiter table, then sends the answers it produced (after the
    /// lock is released).
    fn with_waiters<T>(&self, f: impl FnOnce(&mut Waiters, &mut Completions) -> T) -> T {
        let mut done = Completions::default();
        let out = f(&mut self.waiters.lock(), &mut done);
        done.send();
        out
    }
}

/// The replicated state machine.
pub struct Rsm {
    shared: Arc<Shared>,
    raft: Arc<dyn RaftHandle>,
    config: RsmConfig,
    snapshotter: Arc<Snapshotter>,
    apply_thread: Mutex<Option<JoinHandle<()>>>,
    /// The Raft handle reports leadership changes (no polling needed).
    leadership_watched: bool,
    outcomes: ProposalOutcomes,
}

/// One command of a batch, proposed and waiting for its answer through `rx`.
struct Pending<R> {
    /// Its position in the batch.
    pos: usize,
    op: OpId,
    token: u64,
    rx: R,
}

/// Cancels the waiters of an async batch that is dropped before its answers came (a
/// closed connection): nothing is left behind. Cancelling an answered waiter does
/// nothing.
struct CancelOnDrop<'a> {
    shared: &'a Shared,
    ops: Vec<(OpId, u64)>,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.ops.is_empty() {
            return;
        }
        let mut waiters = self.shared.waiters.lock();
        for &(op, token) in &self.ops {
            waiters.cancel(op, token);
        }
    }
}

/// Prunes the read waiter of an async read that ends without its answer.
struct ReadGuard<'a> {
    shared: &'a Shared,
    rx: Option<oneshot::Receiver<Result<(), KvError>>>,
}

impl Drop for ReadGuard<'_> {
    fn drop(&mut self) {
        if let Some(rx) = self.rx.take() {
            drop(rx);
            self.shared.waiters.lock().prune_reads();
        }
    }
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
        // The snapshot is opened here, so that a missing or unreadable file fails the
        // start; its payload is decoded on the apply thread, which reports progress
        // (the replica is alive, and says it is loading, meanwhile).
        let snapshot = persister.open_snapshot()?;
        let snapshot_index = snapshot.as_ref().map_or(0, |r| r.meta().index);
        let progress = Arc::new(LoadProgress::new(snapshot_index, raft.commit_index()));
        if snapshot.is_none() {
            // Nothing to restore: the replay (if any) starts now, and a member with an
            // empty log is ready before its server opens.
            progress.snapshot_restored();
        }
        let shared = Arc::new(Shared {
            sm: Mutex::new(KvStateMachine::with_sessions(SessionTable::new_like(
                &sessions,
            ))),
            applied_changed: Condvar::new(),
            waiters: Mutex::new(Waiters::new(0)),
            stopped: AtomicBool::new(false),
            installed: AtomicU64::new(0),
            progress,
        });
        let leadership_watched = {
            let weak = Arc::downgrade(&shared);
            raft.watch_leadership(Box::new(move |l| {
                if let Some(shared) = weak.upgrade() {
                    shared.with_waiters(|w, done| w.leadership_changed(l, done));
                }
            }))
        };
        let snapshotter = Arc::new(Snapshotter::new(
            Arc::clone(&persister),
            Arc::clone(&raft),
            config.max_raft_state,
            config.snapshot_ratio,
        ));
        let thread = {
            let shared = Arc::clone(&shared);
            let snapshotter = Arc::clone(&snapshotter);
            let faults = config.faults.clone();
            let applies = applies.into_iter();
            std::thread::Builder::new()
                .name("rsm-apply".into())
                .spawn(move || {
                    if load(snapshot, sessions, &shared) {
                        apply_loop(applies, &shared, &snapshotter, &faults);
                    }
                    shared.stopped.store(true, Ordering::Release);
                    shared.with_waiters(|w, done| w.fail_all(|| KvError::Shutdown, done));
                    shared.applied_changed.notify_all();
                })
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
            leadership_watched,
            outcomes: ProposalOutcomes::default(),
        })
    }

    /// How far loading the state at start is (the snapshot, then the log up to the
    /// commit index known at start). Calls made while loading wait for it: reads until
    /// their read index is applied, writes until their entry is.
    pub fn load_progress(&self) -> &Arc<LoadProgress> {
        &self.shared.progress
    }

    /// Waits up to `timeout` for loading to finish (see [`load_progress`](Self::load_progress)).
    pub fn wait_loaded(&self, timeout: Duration) -> Result<(), KvError> {
        self.shared
            .progress
            .wait(timeout)
            .map_err(|reason| KvError::Consensus(format!("loading the state: {reason}")))
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

    /// How the commands submitted here ended, so far.
    pub fn proposal_stats(&self) -> ProposalStats {
        self.outcomes.stats()
    }

    /// Snapshot activity so far.
    pub fn snapshot_stats(&self) -> SnapshotStats {
        self.snapshotter.stats()
    }

    /// Why the last snapshot failed (a full disk, say), until one succeeds.
    pub fn last_snapshot_error(&self) -> Option<String> {
        self.snapshotter.last_error()
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
        let mut results: Vec<Option<Answer>> = (0..cmds.len()).map(|_| None).collect();
        let pending = self.propose(&cmds, &mut results, || {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            (Notify::Sync(tx), rx)
        });
        let deadline = Instant::now() + self.config.commit_timeout;
        let mut failure: Option<KvError> = None;
        for p in pending {
            let result = match &failure {
                None => self.wait_for(p.op, p.token, &p.rx, deadline),
                Some(first) => {
                    self.shared.waiters.lock().cancel(p.op, p.token);
                    match p.rx.try_recv() {
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
            results[p.pos] = Some(result);
        }
        let answers = finish(results);
        self.outcomes.record(&answers);
        answers
    }

    /// [`submit`](Self::submit) for async callers.
    pub async fn submit_async(&self, cmd: Command) -> Result<Reply, KvError> {
        self.submit_many_async(vec![cmd])
            .await
            .pop()
            .unwrap_or(Err(KvError::Shutdown))
    }

    /// [`submit_many`](Self::submit_many) for async callers: the same contract, but it
    /// waits without blocking a thread. The task is woken when the answers are there
    /// (the apply loop sends them), so it costs no thread hand-off of its own.
    ///
    /// Dropping the future before it resolves cancels its waiters (the commands may
    /// still apply; a retry with the same sequence numbers is answered from the dedup
    /// table).
    pub async fn submit_many_async(&self, cmds: Vec<Command>) -> Vec<Result<Reply, KvError>> {
        let mut results: Vec<Option<Answer>> = (0..cmds.len()).map(|_| None).collect();
        let mut pending = self.propose(&cmds, &mut results, || {
            let (tx, rx) = oneshot::channel();
            (Notify::Async(tx), rx)
        });
        let mut cancel = CancelOnDrop {
            shared: &self.shared,
            ops: pending.iter().map(|p| (p.op, p.token)).collect(),
        };
        let deadline = tokio::time::Instant::now() + self.config.commit_timeout;
        let mut failure: Option<KvError> = None;
        for p in &mut pending {
            let result = match &failure {
                None => self.wait_async(p.op, p.token, &mut p.rx, deadline).await,
                Some(first) => {
                    self.shared.waiters.lock().cancel(p.op, p.token);
                    match p.rx.try_recv() {
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
            results[p.pos] = Some(result);
        }
        // Every waiter was answered, or cancelled on its failure path.
        cancel.ops.clear();
        let answers = finish(results);
        self.outcomes.record(&answers);
        answers
    }

    /// Encodes `cmds`, registers a waiter for each (made by `channel`) and proposes
    /// them in one batch. Commands that cannot be proposed get their result in
    /// `results`; the others are returned, in order, to be waited for.
    fn propose<R>(
        &self,
        cmds: &[Command],
        results: &mut [Option<Answer>],
        mut channel: impl FnMut() -> (Notify<Answer>, R),
    ) -> Vec<Pending<R>> {
        if self.shared.stopped.load(Ordering::Acquire) {
            for r in results.iter_mut() {
                *r = Some(Err(KvError::Shutdown));
            }
            return Vec::new();
        }
        let mut batch = Vec::with_capacity(cmds.len());
        let mut ops = Vec::with_capacity(cmds.len());
        for (i, cmd) in cmds.iter().enumerate() {
            assert_ne!(cmd.client_id, 0, "submit needs a client session id");
            match encode_command(cmd) {
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
        if batch.is_empty() {
            return Vec::new();
        }
        let pending: Vec<Pending<R>> = self.shared.with_waiters(|waiters, done| {
            ops.iter()
                .map(|&(pos, op)| {
                    let (notify, rx) = channel();
                    let token = waiters.register(op, notify, done);
                    Pending { pos, op, token, rx }
                })
                .collect()
        });
        let registered: Vec<(OpId, u64)> = pending.iter().map(|p| (p.op, p.token)).collect();
        let shared = Arc::downgrade(&self.shared);
        // No lock may be held here: the callback can run on this thread.
        self.raft.propose_batch_with(
            batch,
            Box::new(move |proposed| record_proposals(&shared, &registered, proposed)),
        );
        pending
    }

    /// Waits for the answer to `op` until `deadline`; gives up early if the leadership
    /// it was proposed under ends.
    fn wait_for(
        &self,
        op: OpId,
        token: u64,
        rx: &std::sync::mpsc::Receiver<Answer>,
        deadline: Instant,
    ) -> Answer {
        loop {
            let now = Instant::now();
            if now >= deadline {
                self.shared.waiters.lock().cancel(op, token);
                // It may have applied in the meantime.
                if let Ok(result) = rx.try_recv() {
                    return result;
                }
                return Err(self.commit_timeout_error());
            }
            let wait = if self.leadership_watched {
                deadline - now
            } else {
                LEADERSHIP_POLL.min(deadline - now)
            };
            match rx.recv_timeout(wait) {
                Ok(result) => return result,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => self.poll_leadership(),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(KvError::Shutdown);
                }
            }
        }
    }

    /// [`wait_for`](Self::wait_for) for async callers.
    async fn wait_async(
        &self,
        op: OpId,
        token: u64,
        rx: &mut oneshot::Receiver<Answer>,
        deadline: tokio::time::Instant,
    ) -> Answer {
        loop {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                self.shared.waiters.lock().cancel(op, token);
                if let Ok(result) = rx.try_recv() {
                    return result;
                }
                return Err(self.commit_timeout_error());
            }
            let until = if self.leadership_watched {
                deadline
            } else {
                deadline.min(now + LEADERSHIP_POLL)
            };
            tokio::select! {
                biased;
                r = &mut *rx => return r.unwrap_or(Err(KvError::Shutdown)),
                () = tokio::time::sleep_until(until) => self.poll_leadership(),
            }
        }
    }

    /// Without leadership reports: fails the waiters whose leadership ended.
    fn poll_leadership(&self) {
        if !self.leadership_watched {
            let l = self.raft.leadership();
            self.shared
                .with_waiters(|w, done| w.leadership_changed(l, done));
        }
    }

    fn commit_timeout_error(&self) -> KvError {
        KvError::Timeout {
            what: "the command to apply",
            waited_ms: self.config.commit_timeout.as_millis() as u64,
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

    /// [`read_view`](Self::read_view) for async callers. In [`ReadMode::ReadIndex`] the
    /// task is woken once, when the read index is confirmed and applied: the node's
    /// answer goes straight to the waiter table, and the apply loop releases the read.
    pub async fn read_view_async<T>(
        &self,
        f: impl FnOnce(&KvStateMachine) -> T,
    ) -> Result<T, KvError> {
        if self.shared.stopped.load(Ordering::Acquire) {
            return Err(KvError::Shutdown);
        }
        match self.config.read_mode {
            ReadMode::ReadIndex => {
                let (tx, rx) = oneshot::channel();
                let mut guard = ReadGuard {
                    shared: &self.shared,
                    rx: Some(rx),
                };
                let shared = Arc::downgrade(&self.shared);
                self.raft.read_index_with(
                    self.config.commit_timeout,
                    Box::new(move |r| read_index_known(&shared, r, tx)),
                );
                let rx = guard.rx.as_mut().expect("set above");
                match tokio::time::timeout(self.config.commit_timeout, rx).await {
                    Ok(Ok(Ok(()))) => guard.rx = None,
                    Ok(Ok(Err(e))) => {
                        guard.rx = None;
                        return Err(e);
                    }
                    Ok(Err(_)) => {
                        guard.rx = None;
                        return Err(KvError::Shutdown);
                    }
                    Err(_) => {
                        return Err(KvError::Timeout {
                            what: "the read index to apply",
                            waited_ms: self.config.commit_timeout.as_millis() as u64,
                        });
                    }
                }
            }
            ReadMode::Log => {
                let barrier = Command {
                    client_id: rand::random::<u64>() | 1,
                    seq: 0,
                    ts_ms: now_ms(),
                    op: Op::KeyCount,
                };
                self.submit_async(barrier).await?;
            }
        }
        Ok(self.with_state(f))
    }

    /// [`read`](Self::read) for async callers.
    pub async fn read_async(
        &self,
        key: bytes::Bytes,
        client_id: u64,
        seq: u64,
    ) -> Result<Reply, KvError> {
        match self.config.read_mode {
            ReadMode::Log => {
                self.submit_async(Command {
                    client_id,
                    seq,
                    ts_ms: now_ms(),
                    op: Op::Get { key },
                })
                .await
            }
            ReadMode::ReadIndex => {
                self.read_view_async(|sm| {
                    sm.query(&Op::Get { key }).unwrap_or(Reply::Value {
                        value: None,
                        version: 0,
                    })
                })
                .await
            }
        }
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
        let waiters = self.shared.waiters.lock();
        waiters.len() + waiters.reads_len()
    }

    /// Stops: fails every waiter and waits for the apply thread, which ends when the
    /// apply stream closes (shut the Raft node down first).
    pub fn shutdown(&self) {
        self.shared.stopped.store(true, Ordering::Release);
        self.shared
            .with_waiters(|w, done| w.fail_all(|| KvError::Shutdown, done));
        self.shared.applied_changed.notify_all();
        if let Some(t) = self.apply_thread.lock().take() {
            let _ = t.join();
        }
        self.snapshotter.wait_idle();
    }
}

/// Encodes `cmd` into a buffer sized for it up front (no regrowth on the hot path).
fn encode_command(cmd: &Command) -> Result<Vec<u8>, raftkv_storage::StorageError> {
    let mut buf = Vec::with_capacity(encoded_len_hint(&cmd.op));
    codec::encode_into(cmd, &mut buf)?;
    Ok(buf)
}

/// A little more than the encoded size of a command carrying `op`.
fn encoded_len_hint(op: &Op) -> usize {
    32 + match op {
        Op::Put { key, value } | Op::PutIf { key, value, .. } | Op::Set { key, value, .. } => {
            key.len() + value.len() + 16
        }
        Op::Batch { ops } => ops.iter().map(encoded_len_hint).sum(),
        other => other.keys().iter().map(|k| k.len() + 8).sum(),
    }
}

/// The results of a batch, every slot filled.
fn finish(results: Vec<Option<Answer>>) -> Vec<Answer> {
    results
        .into_iter()
        .map(|r| r.unwrap_or(Err(KvError::Shutdown)))
        .collect()
}

/// The node's answer to a batch proposal (possibly on the driver thread): records each
/// accepted command's slot, fails the refused ones.
fn record_proposals(
    shared: &Weak<Shared>,
    registered: &[(OpId, u64)],
    proposed: Vec<Result<(u64, u64), KvError>>,
) {
    let Some(shared) = shared.upgrade() else {
        return;
    };
    shared.with_waiters(|waiters, done| {
        let mut proposed = proposed.into_iter();
        for &(op, token) in registered {
            match proposed.next() {
                Some(Ok((index, term))) => waiters.proposed(op, token, index, term, done),
                Some(Err(e)) => waiters.fail(op, token, e, done),
                None => waiters.fail(
                    op,
                    token,
                    KvError::Consensus(
                        "the node answered fewer proposals than it was given".into(),
                    ),
                    done,
                ),
            }
        }
    });
}

/// The node's answer to a read-index request (possibly on the driver thread): the read
/// waits in the table until the index is applied.
fn read_index_known(
    shared: &Weak<Shared>,
    r: Result<u64, KvError>,
    tx: oneshot::Sender<Result<(), KvError>>,
) {
    match (r, shared.upgrade()) {
        (Ok(index), Some(shared)) => {
            shared.with_waiters(|w, done| w.wait_applied(index, Notify::Async(tx), done));
        }
        (Ok(_), None) => {
            let _ = tx.send(Err(KvError::Shutdown));
        }
        (Err(e), _) => {
            let _ = tx.send(Err(e));
        }
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
    faults: &Option<Arc<FaultPlan>>,
) {
    // Answers are sent after the locks are released.
    let mut done = Completions::default();
    for msg in applies {
        match msg {
            ApplyMsg::Command { index, term, data } => {
                let cmd = if data.is_empty() {
                    None
                } else {
                    match codec::decode::<Command>(&data, usize::MAX) {
                        Ok(cmd) => Some(cmd),
                        Err(e) => {
                            // Every replica sees the same bytes, so every replica skips
                            // it the same way; the proposer's waiter is failed by index.
                            tracing::error!(index, term, error = %e, "undecodable command skipped");
                            None
                        }
                    }
                };
                let reply = {
                    let mut sm = shared.sm.lock();
                    if index <= sm.applied_index() {
                        // Already covered by an installed snapshot.
                        continue;
                    }
                    let reply = match &cmd {
                        Some(cmd) => Some(sm.apply(index, term, cmd)),
                        None => {
                            sm.apply_noop(index, term);
                            None
                        }
                    };
                    snapshotter.maybe_snapshot(&sm);
                    reply
                };
                shared.progress.applied(index);
                // Only this thread applies, so the table learns the applied indexes in
                // order, each after the state machine reached it.
                shared.applied_changed.notify_all();
                shared.waiters.lock().applied(
                    index,
                    cmd.as_ref().map(|c| (c.client_id, c.seq)),
                    reply.as_ref(),
                    &mut done,
                );
                done.send();
            }
            ApplyMsg::Snapshot { meta, payload } => {
                let sessions = {
                    let sm = shared.sm.lock();
                    if meta.index <= sm.applied_index() {
                        continue;
                    }
                    SessionTable::new_like(sm.sessions())
                };
                if let Err(e) = fault::check(faults, "rsm.before_install_snapshot") {
                    tracing::error!(index = meta.index, error = %e, "apply loop stops");
                    break;
                }
                // Decoded without the lock: readers keep the current state meanwhile
                // (only this thread changes it).
                match KvStateMachine::read_snapshot(payload, sessions) {
                    Ok(restored) => {
                        *shared.sm.lock() = restored;
                        if let Err(e) = fault::check(faults, "rsm.after_install_snapshot") {
                            tracing::error!(index = meta.index, error = %e, "apply loop stops");
                            break;
                        }
                        shared.installed.fetch_add(1, Ordering::Relaxed);
                        shared.progress.applied(meta.index);
                        shared.applied_changed.notify_all();
                        shared
                            .waiters
                            .lock()
                            .snapshot_installed(meta.index, &mut done);
                        done.send();
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
}

/// Restores the snapshot opened at start (if any; without one, `start` already moved
/// the progress on) into `shared`, reporting progress; false if it cannot be read
/// (logged, and recorded in the progress).
fn load(
    snapshot: Option<Box<dyn SnapshotReader>>,
    sessions: SessionTable,
    shared: &Shared,
) -> bool {
    let progress = &shared.progress;
    let Some(mut reader) = snapshot else {
        return true;
    };
    {
        let meta = reader.meta();
        let restored =
            KvStateMachine::restore_with_progress(&mut *reader, sessions, &mut |done, total| {
                progress.snapshot_keys_total(total);
                progress.snapshot_keys_done(done);
            })
            .map_err(|e| e.to_string())
            .and_then(|sm| {
                if sm.applied_index() == meta.index {
                    Ok(sm)
                } else {
                    Err(format!(
                        "payload says index {} but the snapshot is at {}",
                        sm.applied_index(),
                        meta.index
                    ))
                }
            });
        match restored {
            Ok(sm) => *shared.sm.lock() = sm,
            Err(e) => {
                let reason = format!("restore kv snapshot at index {}: {e}", meta.index);
                tracing::error!(error = %reason, "loading failed; the apply loop stops");
                progress.fail(reason);
                return false;
            }
        }
        shared.applied_changed.notify_all();
        let mut done = Completions::default();
        shared
            .waiters
            .lock()
            .snapshot_installed(meta.index, &mut done);
        done.send();
    }
    progress.snapshot_restored();
    true
}

#[cfg(test)]
mod tests;
