//! The driver thread: the only owner of a node's [`RaftCore`].
//!
//! # The loop
//!
//! 1. Wait for an input or for the next tick, whichever comes first.
//! 2. Take every queued input (up to [`NodeOptions::max_batch_inputs`]) and feed it to
//!    the core: proposals, peer messages, read requests, snapshot events.
//! 3. Fire the ticks that are due.
//! 4. Drain the core's `Ready`s: send `messages`, hand `persist` to the log writer (or,
//!    with [`NodeOptions::background_writes`] off, write it here with **one**
//!    `Persister::write` and call `on_persisted`), send the `persisted_messages` once
//!    their batch is durable, start snapshot streams, queue `apply` for the apply
//!    stream and answer reads.
//!
//! # Writes in the background
//!
//! By default the batches are written by the [log writer](super::writer) thread, so
//! the driver never waits for a sync: while one batch syncs, it sends the AppendEntries
//! for the next proposals and takes the followers' answers, and a leader commits as soon
//! as a quorum has the entries durable — two followers may make that quorum before the
//! leader's own sync ends. The writer merges every batch that queued up while it was
//! syncing into one write (group commit), so the batch grows exactly when the disk is
//! the bottleneck. When a write completes, the writer wakes the driver
//! ([`Input::Persisted`]), which calls `on_persisted` for the last batch written and
//! sends the `persisted_messages` held for it (and for every earlier batch: a Ready
//! without a batch of its own holds its persisted messages behind the batches in
//! flight). Received snapshots are committed only with no batch in flight. While
//! writes are fast (they do not sync), the driver writes a batch itself when none is
//! in flight: handing it over would cost more than the write.
//!
//! A failed `Persister::write` (or snapshot commit) is fatal: the loop stops at once,
//! without sending what the write should have made durable, and every pending and
//! later request fails with [`NodeError::Stopped`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use raftkv_storage::{NodeId, Persister, SnapshotMeta, SnapshotWriter, StorageError};

use super::apply::{ApplyItem, ApplyQueue};
use super::done::Done;
use super::error::{FatalError, NodeError};
use super::writer::{Writer, Written};
use super::{NodeOptions, Shared};
use crate::transport::{SnapshotDone, SnapshotStreamError, Transport};
use crate::{Apply, Message, MessageBody, RaftCore, Role, SnapshotSend, Status};

/// Ticks fired back to back after the driver fell behind the clock (a slow write);
/// beyond that, missed ticks are skipped rather than fired in a burst.
const MAX_CATCHUP_TICKS: u32 = 5;

/// A reply slot for one blocking request.
pub(crate) type Reply<T> = SyncSender<T>;

/// Called on the driver thread with the node's status: when it subscribes, then after
/// every round in which the role, the term or the leader changed.
pub(crate) type StatusWatcher = Box<dyn FnMut(&Status) + Send>;

/// What the driver thread is asked to do.
pub(crate) enum Input {
    Propose {
        data: Vec<u8>,
        reply: Done<(u64, u64)>,
    },
    ProposeBatch {
        batch: Vec<Vec<u8>>,
        reply: Done<Vec<Result<(u64, u64), NodeError>>>,
    },
    Step(Message),
    ReadIndex {
        deadline: Instant,
        timeout: Duration,
        reply: Done<u64>,
    },
    TransferLeadership {
        to: NodeId,
        reply: Done<()>,
    },
    WatchStatus(StatusWatcher),
    SnapshotTaken(SnapshotMeta),
    SnapshotOffer {
        from: NodeId,
        term: u64,
        meta: SnapshotMeta,
        reply: Reply<bool>,
    },
    InstallSnapshot {
        from: NodeId,
        term: u64,
        meta: SnapshotMeta,
        writer: Box<dyn SnapshotWriter>,
        reply: Reply<Result<(), SnapshotStreamError>>,
    },
    SnapshotSendDone {
        to: NodeId,
        result: Result<(), SnapshotStreamError>,
    },
    /// The apply stream's consumer made room.
    ApplySpace,
    /// The log writer finished a write (or failed).
    Persisted,
    Shutdown,
}

impl Input {
    /// Answers the request, if it is one, with "node `id` stopped".
    pub(crate) fn refuse(self, id: NodeId, cause: &Option<Arc<FatalError>>) {
        let stopped = || NodeError::Stopped {
            id,
            cause: cause.clone(),
        };
        // A requester that gave up no longer listens; nothing to do then.
        match self {
            Self::Propose { reply, .. } => reply.complete(Err(stopped())),
            Self::ProposeBatch { reply, .. } => reply.complete(Err(stopped())),
            Self::ReadIndex { reply, .. } => reply.complete(Err(stopped())),
            Self::TransferLeadership { reply, .. } => reply.complete(Err(stopped())),
            Self::SnapshotOffer { reply, .. } => {
                let _ = reply.send(false);
            }
            Self::InstallSnapshot { reply, .. } => {
                let _ = reply.send(Err(SnapshotStreamError::Stopped { id }));
            }
            Self::Step(_)
            | Self::SnapshotTaken(_)
            | Self::SnapshotSendDone { .. }
            | Self::ApplySpace
            | Self::Persisted
            | Self::WatchStatus(_)
            | Self::Shutdown => {}
        }
    }
}

struct PendingRead {
    term: u64,
    deadline: Instant,
    timeout: Duration,
    reply: Done<u64>,
}

enum Flow {
    Continue,
    Exit,
}

/// The state of the driver thread.
pub(crate) struct Driver {
    id: NodeId,
    core: RaftCore,
    persister: Arc<dyn Persister>,
    transport: Arc<dyn Transport>,
    shared: Arc<Shared>,
    inbox: Receiver<Input>,
    /// For snapshot-stream outcomes.
    self_tx: Sender<Input>,
    apply: ApplyQueue,
    /// Index of the last item queued for the apply stream (order check).
    last_apply_index: u64,
    tick: Duration,
    next_tick: Instant,
    max_batch_inputs: usize,
    max_apply_backlog: usize,
    reads: HashMap<u64, PendingRead>,
    next_read_ctx: u64,
    snapshots_in_flight: HashSet<NodeId>,
    last_role: Role,
    last_term: u64,
    last_leader: Option<NodeId>,
    watchers: Vec<StatusWatcher>,
    /// The log writer thread; `None`: writes on this thread.
    writer: Option<Writer>,
    /// The last persist id given to `on_persisted`.
    acked: u64,
    /// Since when a batch is in flight (roughly: reset on each write that completes).
    write_since: Option<Instant>,
    /// A write in flight this long makes the driver wait for it (the election timeout).
    write_stall_limit: Duration,
    /// Persisted messages waiting for the batch with this id (and every earlier one).
    held: VecDeque<(u64, Vec<Message>)>,
}

impl Driver {
    #[allow(
        clippy::too_many_arguments,
        reason = "internal constructor, called once"
    )]
    pub(crate) fn new(
        core: RaftCore,
        persister: Arc<dyn Persister>,
        transport: Arc<dyn Transport>,
        shared: Arc<Shared>,
        inbox: Receiver<Input>,
        self_tx: Sender<Input>,
        apply: ApplyQueue,
        last_apply_index: u64,
        options: &NodeOptions,
        writer: Option<(Writer, Duration)>,
    ) -> Self {
        let status = core.status();
        let (writer, write_stall_limit) = match writer {
            Some((w, limit)) => (Some(w), limit),
            None => (None, Duration::MAX),
        };
        Self {
            id: status.id,
            core,
            persister,
            transport,
            shared,
            inbox,
            self_tx,
            apply,
            last_apply_index,
            tick: options.tick,
            next_tick: Instant::now() + options.tick,
            max_batch_inputs: options.max_batch_inputs.max(1),
            max_apply_backlog: options.max_apply_backlog,
            reads: HashMap::new(),
            next_read_ctx: 1,
            snapshots_in_flight: HashSet::new(),
            last_role: status.role,
            last_term: status.term,
            last_leader: status.leader,
            watchers: Vec::new(),
            writer,
            acked: 0,
            write_since: None,
            write_stall_limit,
            held: VecDeque::new(),
        }
    }

    /// Runs the loop until shutdown or a fatal error, then refuses everything still
    /// queued.
    pub(crate) fn run(mut self) {
        tracing::info!(node = self.id, "raft node started");
        let outcome = self.run_loop();
        let fatal = match outcome {
            Ok(()) => None,
            Err(fatal) => {
                tracing::error!(node = self.id, error = %fatal, "raft node stopped on a fatal error");
                let fatal = Arc::new(fatal);
                // Only the driver sets it, once.
                let _ = self.shared.fatal.set(Arc::clone(&fatal));
                Some(fatal)
            }
        };
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.publish_status();
        for (_, read) in self.reads.drain() {
            read.reply.complete(Err(NodeError::Stopped {
                id: self.id,
                cause: fatal.clone(),
            }));
        }
        while let Ok(input) = self.inbox.try_recv() {
            input.refuse(self.id, &fatal);
        }
        // Let the writer finish what it has (a restart must not race it).
        drop(self.writer.take());
        if fatal.is_none() {
            tracing::info!(node = self.id, "raft node shut down");
        }
    }

    fn run_loop(&mut self) -> Result<(), FatalError> {
        loop {
            if self.shared.stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            let now = Instant::now();
            let mut next = if self.next_tick <= now {
                self.inbox.try_recv().ok()
            } else {
                match self.inbox.recv_timeout(self.next_tick - now) {
                    Ok(input) => Some(input),
                    Err(RecvTimeoutError::Timeout) => None,
                    // Cannot happen while `shared` holds a sender; treat as shutdown.
                    Err(RecvTimeoutError::Disconnected) => return Ok(()),
                }
            };
            let mut taken = 0;
            while let Some(input) = next {
                if let Flow::Exit = self.handle(input)? {
                    return Ok(());
                }
                taken += 1;
                next = if taken < self.max_batch_inputs {
                    self.inbox.try_recv().ok()
                } else {
                    None
                };
            }
            if self
                .write_since
                .is_some_and(|t| t.elapsed() >= self.write_stall_limit)
            {
                // The disk stalls: stop here, as a synchronous writer would, rather than
                // lead (heartbeat) without being able to apply.
                tracing::warn!(
                    node = self.id,
                    "a log write is taking longer than the election timeout; waiting for it"
                );
                self.absorb_writes(true)?;
            }
            self.fire_due_ticks();
            self.process_ready()?;
            self.apply.flush();
            self.after_round();
        }
    }

    fn handle(&mut self, input: Input) -> Result<Flow, FatalError> {
        match input {
            Input::Propose { data, reply } => {
                let r = self.propose(data);
                reply.complete(r);
            }
            Input::ProposeBatch { batch, reply } => {
                let r = batch.into_iter().map(|d| self.propose(d)).collect();
                reply.complete(Ok(r));
            }
            Input::Step(msg) => {
                self.shared.inbox_messages.fetch_sub(1, Ordering::Relaxed);
                self.core.step(msg);
            }
            Input::ReadIndex {
                deadline,
                timeout,
                reply,
            } => {
                let ctx = self.next_read_ctx;
                self.next_read_ctx += 1;
                match self.core.read_index(ctx) {
                    Ok(()) => {
                        let term = self.core.status().term;
                        self.reads.insert(
                            ctx,
                            PendingRead {
                                term,
                                deadline,
                                timeout,
                                reply,
                            },
                        );
                    }
                    Err(e) => reply.complete(Err(NodeError::Rejected(e))),
                }
            }
            Input::TransferLeadership { to, reply } => {
                let r = self
                    .core
                    .transfer_leadership(to)
                    .map_err(NodeError::Rejected);
                reply.complete(r);
            }
            Input::WatchStatus(mut watcher) => {
                watcher(&self.core.status());
                self.watchers.push(watcher);
            }
            Input::SnapshotTaken(meta) => self.snapshot_taken(meta),
            Input::SnapshotOffer {
                from,
                term,
                meta,
                reply,
            } => {
                let accepted = self.core.snapshot_offer(from, term, meta);
                let _ = reply.send(accepted);
            }
            Input::InstallSnapshot {
                from,
                term,
                meta,
                writer,
                reply,
            } => {
                let r = self.install_snapshot(from, term, meta, writer);
                match r {
                    Ok(outcome) => {
                        let _ = reply.send(outcome);
                    }
                    Err(fatal) => {
                        let _ = reply.send(Err(SnapshotStreamError::Stopped { id: self.id }));
                        return Err(fatal);
                    }
                }
            }
            Input::SnapshotSendDone { to, result } => {
                self.snapshots_in_flight.remove(&to);
                if let Err(e) = result {
                    tracing::warn!(node = self.id, to, error = %e, "snapshot stream failed");
                    self.core.snapshot_send_failed(to);
                }
            }
            Input::ApplySpace => {}
            Input::Persisted => self.absorb_writes(false)?,
            Input::Shutdown => return Ok(Flow::Exit),
        }
        Ok(Flow::Continue)
    }

    fn propose(&mut self, data: Vec<u8>) -> Result<(u64, u64), NodeError> {
        let backlog = self.apply.backlog();
        if backlog >= self.max_apply_backlog {
            return Err(NodeError::Overloaded { backlog });
        }
        self.core.propose(data).map_err(NodeError::Rejected)
    }

    fn snapshot_taken(&mut self, meta: SnapshotMeta) {
        self.core.snapshot_taken(meta);
        // Reclaim the log space the snapshot made redundant. Best effort: the entries
        // are already logically gone, and a failure here loses nothing.
        let through = match self.persister.snapshot_meta() {
            Some(current) => current.index.min(meta.index),
            None => return,
        };
        if let Err(e) = self.persister.compact(through) {
            tracing::warn!(node = self.id, through, error = %e, "log compaction failed");
        }
    }

    /// Commits a received snapshot and steps it into the core, with nothing in between:
    /// the offer is re-checked right before the commit so that the core accepts the
    /// `InstallSnapshot` it is about to get, and the persister and the core's log move
    /// together.
    fn install_snapshot(
        &mut self,
        from: NodeId,
        term: u64,
        meta: SnapshotMeta,
        writer: Box<dyn SnapshotWriter>,
    ) -> Result<Result<(), SnapshotStreamError>, FatalError> {
        // Make everything the core produced so far durable first, so that the commit
        // does not interleave with a half-processed Ready or a write in flight.
        self.process_ready()?;
        while self
            .writer
            .as_ref()
            .is_some_and(|w| w.submitted() > self.acked)
        {
            self.absorb_writes(true)?;
            self.process_ready()?;
        }
        if !self.core.snapshot_offer(from, term, meta) {
            return Ok(Err(SnapshotStreamError::Rejected { meta }));
        }
        match writer.commit() {
            Ok(info) => {
                tracing::info!(
                    node = self.id,
                    from,
                    index = meta.index,
                    term = meta.term,
                    bytes = info.uncompressed_bytes,
                    "installed snapshot"
                );
                self.core.step(Message {
                    from,
                    to: self.id,
                    term,
                    body: MessageBody::InstallSnapshot { meta },
                });
                Ok(Ok(()))
            }
            // Rejected before anything was written; the persister is not poisoned.
            Err(e @ StorageError::StaleSnapshot { .. }) => {
                tracing::warn!(node = self.id, from, index = meta.index, error = %e, "received snapshot is stale");
                Ok(Err(SnapshotStreamError::Storage(e)))
            }
            Err(source) => Err(FatalError::SnapshotCommit { meta, source }),
        }
    }

    fn fire_due_ticks(&mut self) {
        let now = Instant::now();
        let mut fired = 0;
        while self.next_tick <= now && fired < MAX_CATCHUP_TICKS {
            self.core.tick();
            self.next_tick += self.tick;
            fired += 1;
        }
        if self.next_tick <= now {
            self.next_tick = now + self.tick;
        }
        if fired > 0 && !self.reads.is_empty() {
            let expired: Vec<u64> = self
                .reads
                .iter()
                .filter(|(_, r)| r.deadline <= now)
                .map(|(&ctx, _)| ctx)
                .collect();
            for ctx in expired {
                if let Some(read) = self.reads.remove(&ctx) {
                    read.reply.complete(Err(NodeError::Timeout {
                        id: self.id,
                        op: "read_index",
                        after: read.timeout,
                    }));
                }
            }
        }
    }

    /// Drains and executes every pending `Ready`.
    fn process_ready(&mut self) -> Result<(), FatalError> {
        while self.core.has_ready() {
            let ready = self.core.ready();
            for msg in ready.messages {
                self.transport.send(msg);
            }
            match &mut self.writer {
                Some(writer) => {
                    if let Some(persist) = ready.persist {
                        if writer.prefers_inline(self.acked) {
                            writer
                                .write_inline(&*self.persister, persist.id, &persist.batch)
                                .map_err(FatalError::Persist)?;
                            self.acked = persist.id;
                            self.core.on_persisted(persist.id);
                        } else {
                            writer.submit(persist.id, persist.batch);
                            self.write_since.get_or_insert_with(Instant::now);
                        }
                    }
                    let pending = writer.submitted();
                    if pending > self.acked && !ready.persisted_messages.is_empty() {
                        self.held.push_back((pending, ready.persisted_messages));
                    } else {
                        for msg in ready.persisted_messages {
                            self.transport.send(msg);
                        }
                    }
                }
                None => {
                    if let Some(persist) = ready.persist {
                        if !persist.batch.is_empty() {
                            self.persister
                                .write(&persist.batch)
                                .map_err(FatalError::Persist)?;
                        }
                        self.core.on_persisted(persist.id);
                    }
                    for msg in ready.persisted_messages {
                        self.transport.send(msg);
                    }
                }
            }
            for send in ready.snapshot_sends {
                self.start_snapshot_send(send);
            }
            for apply in ready.apply {
                self.queue_apply(apply)?;
            }
            for rs in ready.read_states {
                if let Some(read) = self.reads.remove(&rs.ctx) {
                    read.reply.complete(Ok(rs.index));
                }
            }
        }
        Ok(())
    }

    /// Takes the log writer's progress (waiting for every batch in flight if `all`):
    /// tells the core what became durable and sends the messages held for it. A failed
    /// write is fatal.
    fn absorb_writes(&mut self, all: bool) -> Result<(), FatalError> {
        let Some(writer) = &self.writer else {
            return Ok(());
        };
        let durable = match if all {
            writer.wait_all()
        } else {
            writer.poll()
        } {
            Written::Durable(id) => id,
            Written::Failed(e) => return Err(FatalError::Persist(e)),
        };
        if all && durable < writer.submitted() {
            return Err(self.invariant(format!(
                "the log writer stopped with batch {} of {} durable",
                durable,
                writer.submitted()
            )));
        }
        self.write_since = (durable < writer.submitted()).then(Instant::now);
        if durable > self.acked {
            self.acked = durable;
            self.core.on_persisted(durable);
            while self.held.front().is_some_and(|&(id, _)| id <= durable) {
                if let Some((_, msgs)) = self.held.pop_front() {
                    for msg in msgs {
                        self.transport.send(msg);
                    }
                }
            }
        }
        Ok(())
    }

    fn queue_apply(&mut self, apply: Apply) -> Result<(), FatalError> {
        match apply {
            Apply::Command { index, term, data } => {
                if index != self.last_apply_index + 1 {
                    return Err(self.invariant(format!(
                        "core applied index {index} right after {}",
                        self.last_apply_index
                    )));
                }
                self.last_apply_index = index;
                self.apply.push(ApplyItem::Command { index, term, data });
            }
            Apply::Snapshot { meta } => {
                if meta.index <= self.last_apply_index {
                    return Err(self.invariant(format!(
                        "core applied a snapshot at index {} after index {}",
                        meta.index, self.last_apply_index
                    )));
                }
                let reader = self
                    .persister
                    .open_snapshot()
                    .map_err(|source| FatalError::SnapshotOpen { meta, source })?;
                match reader {
                    Some(reader) if reader.meta() == meta => {
                        self.last_apply_index = meta.index;
                        self.apply.push(ApplyItem::Snapshot {
                            index: meta.index,
                            term: meta.term,
                            data: reader,
                        });
                    }
                    other => {
                        return Err(self.invariant(format!(
                            "core applied the snapshot {meta:?} but the persister holds {:?}",
                            other.map(|r| r.meta())
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    fn start_snapshot_send(&mut self, send: SnapshotSend) {
        let SnapshotSend { to, term, meta } = send;
        if !self.snapshots_in_flight.insert(to) {
            // The stream already running reports its own outcome; the core re-offers
            // after snapshot_retry_ticks if it fails.
            tracing::debug!(
                node = self.id,
                to,
                "a snapshot stream to this peer is running"
            );
            return;
        }
        let reader = match self.persister.open_snapshot() {
            Ok(Some(reader)) => reader,
            Ok(None) => {
                tracing::warn!(
                    node = self.id,
                    to,
                    ?meta,
                    "core asked to send a snapshot but the persister has none"
                );
                self.snapshots_in_flight.remove(&to);
                self.core.snapshot_send_failed(to);
                return;
            }
            Err(e) => {
                tracing::warn!(node = self.id, to, error = %e, "cannot open the snapshot to send");
                self.snapshots_in_flight.remove(&to);
                self.core.snapshot_send_failed(to);
                return;
            }
        };
        let current = reader.meta();
        if current != meta {
            // The service committed a newer snapshot and its snapshot_taken is still
            // queued: the newer one is as good (it is committed state too).
            tracing::debug!(
                node = self.id,
                to,
                ?meta,
                ?current,
                "sending the persister's current snapshot"
            );
        }
        let tx = self.self_tx.clone();
        let done = SnapshotDone::new(move |result| {
            // The node may have stopped meanwhile; then nobody needs the outcome.
            let _ = tx.send(Input::SnapshotSendDone { to, result });
        });
        tracing::debug!(
            node = self.id,
            to,
            index = current.index,
            "streaming snapshot"
        );
        self.transport
            .send_snapshot(to, term, current, self.id, reader, done);
    }

    /// Publishes the status and fails reads that can no longer complete.
    fn after_round(&mut self) {
        let status = self.publish_status();
        if status.role != self.last_role
            || status.term != self.last_term
            || status.leader != self.last_leader
        {
            tracing::debug!(
                node = self.id,
                role = ?status.role,
                term = status.term,
                leader = ?status.leader,
                "role, term or leader changed"
            );
            self.last_role = status.role;
            self.last_term = status.term;
            self.last_leader = status.leader;
            for watcher in &mut self.watchers {
                watcher(&status);
            }
        }
        if !self.reads.is_empty() {
            let leader = status.role == Role::Leader;
            let lost: Vec<u64> = self
                .reads
                .iter()
                .filter(|(_, read)| !leader || read.term != status.term)
                .map(|(&ctx, _)| ctx)
                .collect();
            for ctx in lost {
                if let Some(read) = self.reads.remove(&ctx) {
                    read.reply.complete(Err(NodeError::LeadershipLost {
                        term: status.term,
                        leader_hint: status.leader,
                    }));
                }
            }
        }
    }

    fn publish_status(&self) -> Status {
        let status = self.core.status();
        *self
            .shared
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = status.clone();
        status
    }

    fn invariant(&self, detail: String) -> FatalError {
        FatalError::Invariant {
            id: self.id,
            detail,
        }
    }
}
