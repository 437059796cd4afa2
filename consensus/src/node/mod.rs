//! The node runtime: drives an IO-free [`RaftCore`] with a real clock, a
//! [`Persister`] and a [`Transport`], on a thread of its own.
//!
//! ```text
//!  proposers ──propose──┐                          ┌──▶ Transport::send / send_snapshot
//!  transport ──receive──┼──▶ inbox ──▶ driver ─────┼──▶ log writer ──▶ Persister::write
//!  clock ───────tick────┘     (RaftCore owner)     └──▶ ApplyStream (bounded, ordered)
//! ```
//!
//! * [`Node::start`] recovers the core from the persister and starts the driver thread
//!   (and the log writer's). The driver's loop takes every queued input, then drains
//!   the core's `Ready`s: messages out, the batch to persist to the log writer, which
//!   writes everything that queued up during its previous sync with **one**
//!   `Persister::write` (group commit) and wakes the driver; then `on_persisted`, then
//!   the messages that needed durability. The driver goes on replicating while a write
//!   syncs. A write in flight for longer than the election timeout makes the driver
//!   wait for it, as a driver writing synchronously would: a leader whose disk stalls
//!   loses its leadership rather than keep it without being able to apply.
//!   ([`NodeOptions::background_writes`] off: the driver writes each `Ready` itself.)
//! * [`NodeHandle`] is the cheap, cloneable way in: proposals, reads, status,
//!   leadership transfer, snapshot notifications, incoming messages and snapshot
//!   streams, and [`shutdown`](NodeHandle::shutdown).
//! * [`ApplyStream`] delivers committed commands and snapshots in index order, exactly
//!   once per node instance, without ever blocking the driver.
//!
//! # Snapshots
//!
//! *Taken by the service:* the service writes a snapshot into the persister
//! (`begin_snapshot` … `commit`), then calls [`NodeHandle::snapshot_taken`]; the core
//! drops its log up to there and the runtime compacts the persister.
//!
//! *Sent by a leader:* when the core asks for it, the runtime opens the persister's
//! current snapshot and hands it to [`Transport::send_snapshot`], which streams it in
//! bounded chunks on another thread; a failed stream is reported back to the core
//! (`snapshot_send_failed`), which retries later.
//!
//! *Received by a follower:* the transport calls [`NodeHandle::receive_snapshot`] on a
//! thread of its own. The core is asked first (`snapshot_offer`); if it declines, the
//! stream is dropped. Otherwise the chunks are written into `persister.begin_snapshot`
//! on the receiving thread (the driver keeps ticking meanwhile), and the finished
//! writer goes to the driver, which re-checks the offer, commits the snapshot and steps
//! `InstallSnapshot` into the core with nothing in between. The core then emits
//! `Apply::Snapshot`, which reaches the apply stream as [`ApplyItem::Snapshot`] with a
//! reader opened from the persister.

mod apply;
mod done;
mod driver;
mod error;
mod writer;

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use raftkv_storage::{NodeId, Persister, SnapshotMeta, StorageError};

use crate::transport::{SnapshotStreamError, Transport};
use crate::{Config, Message, RaftCore, Status};

pub use apply::{ApplyItem, ApplyStream};
pub use error::{FatalError, NodeError};

use apply::ApplyQueue;
use done::Done;
use driver::{Driver, Input};

/// Runtime settings of a node (the Raft protocol settings are in [`Config`]).
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// The real-time length of one core tick. Default 10 ms.
    pub tick: Duration,
    /// Seed of the core's RNG (election timeouts).
    pub seed: u64,
    /// Items the apply channel holds before the driver keeps them in its own queue.
    /// Default 4096.
    pub apply_capacity: usize,
    /// Proposals are refused with [`NodeError::Overloaded`] while more than this many
    /// applied items wait behind a full apply channel. Default 262 144.
    pub max_apply_backlog: usize,
    /// Peer messages queued for the driver beyond which new ones are dropped (Raft
    /// recovers from loss; a flood must not grow memory without bound). Default 65 536.
    pub max_inbox_messages: usize,
    /// Inputs the driver takes before it processes the core's output. Default 8192.
    pub max_batch_inputs: usize,
    /// How long a request waits for the driver thread before
    /// [`NodeError::Timeout`] (the request may still take effect). Default 10 s.
    pub request_timeout: Duration,
    /// How long [`NodeHandle::shutdown`] waits for the driver thread. Default 5 s.
    pub shutdown_timeout: Duration,
    /// Write the log on a thread of its own, so that the driver keeps replicating and
    /// committing while a write syncs (see the driver's docs). Off: the driver writes
    /// each `Ready` itself before it goes on. Default on.
    pub background_writes: bool,
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self {
            tick: Duration::from_millis(10),
            seed: 0,
            apply_capacity: 4096,
            max_apply_backlog: 1 << 18,
            max_inbox_messages: 1 << 16,
            max_batch_inputs: 8192,
            request_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(5),
            background_writes: true,
        }
    }
}

impl NodeOptions {
    /// Defaults with the given RNG seed.
    pub fn with_seed(seed: u64) -> Self {
        Self {
            seed,
            ..Self::default()
        }
    }
}

/// Starts nodes. See [`Node::start`].
#[derive(Debug)]
pub enum Node {}

impl Node {
    /// Recovers a node from `persister` and starts its driver thread.
    ///
    /// Returns the handle and the apply stream. If the persister holds a snapshot, the
    /// stream starts with it (as [`ApplyItem::Snapshot`]), followed by the recovered
    /// committed commands: a consumer that starts from an empty state machine and
    /// applies the stream in order ends up with the node's state.
    pub fn start(
        config: Config,
        persister: Arc<dyn Persister>,
        transport: Arc<dyn Transport>,
        options: NodeOptions,
    ) -> Result<(NodeHandle, ApplyStream), NodeError> {
        config.validate()?;
        let id = config.id;
        let recovered = persister.recover().map_err(NodeError::Recover)?;
        let write_stall_limit = options.tick * config.election_ticks;
        let core = RaftCore::new(config, &recovered, options.seed)?;
        let (inbox_tx, inbox_rx) = mpsc::channel();
        let (mut apply, stream) = ApplyQueue::new(options.apply_capacity, inbox_tx.clone());
        let mut first_apply = 0;
        if let Some(meta) = recovered.snapshot {
            let reader = persister
                .open_snapshot()
                .map_err(NodeError::Recover)?
                .filter(|r| r.meta() == meta)
                .ok_or_else(|| {
                    NodeError::Recover(StorageError::InvalidArgument {
                        op: "open_snapshot",
                        detail: format!(
                            "recovery reported the snapshot {meta:?} but it cannot be opened"
                        ),
                    })
                })?;
            apply.push(ApplyItem::Snapshot {
                index: meta.index,
                term: meta.term,
                data: reader,
            });
            first_apply = meta.index;
        }
        let shared = Arc::new(Shared {
            id,
            inbox: inbox_tx.clone(),
            inbox_messages: AtomicUsize::new(0),
            dropped_messages: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            fatal: OnceLock::new(),
            status: Mutex::new(core.status()),
            exited: Mutex::new(false),
            exited_cv: Condvar::new(),
            thread: Mutex::new(None),
            persister: Arc::clone(&persister),
            options: options.clone(),
        });
        let writer = if options.background_writes {
            let w = writer::Writer::start(id, Arc::clone(&persister), inbox_tx.clone())
                .map_err(NodeError::Spawn)?;
            Some((w, write_stall_limit))
        } else {
            None
        };
        let driver = Driver::new(
            core,
            persister,
            transport,
            Arc::clone(&shared),
            inbox_rx,
            inbox_tx,
            apply,
            first_apply,
            &options,
            writer,
        );
        let guard_shared = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name(format!("raft-node-{id}"))
            .spawn(move || {
                let _exit = ExitGuard(guard_shared);
                driver.run();
            })
            .map_err(NodeError::Spawn)?;
        *lock(&shared.thread) = Some(thread);
        let handle = NodeHandle {
            inner: Arc::new(HandleInner { shared }),
        };
        Ok((handle, stream))
    }
}

/// State shared by the handles and the driver thread.
pub(crate) struct Shared {
    id: NodeId,
    inbox: Sender<Input>,
    /// Peer messages queued in `inbox`.
    inbox_messages: AtomicUsize,
    dropped_messages: AtomicU64,
    /// Shutdown requested.
    stop: AtomicBool,
    /// The driver no longer takes requests.
    stopped: AtomicBool,
    fatal: OnceLock<Arc<FatalError>>,
    status: Mutex<Status>,
    exited: Mutex<bool>,
    exited_cv: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
    persister: Arc<dyn Persister>,
    options: NodeOptions,
}

impl Shared {
    fn stopped_error(&self) -> NodeError {
        NodeError::Stopped {
            id: self.id,
            cause: self.fatal.get().cloned(),
        }
    }

    fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        // The driver may be gone already.
        let _ = self.inbox.send(Input::Shutdown);
    }
}

/// Marks the driver as exited when its thread ends, normally or by a panic.
struct ExitGuard(Arc<Shared>);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        let shared = &self.0;
        if thread::panicking() {
            tracing::error!(node = shared.id, "raft driver thread panicked");
            let _ = shared
                .fatal
                .set(Arc::new(FatalError::Panicked { id: shared.id }));
        }
        shared.stopped.store(true, Ordering::SeqCst);
        *lock(&shared.exited) = true;
        shared.exited_cv.notify_all();
    }
}

/// `n` copies of `e` (the first is `e` itself), one per entry of a batch refused as a
/// whole. Only `Stopped` and `Timeout` refuse a whole batch.
fn copies(e: NodeError, n: usize) -> Vec<Result<(u64, u64), NodeError>> {
    let mut out = Vec::with_capacity(n);
    if n == 0 {
        return out;
    }
    for _ in 1..n {
        out.push(Err(match &e {
            NodeError::Timeout { id, op, after } => NodeError::Timeout {
                id: *id,
                op,
                after: *after,
            },
            NodeError::Stopped { id, cause } => NodeError::Stopped {
                id: *id,
                cause: cause.clone(),
            },
            other => NodeError::Stopped {
                id: 0,
                cause: Some(Arc::new(FatalError::Invariant {
                    id: 0,
                    detail: format!("batch refused: {other}"),
                })),
            },
        }));
    }
    out.insert(0, Err(e));
    out
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

struct HandleInner {
    shared: Arc<Shared>,
}

impl Drop for HandleInner {
    /// The last handle is gone: nobody can talk to the node any more, so stop it
    /// (without waiting).
    fn drop(&mut self) {
        self.shared.request_stop();
    }
}

/// A cloneable handle to a running node. Dropping the last clone stops the node.
#[derive(Clone)]
pub struct NodeHandle {
    inner: Arc<HandleInner>,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle")
            .field("id", &self.shared().id)
            .field("running", &self.is_running())
            .finish()
    }
}

impl NodeHandle {
    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.shared().id
    }

    /// Sends `input` built around a fresh completion and waits (at most
    /// [`NodeOptions::request_timeout`]) for the answer.
    fn call<T: Send + 'static>(
        &self,
        op: &'static str,
        make: impl FnOnce(Done<T>) -> Input,
    ) -> Result<T, NodeError> {
        let (tx, rx) = sync_channel(1);
        self.send_request(make(self.done(move |r| {
            let _ = tx.send(r);
        })));
        self.wait(op, &rx, self.shared().options.request_timeout)?
    }

    fn done<T>(&self, f: impl FnOnce(Result<T, NodeError>) + Send + 'static) -> Done<T> {
        Done::new(self.shared().id, f)
    }

    /// Hands a request carrying a [`Done`] to the driver. On a stopped node the request
    /// is refused at once, on this thread (its completion runs here).
    fn send_request(&self, input: Input) {
        let shared = self.shared();
        if shared.stopped.load(Ordering::SeqCst) {
            input.refuse(shared.id, &shared.fatal.get().cloned());
            return;
        }
        if let Err(mpsc::SendError(input)) = shared.inbox.send(input) {
            input.refuse(shared.id, &shared.fatal.get().cloned());
        }
    }

    fn wait<T>(
        &self,
        op: &'static str,
        rx: &Receiver<T>,
        timeout: Duration,
    ) -> Result<T, NodeError> {
        match rx.recv_timeout(timeout) {
            Ok(v) => Ok(v),
            Err(RecvTimeoutError::Disconnected) => Err(self.shared().stopped_error()),
            Err(RecvTimeoutError::Timeout) => Err(NodeError::Timeout {
                id: self.id(),
                op,
                after: timeout,
            }),
        }
    }

    /// Proposes `data` for the log. On the leader, returns the index and term it will
    /// have if it commits (watch the apply stream for that index); elsewhere fails
    /// fast with `NotLeader` and a hint (see [`NodeError::leader_hint`]).
    ///
    /// Returns once the driver has appended the entry, not when it is durable or
    /// committed, so one caller can keep many proposals in flight.
    pub fn propose(&self, data: Vec<u8>) -> Result<(u64, u64), NodeError> {
        self.call("propose", |reply| Input::Propose { data, reply })
    }

    /// Proposes many entries with one round trip to the driver: the entries get
    /// consecutive indexes and one result each, in order.
    pub fn propose_batch(&self, batch: Vec<Vec<u8>>) -> Vec<Result<(u64, u64), NodeError>> {
        let n = batch.len();
        match self.call("propose", |reply| Input::ProposeBatch { batch, reply }) {
            Ok(results) => results,
            Err(e) => copies(e, n),
        }
    }

    /// [`propose_batch`](Self::propose_batch) without waiting: `on_proposed` gets the
    /// results (one per entry, in order) instead.
    ///
    /// `on_proposed` is called exactly once: normally on the driver thread, right after
    /// the entries were appended (or refused), in the same round — before anything of
    /// that round is persisted, sent or applied, so before any of the entries can
    /// appear on the apply stream; on the calling thread, before this returns, if the
    /// node is already stopped; or with [`NodeError::Stopped`] on whichever thread
    /// drops the request if the node stops with it still queued. It runs on the driver
    /// thread, so it must be quick and must never block (record the results, send on a
    /// channel, wake a task), and it must not take a lock the caller holds while
    /// calling this method. There is no timeout: the node answers or stops.
    pub fn propose_batch_with(
        &self,
        batch: Vec<Vec<u8>>,
        on_proposed: impl FnOnce(Vec<Result<(u64, u64), NodeError>>) + Send + 'static,
    ) {
        let n = batch.len();
        let reply = self.done(move |r| {
            on_proposed(match r {
                Ok(results) => results,
                Err(e) => copies(e, n),
            });
        });
        self.send_request(Input::ProposeBatch { batch, reply });
    }

    /// Asks the leader for a read index (Raft thesis §6.4, ReadIndex): once the state
    /// machine has applied the returned index, a read of it is linearizable. Waits up
    /// to `timeout` for a heartbeat quorum to confirm the leadership; fails with
    /// [`NodeError::LeadershipLost`] if the leadership ends first, and fast with
    /// `NotLeader` on a follower.
    pub fn read_index(&self, timeout: Duration) -> Result<u64, NodeError> {
        let (tx, rx) = sync_channel(1);
        self.read_index_with(timeout, move |r| {
            let _ = tx.send(r);
        });
        // The driver answers with a timeout itself at the deadline (on its next tick);
        // the margin covers a driver that is stuck in a slow write.
        self.wait("read_index", &rx, timeout + self.shared().options.tick * 2)?
    }

    /// [`read_index`](Self::read_index) without waiting: `on_read` gets the read index,
    /// or why there is none — `NotLeader` at once on a follower,
    /// [`NodeError::LeadershipLost`] if the leadership ends first, or
    /// [`NodeError::Timeout`] once `timeout` has passed (checked on the driver's
    /// ticks, so up to one tick late).
    ///
    /// `on_read` is called exactly once, under the same rules as
    /// [`propose_batch_with`](Self::propose_batch_with)'s callback: on the driver
    /// thread, quick and non-blocking.
    pub fn read_index_with(
        &self,
        timeout: Duration,
        on_read: impl FnOnce(Result<u64, NodeError>) + Send + 'static,
    ) {
        let reply = self.done(on_read);
        self.send_request(Input::ReadIndex {
            deadline: Instant::now() + timeout,
            timeout,
            reply,
        });
    }

    /// Subscribes `watcher` to the node's role, term and leader: the driver calls it
    /// with the current status when it takes the subscription, then after every round
    /// in which any of the three changed, in order, until the node stops. A watcher
    /// sees every leadership the node held (it is never skipped over one), and a
    /// proposal accepted in some term is answered before the watcher learns that the
    /// term ended.
    ///
    /// It runs on the driver thread: quick and non-blocking, like the callback of
    /// [`propose_batch_with`](Self::propose_batch_with). On a stopped node it is
    /// dropped without a call.
    pub fn watch_status(&self, watcher: impl FnMut(&Status) + Send + 'static) {
        let shared = self.shared();
        if !shared.stopped.load(Ordering::SeqCst) {
            let _ = shared.inbox.send(Input::WatchStatus(Box::new(watcher)));
        }
    }

    /// The core's status as of the driver's last round (frozen once the node stopped:
    /// check [`is_running`](Self::is_running)). `applied` counts what the driver handed
    /// to the apply stream, not what the consumer took.
    pub fn status(&self) -> Status {
        lock(&self.shared().status).clone()
    }

    /// Asks the leader to hand leadership to `to`.
    pub fn transfer_leadership(&self, to: NodeId) -> Result<(), NodeError> {
        self.call("transfer_leadership", |reply| Input::TransferLeadership {
            to,
            reply,
        })
    }

    /// Tells the node that the service committed a snapshot at `meta` into the
    /// persister. The core drops its log through `meta.index`, and the persister's log
    /// space is reclaimed.
    pub fn snapshot_taken(&self, meta: SnapshotMeta) -> Result<(), NodeError> {
        let shared = self.shared();
        if shared.stopped.load(Ordering::SeqCst)
            || shared.inbox.send(Input::SnapshotTaken(meta)).is_err()
        {
            return Err(shared.stopped_error());
        }
        Ok(())
    }

    /// Delivers a message from a peer. Never blocks; the message is dropped if the
    /// node is stopped or too many messages are already queued.
    pub fn receive(&self, msg: Message) {
        let shared = self.shared();
        let max = shared.options.max_inbox_messages;
        if shared.stopped.load(Ordering::Relaxed)
            || shared.inbox_messages.fetch_add(1, Ordering::Relaxed) >= max
        {
            shared.inbox_messages.fetch_sub(1, Ordering::Relaxed);
            shared.dropped_messages.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if shared.inbox.send(Input::Step(msg)).is_err() {
            shared.inbox_messages.fetch_sub(1, Ordering::Relaxed);
            shared.dropped_messages.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Peer messages dropped because the node was stopped or its queue was full.
    pub fn dropped_messages(&self) -> u64 {
        self.shared().dropped_messages.load(Ordering::Relaxed)
    }

    /// Receives a snapshot streamed by the leader `from` (in `term`), on the calling
    /// (transport) thread; `payload` yields the snapshot's bytes.
    ///
    /// Asks the core first and returns [`SnapshotStreamError::Rejected`] without
    /// reading if it declines. Otherwise copies the payload into the persister in
    /// bounded chunks, then has the driver commit it and step `InstallSnapshot` into the
    /// core. Returns `Ok` once the snapshot is durable and installed.
    pub fn receive_snapshot(
        &self,
        from: NodeId,
        term: u64,
        meta: SnapshotMeta,
        payload: &mut dyn Read,
    ) -> Result<(), SnapshotStreamError> {
        let shared = self.shared();
        let id = shared.id;
        let timeout = shared.options.request_timeout;
        let stopped = || SnapshotStreamError::Stopped { id };
        if shared.stopped.load(Ordering::SeqCst) {
            return Err(stopped());
        }
        let (tx, rx) = sync_channel(1);
        shared
            .inbox
            .send(Input::SnapshotOffer {
                from,
                term,
                meta,
                reply: tx,
            })
            .map_err(|_| stopped())?;
        let accepted = match rx.recv_timeout(timeout) {
            Ok(accepted) => accepted,
            Err(RecvTimeoutError::Disconnected) => return Err(stopped()),
            Err(RecvTimeoutError::Timeout) => {
                return Err(SnapshotStreamError::Timeout {
                    during: "snapshot offer",
                });
            }
        };
        if !accepted {
            return Err(SnapshotStreamError::Rejected { meta });
        }
        let mut writer = shared.persister.begin_snapshot(meta)?;
        let mut buf = vec![0u8; crate::transport::SNAPSHOT_CHUNK_BYTES];
        loop {
            let n = match payload.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Dropping the writer discards the partial snapshot.
                Err(e) => return Err(SnapshotStreamError::Io(e)),
            };
            io::Write::write_all(&mut writer, &buf[..n])?;
            if shared.stopped.load(Ordering::Relaxed) {
                return Err(stopped());
            }
        }
        let (tx, rx) = sync_channel(1);
        shared
            .inbox
            .send(Input::InstallSnapshot {
                from,
                term,
                meta,
                writer,
                reply: tx,
            })
            .map_err(|_| stopped())?;
        match rx.recv_timeout(timeout) {
            Ok(outcome) => outcome,
            Err(RecvTimeoutError::Disconnected) => Err(stopped()),
            Err(RecvTimeoutError::Timeout) => Err(SnapshotStreamError::Timeout {
                during: "snapshot install",
            }),
        }
    }

    /// Whether the driver still takes requests.
    pub fn is_running(&self) -> bool {
        !self.shared().stopped.load(Ordering::SeqCst)
    }

    /// The fatal error that stopped the node, if one did.
    pub fn fatal_error(&self) -> Option<Arc<FatalError>> {
        self.shared().fatal.get().cloned()
    }

    /// Stops the node and waits (at most [`NodeOptions::shutdown_timeout`]) for its
    /// thread to exit. Requests still queued or waiting fail with
    /// [`NodeError::Stopped`]; the apply stream ends after the items already in its
    /// channel. Idempotent.
    ///
    /// Returns [`NodeError::ShutdownTimedOut`] if the thread is stuck in a persister
    /// call; it exits when that call returns.
    pub fn shutdown(&self) -> Result<(), NodeError> {
        let shared = self.shared();
        shared.request_stop();
        let timeout = shared.options.shutdown_timeout;
        let deadline = Instant::now() + timeout;
        let mut exited = lock(&shared.exited);
        while !*exited {
            let now = Instant::now();
            if now >= deadline {
                return Err(NodeError::ShutdownTimedOut {
                    id: shared.id,
                    after: timeout,
                });
            }
            exited = shared
                .exited_cv
                .wait_timeout(exited, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        drop(exited);
        if let Some(thread) = lock(&shared.thread).take() {
            // The thread has marked itself exited; joining only reaps it. A panic was
            // already recorded as the fatal error.
            let _ = thread.join();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
