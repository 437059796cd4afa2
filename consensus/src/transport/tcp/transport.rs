//! [`TcpTransport`]: the [`Transport`] over TCP, and the application request channel.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use raftkv_storage::{NodeId, SnapshotMeta, SnapshotReader};
use tokio::net::{TcpListener, TcpSocket};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::inbound::{ListenerClosed, accept_loop};
use super::peer::{CallFailure, PeerLink, QueueError};
use super::shared::Shared;
use super::snapshot_send::{self, Outgoing};
use super::stats::{TcpStats, inc};
use super::{TcpConfig, TcpError};
use crate::Message;
use crate::node::NodeHandle;
use crate::transport::frame::{FRAME_HEADER_BYTES, REQUEST_HEADER_BYTES};
use crate::transport::{SnapshotDone, SnapshotStreamError, Transport};

/// How long [`TcpTransport::shutdown`] waits for the listener socket to close (when
/// called outside the runtime).
const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);

/// Serves application requests from peers (see [`TcpTransport::call`]).
pub trait RequestHandler: Send + Sync + 'static {
    /// Serves one application request from peer `from` on a blocking thread; returns
    /// the reply bytes.
    fn handle(&self, from: NodeId, request: Bytes) -> Bytes;
}

impl<F> RequestHandler for F
where
    F: Fn(NodeId, Bytes) -> Bytes + Send + Sync + 'static,
{
    fn handle(&self, from: NodeId, request: Bytes) -> Bytes {
        self(from, request)
    }
}

/// A [`Transport`] that carries Raft traffic between processes over TCP, plus a
/// request/response channel for the application. See the [module docs](super).
pub struct TcpTransport {
    shared: Arc<Shared>,
    links: BTreeMap<NodeId, Arc<PeerLink>>,
    local_addr: SocketAddr,
    next_request_id: AtomicU64,
    listener_closed: Arc<ListenerClosed>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTransport")
            .field("id", &self.shared.config.id)
            .field("local_addr", &self.local_addr)
            .field("shut_down", &self.shared.is_shut_down())
            .finish_non_exhaustive()
    }
}

impl TcpTransport {
    /// Binds `config.listen` (with `SO_REUSEADDR`) and starts the listener and one
    /// link per peer on `runtime`. Incoming Raft traffic is dropped until
    /// [`attach`](Self::attach).
    pub fn start(config: TcpConfig, runtime: Handle) -> Result<Arc<TcpTransport>, TcpError> {
        config.validate()?;
        let addr = config.listen;
        let bind = |addr: SocketAddr| -> std::io::Result<TcpListener> {
            let _enter = runtime.enter();
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket.set_reuseaddr(true)?;
            socket.bind(addr)?;
            socket.listen(1024)
        };
        let listener = bind(addr).map_err(|source| TcpError::Bind { addr, source })?;
        Self::launch(config, listener, runtime)
    }

    /// Like [`start`](Self::start), on a listener bound by the caller (for example to
    /// port 0 before the peers' addresses are known); `config.listen` is ignored.
    pub fn start_with_listener(
        config: TcpConfig,
        listener: std::net::TcpListener,
        runtime: Handle,
    ) -> Result<Arc<TcpTransport>, TcpError> {
        config.validate()?;
        let addr = listener
            .local_addr()
            .map_or_else(|_| "an unbound socket".to_owned(), |a| a.to_string());
        let listen_err = |source| TcpError::Listen {
            addr: addr.clone(),
            source,
        };
        listener.set_nonblocking(true).map_err(listen_err)?;
        let listener = {
            let _enter = runtime.enter();
            TcpListener::from_std(listener).map_err(listen_err)?
        };
        Self::launch(config, listener, runtime)
    }

    fn launch(
        config: TcpConfig,
        listener: TcpListener,
        runtime: Handle,
    ) -> Result<Arc<TcpTransport>, TcpError> {
        let local_addr = listener.local_addr().map_err(|source| TcpError::Listen {
            addr: config.listen.to_string(),
            source,
        })?;
        let shared = Arc::new(Shared::new(config, runtime.clone()));
        let config = &shared.config;
        let listener_closed = Arc::new(ListenerClosed::default());
        let mut tasks = vec![runtime.spawn(accept_loop(
            Arc::clone(&shared),
            listener,
            Arc::clone(&listener_closed),
        ))];
        let mut links = BTreeMap::new();
        for (&id, &addr) in &config.peers {
            if id == config.id {
                continue;
            }
            let (link, queues) =
                PeerLink::new(id, addr, config.queue_messages, config.queue_requests);
            tasks.push(runtime.spawn(Arc::clone(&link).run(Arc::clone(&shared), queues)));
            links.insert(id, link);
        }
        tracing::info!(node = config.id, addr = %local_addr, peers = links.len(), "TCP transport listening");
        Ok(Arc::new(TcpTransport {
            shared,
            links,
            local_addr,
            next_request_id: AtomicU64::new(1),
            listener_closed,
            tasks: Mutex::new(tasks),
        }))
    }

    /// The node this transport serves.
    pub fn id(&self) -> NodeId {
        self.shared.config.id
    }

    /// The address the listener is bound to (the real port if `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The settings.
    pub fn config(&self) -> &TcpConfig {
        &self.shared.config
    }

    /// Delivers incoming Raft messages and snapshot streams to `node` from now on
    /// (replacing an earlier node). The transport holds the handle until
    /// [`shutdown`](Self::shutdown).
    pub fn attach(&self, node: NodeHandle) {
        if !self.shared.is_shut_down() {
            self.shared.set_node(Some(node));
        }
    }

    /// Serves peers' [`call`](Self::call)s with `handler` from now on (replacing an
    /// earlier one). Until one is set, requests are answered with an error.
    pub fn set_request_handler(&self, handler: Arc<dyn RequestHandler>) {
        if !self.shared.is_shut_down() {
            self.shared.set_handler(Some(handler));
        }
    }

    /// Whether the outbound connection to `peer` is up.
    pub fn is_connected(&self, peer: NodeId) -> bool {
        self.links.get(&peer).is_some_and(|l| l.is_connected())
    }

    /// The counters, in total and per peer.
    pub fn stats(&self) -> TcpStats {
        let peers = self.links.values().map(|l| l.stats()).collect();
        self.shared.counters.load(peers)
    }

    /// Sends `request` to peer `to` and waits for its reply (async; usable from any
    /// tokio runtime, or none: the wait runs on the transport's runtime).
    ///
    /// Fails fast with [`TcpError::NotConnected`] if no connection to `to` is up, with
    /// [`TcpError::TooLarge`] if the request does not fit in a frame, and with
    /// [`TcpError::Timeout`] if no reply comes within `timeout` (the request may still
    /// be served). Many calls may be in flight at once; replies are matched by id.
    pub async fn call(
        &self,
        to: NodeId,
        request: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, TcpError> {
        if self.shared.is_shut_down() {
            return Err(TcpError::Shutdown { to });
        }
        let link = self.links.get(&to).ok_or(TcpError::UnknownPeer { to })?;
        let limit = self.shared.config.max_frame_bytes;
        if FRAME_HEADER_BYTES + REQUEST_HEADER_BYTES + request.len() > limit {
            return Err(TcpError::TooLarge {
                to,
                bytes: request.len(),
                limit,
            });
        }
        let id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        let reply = link.start_call(id, request).map_err(|e| match e {
            QueueError::NotConnected => TcpError::NotConnected { to },
            QueueError::Full => TcpError::QueueFull { to },
            QueueError::Closed => TcpError::Shutdown { to },
        })?;
        // Forgets the reply slot however the wait ends (also if the caller drops us).
        let forget = ForgetCall {
            link: Arc::clone(link),
            id,
        };
        let wait = self.shared.runtime.spawn(async move {
            let result = tokio::time::timeout(timeout, reply).await;
            drop(forget);
            match result {
                Err(_) => Err(TcpError::Timeout { to, after: timeout }),
                Ok(Err(_)) => Err(TcpError::ConnectionLost { to }),
                Ok(Ok(Ok(bytes))) => Ok(bytes),
                Ok(Ok(Err(CallFailure::Remote(message)))) => Err(TcpError::Remote { to, message }),
                Ok(Ok(Err(CallFailure::ConnectionLost))) => Err(TcpError::ConnectionLost { to }),
                Ok(Ok(Err(CallFailure::Shutdown))) => Err(TcpError::Shutdown { to }),
            }
        });
        let abort = AbortOnDrop(wait.abort_handle());
        let result = wait.await;
        drop(abort);
        result.unwrap_or(Err(TcpError::Shutdown { to }))
    }

    /// Stops the listener, every connection and snapshot stream, and drops the
    /// attached node and the request handler. Idempotent. Outside the runtime's
    /// threads it waits (briefly) until the listening socket is closed, so the address
    /// can be bound again at once.
    pub fn shutdown(&self) {
        if self.shared.signal_shutdown() {
            tracing::info!(node = self.shared.config.id, addr = %self.local_addr, "TCP transport shutting down");
        }
        self.shared.set_node(None);
        self.shared.set_handler(None);
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
        for link in self.links.values() {
            link.fail_all_calls(|| CallFailure::Shutdown);
        }
        if Handle::try_current().is_err() && !self.listener_closed.wait(SHUTDOWN_WAIT) {
            tracing::warn!(node = self.shared.config.id, addr = %self.local_addr, "the listener did not close in time");
        }
    }

    fn drop_unroutable(&self) {
        inc(&self.shared.counters.dropped_disconnected);
    }
}

impl Drop for TcpTransport {
    fn drop(&mut self) {
        self.shared.signal_shutdown();
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
    }
}

impl Transport for TcpTransport {
    fn send(&self, msg: Message) {
        match self.links.get(&msg.to) {
            Some(link) if !self.shared.is_shut_down() => link.send(msg, &self.shared),
            _ => self.drop_unroutable(),
        }
    }

    fn send_snapshot(
        &self,
        to: NodeId,
        term: u64,
        meta: SnapshotMeta,
        from: NodeId,
        payload: Box<dyn SnapshotReader>,
        done: SnapshotDone,
    ) {
        let Some(link) = self.links.get(&to) else {
            done.finish(Err(SnapshotStreamError::Unreachable { to }));
            return;
        };
        if self.shared.is_shut_down() {
            done.finish(Err(SnapshotStreamError::Aborted {
                reason: "the transport shut down".to_owned(),
            }));
            return;
        }
        let out = Outgoing {
            to,
            addr: link.addr,
            term,
            meta,
            from,
            payload,
        };
        // If the runtime is gone the task is dropped, and so is `done`: it reports
        // `Abandoned`.
        drop(
            self.shared
                .runtime
                .spawn(snapshot_send::run(Arc::clone(&self.shared), out, done)),
        );
    }
}

/// Removes a call's reply slot when dropped.
struct ForgetCall {
    link: Arc<PeerLink>,
    id: u64,
}

impl Drop for ForgetCall {
    fn drop(&mut self) {
        self.link.forget_call(self.id);
    }
}

/// Aborts a task when dropped (a caller that stops waiting cancels its wait).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
