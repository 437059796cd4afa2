//! [`InProcessNetwork`]: N nodes in one process, with fault injection and counters.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread;
use std::time::Duration;

use raftkv_storage::{NodeId, SnapshotMeta, SnapshotReader};

use super::chunk::{chunk_pipe, pump};
use super::wire::{DEFAULT_MAX_MESSAGE_BYTES, decode_message, encode_message};
use super::{
    SNAPSHOT_CHUNK_BYTES, SNAPSHOT_WINDOW_CHUNKS, SnapshotDone, SnapshotStreamError, Transport,
};
use crate::Message;
use crate::node::NodeHandle;

/// How long a snapshot receiver waits for the next chunk before giving up.
const SNAPSHOT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Message and snapshot counters of one node (or, summed, of the whole network).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Messages this node handed to the network.
    pub sent: u64,
    /// Messages delivered to this node.
    pub received: u64,
    /// Messages this node sent that were dropped (disconnected, unregistered receiver,
    /// or random loss).
    pub dropped: u64,
    /// Encoded bytes of the messages this node sent (counted only with wire encoding on;
    /// see [`InProcessNetwork::set_wire_encoding`]).
    pub bytes_sent: u64,
    /// Snapshot streams this node started.
    pub snapshots_started: u64,
    /// Snapshot streams this node started that the receiver installed.
    pub snapshots_completed: u64,
    /// Snapshot streams this node started that failed.
    pub snapshots_failed: u64,
    /// Snapshot payload bytes this node streamed.
    pub snapshot_bytes: u64,
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    received: AtomicU64,
    dropped: AtomicU64,
    bytes_sent: AtomicU64,
    snapshots_started: AtomicU64,
    snapshots_completed: AtomicU64,
    snapshots_failed: AtomicU64,
    snapshot_bytes: AtomicU64,
}

impl Counters {
    fn load(&self) -> LinkStats {
        LinkStats {
            sent: self.sent.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            snapshots_started: self.snapshots_started.load(Ordering::Relaxed),
            snapshots_completed: self.snapshots_completed.load(Ordering::Relaxed),
            snapshots_failed: self.snapshots_failed.load(Ordering::Relaxed),
            snapshot_bytes: self.snapshot_bytes.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug, Default)]
struct NetState {
    endpoints: HashMap<NodeId, NodeHandle>,
    disconnected: HashSet<NodeId>,
    counters: HashMap<NodeId, Arc<Counters>>,
    /// With a partition in place, each listed node's group; unlisted nodes are
    /// isolated.
    groups: Option<HashMap<NodeId, usize>>,
}

impl NetState {
    fn linked(&self, a: NodeId, b: NodeId) -> bool {
        if self.disconnected.contains(&a) || self.disconnected.contains(&b) {
            return false;
        }
        match &self.groups {
            None => true,
            Some(groups) => match (groups.get(&a), groups.get(&b)) {
                (Some(ga), Some(gb)) => ga == gb,
                _ => false,
            },
        }
    }
}

/// SplitMix64: a small seeded generator, enough for drop decisions.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[derive(Debug)]
struct Net {
    state: RwLock<NetState>,
    rng: Mutex<SplitMix64>,
    /// Drop probability in parts per million.
    drop_ppm: AtomicU32,
    wire: AtomicBool,
    chunk_bytes: AtomicUsize,
}

impl Net {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, NetState> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, NetState> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn counters(&self, id: NodeId) -> Arc<Counters> {
        if let Some(c) = self.read().counters.get(&id) {
            return Arc::clone(c);
        }
        Arc::clone(self.write().counters.entry(id).or_default())
    }

    fn random_drop(&self) -> bool {
        let ppm = self.drop_ppm.load(Ordering::Relaxed);
        if ppm == 0 {
            return false;
        }
        let draw = self
            .rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next_u64()
            % 1_000_000;
        draw < u64::from(ppm)
    }
}

/// An in-process network joining the nodes of one process.
///
/// Each node gets its [`InProcessTransport`] from [`transport`](Self::transport) before
/// it starts, and its [`NodeHandle`] is [`register`](Self::register)ed once it runs.
/// Delivery is immediate (a push into the receiver's input queue) unless a fault
/// applies:
///
/// * a [`disconnect`](Self::disconnect)ed node neither sends nor receives anything, and
///   its snapshot streams are cut off at the next chunk;
/// * with a [drop probability](Self::set_drop_probability) each message is lost with
///   that probability, drawn from an RNG seeded at construction (the draws are
///   deterministic in order, though thread scheduling decides which message gets which
///   draw);
/// * messages to an unregistered (crashed, not yet restarted) node are dropped.
///
/// Snapshot streams run on threads of their own (one pumping chunks, one running the
/// receiver's [`NodeHandle::receive_snapshot`]); random loss does not apply to them,
/// a disconnect cuts them off.
///
/// The network holds a handle of every registered node, which keeps it alive: stop
/// nodes with [`NodeHandle::shutdown`] (and [`unregister`](Self::unregister) them).
///
/// Cloning shares the same network.
#[derive(Debug, Clone)]
pub struct InProcessNetwork {
    net: Arc<Net>,
}

impl InProcessNetwork {
    /// An empty, fully connected, lossless network whose random drops are drawn from
    /// `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            net: Arc::new(Net {
                state: RwLock::default(),
                rng: Mutex::new(SplitMix64(seed)),
                drop_ppm: AtomicU32::new(0),
                wire: AtomicBool::new(false),
                chunk_bytes: AtomicUsize::new(SNAPSHOT_CHUNK_BYTES),
            }),
        }
    }

    /// The transport node `id` sends through.
    pub fn transport(&self, id: NodeId) -> Arc<InProcessTransport> {
        Arc::new(InProcessTransport {
            net: Arc::clone(&self.net),
            id,
            counters: self.net.counters(id),
        })
    }

    /// Makes `handle`'s node reachable, replacing an earlier instance with the same id.
    pub fn register(&self, handle: &NodeHandle) {
        let id = handle.id();
        let mut state = self.net.write();
        state.counters.entry(id).or_default();
        state.endpoints.insert(id, handle.clone());
    }

    /// Makes node `id` unreachable (a crash); messages to it are dropped until a new
    /// instance is registered. Returns the handle that was registered.
    pub fn unregister(&self, id: NodeId) -> Option<NodeHandle> {
        self.net.write().endpoints.remove(&id)
    }

    /// Cuts node `id` off from every other node.
    pub fn disconnect(&self, id: NodeId) {
        self.net.write().disconnected.insert(id);
    }

    /// Undoes [`disconnect`](Self::disconnect).
    pub fn reconnect(&self, id: NodeId) {
        self.net.write().disconnected.remove(&id);
    }

    /// Splits the network into `groups`: nodes in different groups cannot exchange
    /// messages or snapshot streams (a stream in flight is cut off at its next chunk),
    /// and nodes listed in no group are isolated. Replaces any earlier partition;
    /// [`disconnect`](Self::disconnect) still applies on top of it.
    pub fn partition(&self, groups: &[&[NodeId]]) {
        let mut map = HashMap::new();
        for (g, members) in groups.iter().enumerate() {
            for &id in *members {
                map.insert(id, g);
            }
        }
        self.net.write().groups = Some(map);
    }

    /// Removes the partition set by [`partition`](Self::partition) (disconnected nodes
    /// stay disconnected).
    pub fn heal(&self) {
        self.net.write().groups = None;
    }

    /// Whether node `id` is connected.
    pub fn is_connected(&self, id: NodeId) -> bool {
        !self.net.read().disconnected.contains(&id)
    }

    /// Loses each message with probability `p` (clamped to `0.0..=1.0`).
    pub fn set_drop_probability(&self, p: f64) {
        let ppm = (p.clamp(0.0, 1.0) * 1_000_000.0).round() as u32;
        self.net.drop_ppm.store(ppm, Ordering::Relaxed);
    }

    /// With `on`, every message is encoded with [`super::wire`] and decoded again on
    /// delivery, as a network transport would, and its bytes are counted.
    pub fn set_wire_encoding(&self, on: bool) {
        self.net.wire.store(on, Ordering::Relaxed);
    }

    /// Payload bytes per snapshot chunk (default [`SNAPSHOT_CHUNK_BYTES`]).
    pub fn set_snapshot_chunk_bytes(&self, bytes: usize) {
        self.net.chunk_bytes.store(bytes.max(1), Ordering::Relaxed);
    }

    /// Counters of node `id`.
    pub fn stats(&self, id: NodeId) -> LinkStats {
        self.net.counters(id).load()
    }

    /// Counters summed over all nodes.
    pub fn total_stats(&self) -> LinkStats {
        let state = self.net.read();
        state.counters.values().fold(LinkStats::default(), |a, c| {
            let s = c.load();
            LinkStats {
                sent: a.sent + s.sent,
                received: a.received + s.received,
                dropped: a.dropped + s.dropped,
                bytes_sent: a.bytes_sent + s.bytes_sent,
                snapshots_started: a.snapshots_started + s.snapshots_started,
                snapshots_completed: a.snapshots_completed + s.snapshots_completed,
                snapshots_failed: a.snapshots_failed + s.snapshots_failed,
                snapshot_bytes: a.snapshot_bytes + s.snapshot_bytes,
            }
        })
    }
}

/// One node's view of an [`InProcessNetwork`].
#[derive(Debug)]
pub struct InProcessTransport {
    net: Arc<Net>,
    id: NodeId,
    counters: Arc<Counters>,
}

impl InProcessTransport {
    /// The node this transport sends for.
    pub fn id(&self) -> NodeId {
        self.id
    }

    fn drop_message(&self) {
        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

impl Transport for InProcessTransport {
    fn send(&self, msg: Message) {
        self.counters.sent.fetch_add(1, Ordering::Relaxed);
        let msg = if self.net.wire.load(Ordering::Relaxed) {
            let bytes = match encode_message(&msg) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(from = self.id, to = msg.to, error = %e, "cannot encode message");
                    self.drop_message();
                    return;
                }
            };
            self.counters
                .bytes_sent
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            match decode_message(&bytes, DEFAULT_MAX_MESSAGE_BYTES) {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!(from = self.id, to = msg.to, error = %e, "cannot decode message");
                    self.drop_message();
                    return;
                }
            }
        } else {
            msg
        };
        if self.net.random_drop() {
            self.drop_message();
            return;
        }
        let state = self.net.read();
        let to = msg.to;
        match state.endpoints.get(&to) {
            Some(endpoint) if state.linked(self.id, to) => {
                if let Some(c) = state.counters.get(&to) {
                    c.received.fetch_add(1, Ordering::Relaxed);
                }
                endpoint.receive(msg);
            }
            _ => self.drop_message(),
        }
    }

    fn send_snapshot(
        &self,
        to: NodeId,
        term: u64,
        meta: SnapshotMeta,
        from: NodeId,
        mut payload: Box<dyn SnapshotReader>,
        done: SnapshotDone,
    ) {
        self.counters
            .snapshots_started
            .fetch_add(1, Ordering::Relaxed);
        let net = Arc::clone(&self.net);
        let counters = Arc::clone(&self.counters);
        let stream = move || {
            let outcome = stream_snapshot(&net, to, term, meta, from, payload.as_mut(), &counters);
            match &outcome {
                Ok(()) => counters.snapshots_completed.fetch_add(1, Ordering::Relaxed),
                Err(_) => counters.snapshots_failed.fetch_add(1, Ordering::Relaxed),
            };
            done.finish(outcome);
        };
        // `stream` owns `done`: if the thread cannot start, dropping the closure
        // reports `Abandoned`.
        if let Err(e) = thread::Builder::new()
            .name(format!("snap-{from}-to-{to}"))
            .spawn(stream)
        {
            tracing::error!(from, to, error = %e, "cannot start a snapshot stream thread");
        }
    }
}

/// Streams one snapshot: this thread pumps chunks, a second one runs the receiving
/// node's [`NodeHandle::receive_snapshot`] over them.
fn stream_snapshot(
    net: &Arc<Net>,
    to: NodeId,
    term: u64,
    meta: SnapshotMeta,
    from: NodeId,
    payload: &mut dyn SnapshotReader,
    counters: &Counters,
) -> Result<(), SnapshotStreamError> {
    let target = {
        let state = net.read();
        match state.endpoints.get(&to) {
            Some(h) if state.linked(from, to) => h.clone(),
            _ => return Err(SnapshotStreamError::Unreachable { to }),
        }
    };
    let (sender, mut reader) = chunk_pipe(
        SNAPSHOT_WINDOW_CHUNKS,
        payload.payload_len(),
        SNAPSHOT_IDLE_TIMEOUT,
    );
    let (result_tx, result_rx) = sync_channel(1);
    thread::Builder::new()
        .name(format!("snap-recv-{to}-from-{from}"))
        .spawn(move || {
            let r = target.receive_snapshot(from, term, meta, &mut reader);
            // The pump thread waits for this; it is gone only if it panicked.
            let _ = result_tx.send(r);
        })?;
    let chunk_bytes = net.chunk_bytes.load(Ordering::Relaxed);
    let pumped = pump(payload, sender, chunk_bytes, || {
        if net.read().linked(from, to) {
            Ok(())
        } else {
            Err(SnapshotStreamError::Unreachable { to })
        }
    });
    let received = result_rx.recv().unwrap_or_else(|_| {
        Err(SnapshotStreamError::Aborted {
            reason: format!("the receiving thread of node {to} panicked"),
        })
    });
    let sent = pumped?;
    counters.snapshot_bytes.fetch_add(sent, Ordering::Relaxed);
    received
}
