//! The node runtime: drives an IO-free [`RaftCore`] with a real clock, a
//! [`Persister`] and a [`Transport`], on a thread of its own.
//!
//! ```text
//!  proposers ──propose──┐                          ┌──▶ Transport::send / send_snapshot
//!  transport ──receive──┼──▶ inbox ──▶ driver ─────┼──▶ Persister::write (one per Ready)
//!  clock ───────tick────┘     (RaftCore owner)     └──▶ ApplyStream (bounded, ordered)
//! ```
//!
//! * [`Node::start`] recovers the core from the persister and starts the driver thread.
//!   The driver's loop takes every queued input, then drains the core's `Ready`s:
//!   messages out, then **one** `Persister::write` per `Ready` (so proposals that queued
//!   up meanwhile share one sync: group commit), `on_persisted`, then the messages that
//!   needed durability. The write is synchronous on the driver thread: a leader whose
//!   disk stalls for longer than the election timeout loses its leadership.
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
mod driver;
mod error;

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

    /// Sends `input` built around a fresh reply slot and waits for the answer.
    fn call<T>(
        &self,
        op: &'static str,
        make: impl FnOnce(mpsc::SyncSender<T>) -> Input,
    ) -> Result<T, NodeError> {
        let shared = self.shared();
        if shared.stopped.load(Ordering::SeqCst) {
            return Err(shared.stopped_error());
        }
        let (tx, rx) = sync_channel(1);
        if shared.inbox.send(make(tx)).is_err() {
            return Err(shared.stopped_error());
        }
        self.wait(op, &rx, shared.options.request_timeout)
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
        self.call("propose", |reply| Input::Propose { data, reply })?
    }

    /// Proposes many entries with one round trip to the driver: the entries get
    /// consecutive indexes and one result each, in order.
    pub fn propose_batch(&self, batch: Vec<Vec<u8>>) -> Vec<Result<(u64, u64), NodeError>> {
        let n = batch.len();
        match self.call("propose", |reply| Input::ProposeBatch { batch, reply }) {
            Ok(results) => results,
            Err(e) => {
                let mut out: Vec<_> = (1..n).map(|_| Err(self.same_call_error(&e))).collect();
                out.insert(0, Err(e));
                out
            }
        }
    }

    /// A copy of an error that [`call`](Self::call) returned, for each entry of a batch.
    fn same_call_error(&self, e: &NodeError) -> NodeError {
        match e {
            NodeError::Timeout { id, op, after } => NodeError::Timeout {
                id: *id,
                op,
                after: *after,
            },
            _ => self.shared().stopped_error(),
        }
    }

    /// Asks the leader for a read index (Raft thesis §6.4, ReadIndex): once the state
    /// machine has applied the returned index, a read of it is linearizable. Waits up
    /// to `timeout` for a heartbeat quorum to confirm the leadership; fails with
    /// [`NodeError::LeadershipLost`] if the leadership ends first, and fast with
    /// `NotLeader` on a follower.
    pub fn read_index(&self, timeout: Duration) -> Result<u64, NodeError> {
        let shared = self.shared();
        if shared.stopped.load(Ordering::SeqCst) {
            return Err(shared.stopped_error());
        }
        let (tx, rx) = sync_channel(1);
        let deadline = Instant::now() + timeout;
        if shared
            .inbox
            .send(Input::ReadIndex {
                deadline,
                reply: tx,
            })
            .is_err()
        {
            return Err(shared.stopped_error());
        }
        self.wait("read_index", &rx, timeout)?
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
        })?
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
