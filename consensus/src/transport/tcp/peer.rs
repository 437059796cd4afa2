//! [`PeerLink`]: the outbound connection to one peer, with its bounded queues, its
//! reconnection loop and the table of calls waiting for a reply.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use raftkv_storage::NodeId;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};

use super::backoff::Backoff;
use super::conn::{FrameReader, ReadError, connect, write_all_timed};
use super::handshake;
use super::shared::{Shared, ShutdownSignal};
use super::stats::{PeerCounters, PeerStats, add, inc};
use crate::Message;
use crate::transport::frame::{
    self, FrameKind, Request, encode_message_frame, encode_request_frame,
};

/// Bytes of frames the writer gathers before one write.
const BATCH_BYTES: usize = 256 * 1024;

/// Why a call got no reply.
#[derive(Debug)]
pub(super) enum CallFailure {
    /// The peer answered with an error message.
    Remote(String),
    /// The connection broke (or was never up) before the reply.
    ConnectionLost,
    /// The transport shut down.
    Shutdown,
}

type Reply = Result<Bytes, CallFailure>;

/// A request waiting in the queue.
#[derive(Debug)]
pub(super) struct OutRequest {
    pub(super) id: u64,
    pub(super) body: Bytes,
}

/// The receiving ends of a link's queues, owned by its task.
pub(super) struct LinkQueues {
    messages: mpsc::Receiver<(Message, usize)>,
    requests: mpsc::Receiver<OutRequest>,
}

/// The outbound side of the connection to one peer.
pub(super) struct PeerLink {
    pub(super) id: NodeId,
    pub(super) addr: SocketAddr,
    messages: mpsc::Sender<(Message, usize)>,
    requests: mpsc::Sender<OutRequest>,
    queued_bytes: AtomicUsize,
    connected: AtomicBool,
    pending: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    pub(super) counters: PeerCounters,
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
enum ConnEnd {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Read(#[from] ReadError),
    #[error("closed by the peer")]
    Closed,
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("transport shut down")]
    Shutdown,
}

impl PeerLink {
    pub(super) fn new(
        id: NodeId,
        addr: SocketAddr,
        queue_messages: usize,
        queue_requests: usize,
    ) -> (Arc<Self>, LinkQueues) {
        let (msg_tx, msg_rx) = mpsc::channel(queue_messages);
        let (req_tx, req_rx) = mpsc::channel(queue_requests);
        let link = Arc::new(Self {
            id,
            addr,
            messages: msg_tx,
            requests: req_tx,
            queued_bytes: AtomicUsize::new(0),
            connected: AtomicBool::new(false),
            pending: Mutex::new(HashMap::new()),
            counters: PeerCounters::default(),
        });
        (
            link,
            LinkQueues {
                messages: msg_rx,
                requests: req_rx,
            },
        )
    }

    pub(super) fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    pub(super) fn stats(&self) -> PeerStats {
        let capacity = self.messages.max_capacity();
        let queued = capacity.saturating_sub(self.messages.capacity());
        self.counters
            .load(self.id, self.addr, self.is_connected(), queued as u64)
    }

    /// Queues `msg` without blocking; drops (and counts) it if no connection is up or
    /// the queue is full (in messages or bytes).
    pub(super) fn send(&self, msg: Message, shared: &Shared) {
        let counters = &shared.counters;
        if !self.is_connected() {
            inc(&self.counters.dropped_disconnected);
            inc(&counters.dropped_disconnected);
            return;
        }
        let size = msg.encoded_len();
        let limit = shared.config.queue_bytes;
        let prior = self.queued_bytes.fetch_add(size, Ordering::AcqRel);
        // A message alone over the byte bound still goes when the queue is empty.
        if prior > 0 && prior + size > limit {
            self.queued_bytes.fetch_sub(size, Ordering::AcqRel);
            inc(&self.counters.dropped_queue_full);
            inc(&counters.dropped_queue_full);
            return;
        }
        match self.messages.try_send((msg, size)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.queued_bytes.fetch_sub(size, Ordering::AcqRel);
                inc(&self.counters.dropped_queue_full);
                inc(&counters.dropped_queue_full);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.queued_bytes.fetch_sub(size, Ordering::AcqRel);
                inc(&self.counters.dropped_disconnected);
                inc(&counters.dropped_disconnected);
            }
        }
    }

    /// Registers a call and queues its request. The receiver gets the reply or the
    /// failure; `Err` if the request could not be queued (nothing stays registered).
    pub(super) fn start_call(
        &self,
        id: u64,
        body: Bytes,
    ) -> Result<oneshot::Receiver<Reply>, QueueError> {
        if !self.is_connected() {
            return Err(QueueError::NotConnected);
        }
        let (tx, rx) = oneshot::channel();
        self.lock_pending().insert(id, tx);
        match self.requests.try_send(OutRequest { id, body }) {
            Ok(()) => Ok(rx),
            Err(e) => {
                self.forget_call(id);
                Err(match e {
                    mpsc::error::TrySendError::Full(_) => QueueError::Full,
                    mpsc::error::TrySendError::Closed(_) => QueueError::Closed,
                })
            }
        }
    }

    /// Drops a call's reply slot (it timed out or its caller went away).
    pub(super) fn forget_call(&self, id: u64) {
        self.lock_pending().remove(&id);
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Reply>>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn complete_call(&self, id: u64, reply: Reply) -> bool {
        match self.lock_pending().remove(&id) {
            Some(tx) => {
                // The caller may have given up meanwhile.
                let _ = tx.send(reply);
                true
            }
            None => false,
        }
    }

    /// Fails every call waiting for a reply.
    pub(super) fn fail_all_calls(&self, failure: impl Fn() -> CallFailure) {
        let pending: Vec<_> = self.lock_pending().drain().collect();
        for (_, tx) in pending {
            let _ = tx.send(Err(failure()));
        }
    }

    /// The link's task: dial, serve the connection until it breaks, back off, redial;
    /// until the transport shuts down.
    pub(super) async fn run(self: Arc<Self>, shared: Arc<Shared>, mut queues: LinkQueues) {
        let config = &shared.config;
        let node = config.id;
        let mut backoff = Backoff::new(
            config.backoff_min,
            config.backoff_max,
            node.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ self.id ^ clock_seed(),
        );
        let mut shutdown = shared.shutdown_signal();
        let mut ever_connected = false;
        let mut failures = 0u64;
        loop {
            let attempt = tokio::select! {
                r = connect(self.addr, config.connect_timeout) => r,
                () = shutdown.wait() => break,
            };
            match attempt {
                Ok(stream) => {
                    inc(&shared.counters.connects);
                    inc(&self.counters.connects);
                    if ever_connected {
                        inc(&shared.counters.reconnects);
                    }
                    ever_connected = true;
                    failures = 0;
                    tracing::info!(node, peer = self.id, addr = %self.addr, "connected to peer");
                    let since = Instant::now();
                    let (rd, wr) = stream.into_split();
                    self.connected.store(true, Ordering::Release);
                    let end = self
                        .serve(&shared, rd, wr, &mut queues, shutdown.clone())
                        .await;
                    self.connected.store(false, Ordering::Release);
                    self.drain(&shared, &mut queues, || CallFailure::ConnectionLost);
                    match &end {
                        ConnEnd::Shutdown => break,
                        ConnEnd::Read(ReadError::Frame(_)) | ConnEnd::Protocol(_) => {
                            inc(&shared.counters.protocol_errors);
                            tracing::warn!(node, peer = self.id, addr = %self.addr, error = %end, "closing connection to peer");
                        }
                        _ => {
                            tracing::info!(node, peer = self.id, addr = %self.addr, reason = %end, "disconnected from peer");
                        }
                    }
                    if since.elapsed() >= config.backoff_max {
                        backoff.reset();
                    }
                }
                Err(e) => {
                    inc(&shared.counters.connect_failures);
                    failures += 1;
                    // Loud once, then quiet while the peer stays away.
                    if failures == 1 {
                        tracing::info!(node, peer = self.id, addr = %self.addr, error = %e, "cannot connect to peer; retrying with backoff");
                    } else {
                        tracing::debug!(node, peer = self.id, addr = %self.addr, error = %e, failures, "cannot connect to peer");
                    }
                }
            }
            let delay = backoff.next_delay();
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown.wait() => break,
            }
        }
        self.connected.store(false, Ordering::Release);
        self.drain(&shared, &mut queues, || CallFailure::Shutdown);
    }

    /// Drops queued messages (stale once their connection broke) and fails queued and
    /// pending calls.
    fn drain(&self, shared: &Shared, queues: &mut LinkQueues, failure: fn() -> CallFailure) {
        while let Ok((_, size)) = queues.messages.try_recv() {
            self.queued_bytes.fetch_sub(size, Ordering::AcqRel);
            inc(&self.counters.dropped_disconnected);
            inc(&shared.counters.dropped_disconnected);
        }
        while let Ok(request) = queues.requests.try_recv() {
            self.complete_call(request.id, Err(failure()));
        }
        self.fail_all_calls(failure);
    }

    /// Serves one connection: the handshake, then the writer sends batches of queued
    /// requests and messages while the reader matches responses to calls.
    async fn serve(
        &self,
        shared: &Arc<Shared>,
        rd: OwnedReadHalf,
        mut wr: OwnedWriteHalf,
        queues: &mut LinkQueues,
        mut shutdown: ShutdownSignal,
    ) -> ConnEnd {
        let mut frames = FrameReader::new(rd, Arc::clone(shared));
        tokio::select! {
            r = handshake::dial(shared, &mut frames, &mut wr, self.id) => {
                if let Err(e) = r {
                    return ConnEnd::Protocol(e.to_string());
                }
            }
            () = shutdown.wait() => return ConnEnd::Shutdown,
        }
        tokio::select! {
            r = self.write_loop(shared, wr, queues) => match r {
                Ok(never) => match never {},
                Err(e) => e,
            },
            end = self.read_loop(shared, frames) => end,
            () = shutdown.wait() => ConnEnd::Shutdown,
        }
    }

    async fn write_loop(
        &self,
        shared: &Shared,
        mut wr: OwnedWriteHalf,
        queues: &mut LinkQueues,
    ) -> Result<Infallible, ConnEnd> {
        let config = &shared.config;
        let mut buf = Vec::with_capacity(BATCH_BYTES + 64 * 1024);
        loop {
            buf.clear();
            let mut batch = Batch::default();
            // Requests first: they are few, and a reply may be what a client on the
            // other side waits for.
            tokio::select! {
                biased;
                r = queues.requests.recv() => match r {
                    Some(r) => self.encode_request(shared, r, &mut buf, &mut batch),
                    None => return Err(ConnEnd::Shutdown),
                },
                m = queues.messages.recv() => match m {
                    Some((m, size)) => self.encode_message(shared, &m, size, &mut buf, &mut batch),
                    None => return Err(ConnEnd::Shutdown),
                },
            }
            // Coalesce whatever else is queued into the same write.
            while buf.len() < BATCH_BYTES {
                if let Ok(r) = queues.requests.try_recv() {
                    self.encode_request(shared, r, &mut buf, &mut batch);
                } else if let Ok((m, size)) = queues.messages.try_recv() {
                    self.encode_message(shared, &m, size, &mut buf, &mut batch);
                } else {
                    break;
                }
            }
            if buf.is_empty() {
                continue;
            }
            write_all_timed(&mut wr, &buf, config.write_timeout, shared).await?;
            add(&self.counters.bytes_sent, buf.len() as u64);
            add(&self.counters.messages_sent, batch.messages);
            add(&shared.counters.messages_sent, batch.messages);
            add(&shared.counters.requests_sent, batch.requests);
        }
    }

    async fn read_loop(
        &self,
        shared: &Arc<Shared>,
        mut frames: FrameReader<OwnedReadHalf>,
    ) -> ConnEnd {
        loop {
            let f = match frames.next().await {
                Ok(Some(f)) => f,
                Ok(None) => return ConnEnd::Closed,
                Err(e) => return ConnEnd::Read(e),
            };
            if f.kind != FrameKind::Response {
                return ConnEnd::Protocol(format!(
                    "unexpected {:?} frame at stream offset {} on an outbound connection",
                    f.kind, f.offset
                ));
            }
            let response = match frame::decode_response_frame(&f) {
                Ok(r) => r,
                Err(e) => return ConnEnd::Read(e.into()),
            };
            inc(&shared.counters.responses_received);
            let reply = response.result.map_err(CallFailure::Remote);
            if !self.complete_call(response.id, reply) {
                tracing::debug!(
                    node = shared.config.id,
                    peer = self.id,
                    id = response.id,
                    "reply to a call nobody waits for"
                );
            }
        }
    }

    fn encode_request(
        &self,
        shared: &Shared,
        request: OutRequest,
        buf: &mut Vec<u8>,
        batch: &mut Batch,
    ) {
        let r = Request {
            id: request.id,
            body: request.body,
        };
        match encode_request_frame(&r, shared.config.max_frame_bytes, buf) {
            Ok(()) => batch.requests += 1,
            // `call` checked the size; fail the call rather than the connection.
            Err(e) => {
                self.complete_call(r.id, Err(CallFailure::Remote(e.to_string())));
            }
        }
    }

    fn encode_message(
        &self,
        shared: &Shared,
        msg: &Message,
        size: usize,
        buf: &mut Vec<u8>,
        batch: &mut Batch,
    ) {
        self.queued_bytes.fetch_sub(size, Ordering::AcqRel);
        match encode_message_frame(msg, shared.config.max_frame_bytes, buf) {
            Ok(()) => batch.messages += 1,
            Err(e) => {
                inc(&shared.counters.dropped_too_large);
                tracing::warn!(node = shared.config.id, peer = self.id, error = %e, "dropping a message that does not fit in a frame");
            }
        }
    }
}

#[derive(Default)]
struct Batch {
    messages: u64,
    requests: u64,
}

/// Why a request could not be queued.
#[derive(Debug)]
pub(super) enum QueueError {
    NotConnected,
    Full,
    Closed,
}

/// Some entropy for the backoff jitter (runtime, not the deterministic core).
fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
