//! The accepting side: the listener task and the connections it accepts.
//!
//! An accepted connection must open with a valid Hello (magic, this cluster's id, a
//! configured node id other than ours) within the handshake timeout. Its next frame
//! decides what it is: a `SnapshotBegin` makes it a snapshot stream (see
//! [`super::snapshot_recv`]); anything else makes it a peer's message connection,
//! carrying Raft messages (delivered to the attached node) and requests (served on a
//! blocking thread, answered on the same socket).

use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use raftkv_storage::NodeId;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::conn::{FrameReader, write_all_timed};
use super::handshake;
use super::shared::{Shared, ShutdownSignal};
use super::snapshot_recv;
use super::stats::inc;
use crate::node::NodeHandle;
use crate::transport::frame::{
    Frame, FrameKind, Response, decode_hello_frame, decode_message_frame, decode_request_frame,
    encode_response_frame,
};

/// The frame limit until the Hello has been checked (a Hello frame is 32 bytes).
const HANDSHAKE_MAX_FRAME_BYTES: usize = 1024;

/// Bytes of responses gathered before one write.
const BATCH_BYTES: usize = 256 * 1024;

/// Set once the listener socket is closed.
#[derive(Debug, Default)]
pub(super) struct ListenerClosed {
    closed: Mutex<bool>,
    cv: Condvar,
}

impl ListenerClosed {
    fn set(&self) {
        *self.closed.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.cv.notify_all();
    }

    /// Waits up to `timeout` for the listener to close; returns whether it did.
    pub(super) fn wait(&self, timeout: Duration) -> bool {
        let guard = self.closed.lock().unwrap_or_else(PoisonError::into_inner);
        let (guard, _) = self
            .cv
            .wait_timeout_while(guard, timeout, |closed| !*closed)
            .unwrap_or_else(PoisonError::into_inner);
        *guard
    }
}

/// Owns the listener; closes it and reports so when dropped (also when the task is
/// aborted).
struct ListenerGuard {
    listener: Option<TcpListener>,
    closed: Arc<ListenerClosed>,
}

impl Drop for ListenerGuard {
    fn drop(&mut self) {
        drop(self.listener.take());
        self.closed.set();
    }
}

/// The listener task: accepts connections until shutdown.
pub(super) async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    closed: Arc<ListenerClosed>,
) {
    let guard = ListenerGuard {
        listener: Some(listener),
        closed,
    };
    let Some(listener) = guard.listener.as_ref() else {
        return;
    };
    let node = shared.config.id;
    let slots = Arc::new(Semaphore::new(shared.config.max_connections));
    let mut shutdown = shared.shutdown_signal();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = shutdown.wait() => break,
        };
        match accepted {
            Ok((stream, addr)) => match Arc::clone(&slots).try_acquire_owned() {
                Ok(slot) => {
                    tokio::spawn(serve(Arc::clone(&shared), stream, addr, slot));
                }
                Err(_) => {
                    inc(&shared.counters.rejected_connections);
                    tracing::warn!(
                        node,
                        peer_addr = %addr,
                        limit = shared.config.max_connections,
                        "closing connection: too many connections"
                    );
                }
            },
            Err(e) => {
                // Out of descriptors and the like: do not spin.
                tracing::warn!(node, error = %e, "accept failed");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    () = shutdown.wait() => break,
                }
            }
        }
    }
    tracing::debug!(node, "listener closed");
}

/// Logs and counts a connection refused during its handshake.
fn reject(shared: &Shared, addr: SocketAddr, error: &dyn std::fmt::Display) {
    inc(&shared.counters.rejected_connections);
    tracing::warn!(
        node = shared.config.id,
        peer_addr = %addr,
        error = %error,
        "closing connection: bad handshake"
    );
}

/// Logs and counts a connection closed for a protocol violation after its handshake.
pub(super) fn protocol_error(
    shared: &Shared,
    peer: NodeId,
    addr: SocketAddr,
    error: &dyn std::fmt::Display,
) {
    inc(&shared.counters.protocol_errors);
    tracing::warn!(
        node = shared.config.id,
        peer,
        peer_addr = %addr,
        error = %error,
        "closing connection: bad frame"
    );
}

async fn serve(
    shared: Arc<Shared>,
    stream: TcpStream,
    addr: SocketAddr,
    _slot: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let mut frames = FrameReader::new(rd, Arc::clone(&shared));
    // Nobody may make us buffer a big frame before it said who it is.
    frames.set_max_frame_bytes(HANDSHAKE_MAX_FRAME_BYTES);
    let mut shutdown = shared.shutdown_signal();
    let config = &shared.config;
    let handshake = tokio::select! {
        r = tokio::time::timeout(config.handshake_timeout, frames.next()) => r,
        () = shutdown.wait() => return,
    };
    let hello = match handshake {
        Err(_) => {
            return reject(
                &shared,
                addr,
                &format!("no Hello within {:?}", config.handshake_timeout),
            );
        }
        Ok(Ok(None)) => {
            tracing::debug!(node = config.id, peer_addr = %addr, "connection closed before its Hello");
            return;
        }
        Ok(Err(e)) => return reject(&shared, addr, &e),
        Ok(Ok(Some(frame))) => match decode_hello_frame(&frame) {
            Ok(hello) => hello,
            Err(e) => return reject(&shared, addr, &e),
        },
    };
    if hello.cluster_id != config.cluster_id {
        return reject(
            &shared,
            addr,
            &format!(
                "Hello from node {} names cluster {:#x}, this is cluster {:#x}",
                hello.node_id, hello.cluster_id, config.cluster_id
            ),
        );
    }
    let peer = hello.node_id;
    if hello.to != config.id {
        return reject(
            &shared,
            addr,
            &format!(
                "Hello from node {peer} is meant for node {}, this is node {}",
                hello.to, config.id
            ),
        );
    }
    if peer == config.id || !config.peers.contains_key(&peer) {
        return reject(
            &shared,
            addr,
            &format!(
                "Hello names node {peer}, which is not a peer of node {}",
                config.id
            ),
        );
    }
    let mut wr = wr;
    let proved = tokio::select! {
        r = handshake::accept(&shared, &mut frames, &mut wr, &hello) => r,
        () = shutdown.wait() => return,
    };
    if let Err(e) = proved {
        return reject(&shared, addr, &e);
    }
    frames.set_max_frame_bytes(config.max_frame_bytes);
    inc(&shared.counters.accepted);
    tracing::debug!(node = config.id, peer, peer_addr = %addr, "accepted connection");
    let first = tokio::select! {
        r = frames.next() => r,
        () = shutdown.wait() => return,
    };
    match first {
        Ok(None) => {}
        Err(e) => protocol_error(&shared, peer, addr, &e),
        Ok(Some(f)) if f.kind == FrameKind::SnapshotBegin => {
            snapshot_recv::receive(&shared, peer, addr, frames, wr, &f, shutdown).await;
        }
        Ok(Some(f)) => serve_messages(&shared, peer, addr, frames, wr, f, shutdown).await,
    }
    tracing::debug!(node = config.id, peer, peer_addr = %addr, "inbound connection closed");
}

/// Serves a message connection from `peer` whose first frame after the Hello is
/// `first`.
async fn serve_messages(
    shared: &Arc<Shared>,
    peer: NodeId,
    addr: SocketAddr,
    mut frames: FrameReader<OwnedReadHalf>,
    mut wr: OwnedWriteHalf,
    first: Frame,
    mut shutdown: ShutdownSignal,
) {
    let config = &shared.config;
    let (resp_tx, mut resp_rx) = mpsc::channel::<Vec<u8>>(config.max_inflight_requests);
    let inflight = Arc::new(Semaphore::new(config.max_inflight_requests));
    let writer = async {
        let mut buf = Vec::with_capacity(64 * 1024);
        while let Some(first) = resp_rx.recv().await {
            buf.clear();
            buf.extend_from_slice(&first);
            while buf.len() < BATCH_BYTES {
                match resp_rx.try_recv() {
                    Ok(more) => buf.extend_from_slice(&more),
                    Err(_) => break,
                }
            }
            write_all_timed(&mut wr, &buf, config.write_timeout, shared).await?;
        }
        Ok::<(), std::io::Error>(())
    };
    let reader = async {
        let mut node: Option<NodeHandle> = None;
        let mut next = Some(first);
        loop {
            let f = match next.take() {
                Some(f) => f,
                None => match frames.next().await {
                    Ok(Some(f)) => f,
                    Ok(None) => return Ok(()),
                    Err(e) => return Err(e.to_string()),
                },
            };
            match f.kind {
                FrameKind::Message => {
                    let msg = decode_message_frame(&f).map_err(|e| e.to_string())?;
                    if msg.from != peer || msg.to != config.id {
                        return Err(format!(
                            "message frame at stream offset {} is from {} to {} on a connection from node {peer} to node {}",
                            f.offset, msg.from, msg.to, config.id
                        ));
                    }
                    inc(&shared.counters.messages_received);
                    if node.is_none() {
                        node = shared.node();
                    }
                    match &node {
                        Some(n) => n.receive(msg),
                        None => inc(&shared.counters.dropped_unattached),
                    }
                }
                FrameKind::Request => {
                    let request = decode_request_frame(&f).map_err(|e| e.to_string())?;
                    inc(&shared.counters.requests_received);
                    match Arc::clone(&inflight).try_acquire_owned() {
                        Ok(permit) => {
                            let shared = Arc::clone(shared);
                            let tx = resp_tx.clone();
                            tokio::spawn(async move {
                                let result = serve_request(&shared, peer, request.body).await;
                                let frame = response_frame(&shared, request.id, result);
                                // The connection may be gone; the caller times out.
                                let _ = tx.send(frame).await;
                                drop(permit);
                            });
                        }
                        Err(_) => {
                            let frame = response_frame(
                                shared,
                                request.id,
                                Err(format!(
                                    "node {}: overloaded, {} requests in flight",
                                    config.id, config.max_inflight_requests
                                )),
                            );
                            // Never block the reader: Raft messages share it.
                            let _ = resp_tx.try_send(frame);
                        }
                    }
                }
                other => {
                    return Err(format!(
                        "unexpected {other:?} frame at stream offset {} on a message connection",
                        f.offset
                    ));
                }
            }
        }
    };
    tokio::select! {
        r = writer => if let Err(e) = r {
            tracing::info!(node = config.id, peer, peer_addr = %addr, error = %e, "closing inbound connection: write failed");
        },
        r = reader => if let Err(e) = r {
            protocol_error(shared, peer, addr, &e);
        },
        () = shutdown.wait() => {}
    }
}

/// Runs the request handler on a blocking thread.
async fn serve_request(shared: &Shared, from: NodeId, body: Bytes) -> Result<Bytes, String> {
    let id = shared.config.id;
    let Some(handler) = shared.handler() else {
        return Err(format!("node {id} has no request handler"));
    };
    tokio::task::spawn_blocking(move || handler.handle(from, body))
        .await
        .map_err(|e| format!("node {id}: the request handler failed: {e}"))
}

/// The encoded Response frame; an error response if the reply does not fit.
fn response_frame(shared: &Shared, id: u64, result: Result<Bytes, String>) -> Vec<u8> {
    let max = shared.config.max_frame_bytes;
    let mut buf = Vec::new();
    let response = Response { id, result };
    if let Err(e) = encode_response_frame(&response, max, &mut buf) {
        buf.clear();
        let fallback = Response {
            id,
            result: Err(format!("node {}: reply not sent: {e}", shared.config.id)),
        };
        if let Err(e) = encode_response_frame(&fallback, max, &mut buf) {
            // MAX_REASON_BYTES fits any valid max_frame_bytes: cannot happen.
            tracing::error!(error = %e, "cannot encode an error response");
        }
    }
    buf
}
