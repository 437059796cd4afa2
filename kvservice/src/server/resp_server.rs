//! [`RespServer`]: the listener and its connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::config::ServerConfig;
use super::connection::{ClientGuard, serve};
use super::error::ServerError;
use super::forward::Forwarder;
use super::router::{Router, Routes};
use super::stats::{Counters, ServerStats};
use crate::backup::Backups;
use crate::replica::Replica;

/// What the listener and every connection share.
pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    pub(crate) router: Router,
    pub(crate) counters: Counters,
    pub(crate) started: Instant,
    pub(crate) port: u16,
    pub(crate) next_client_id: AtomicU64,
    /// Hot backups being fetched (`RAFTKV.BACKUP`).
    pub(crate) backups: Backups,
}

/// A running RESP server. Dropping it shuts it down.
pub struct RespServer {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    accept_task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for RespServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RespServer")
            .field("local_addr", &self.local_addr)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl RespServer {
    /// Binds `config.listen` and starts serving `replica` on `runtime`. A follower
    /// forwards writes and linearizable reads to the leader through `forwarder`
    /// (without one, it answers them with an error naming the leader once the retry
    /// budget runs out), or, with [`Redirect::Moved`](super::Redirect::Moved), answers
    /// `-MOVED`. Callable from inside or outside the runtime.
    ///
    /// # Errors
    ///
    /// [`ServerError::Config`] for settings [`ServerConfig::validate`] refuses, and
    /// [`ServerError::Bind`] / [`ServerError::Listener`] when the address cannot be
    /// served.
    pub fn start(
        config: ServerConfig,
        replica: Arc<Replica>,
        forwarder: Option<Arc<dyn Forwarder>>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<RespServer, ServerError> {
        config
            .validate(replica.node().id())
            .map_err(ServerError::Config)?;
        let addr = config.listen;
        let std_listener = std::net::TcpListener::bind(addr)
            .map_err(|source| ServerError::Bind { addr, source })?;
        let setup = |source| ServerError::Listener { addr, source };
        let local_addr = std_listener.local_addr().map_err(setup)?;
        std_listener.set_nonblocking(true).map_err(setup)?;
        let listener = {
            let _entered = runtime.enter();
            TcpListener::from_std(std_listener).map_err(setup)?
        };
        let shared = Arc::new(Shared {
            router: Router::new(
                replica,
                Routes {
                    forwarder,
                    retry_budget: config.retry_budget,
                    peer_addrs: config.peer_addrs.clone(),
                    redirect: config.redirect,
                    client_addrs: config.client_addrs.clone(),
                },
            ),
            backups: Backups::new(config.backup_dir.clone()),
            config,
            counters: Counters::default(),
            started: Instant::now(),
            port: local_addr.port(),
            next_client_id: AtomicU64::new(1),
        });
        let (shutdown, rx) = watch::channel(false);
        let accept_task = runtime.spawn(accept_loop(listener, Arc::clone(&shared), rx));
        tracing::info!(addr = %local_addr, node = shared.router.replica().node().id(), "RESP server listening");
        Ok(RespServer {
            shared,
            local_addr,
            shutdown,
            accept_task: Mutex::new(Some(accept_task)),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The counters so far.
    pub fn stats(&self) -> ServerStats {
        self.shared.counters.snapshot()
    }

    /// Stops accepting and closes every connection (a batch under way is abandoned and
    /// its waiters cancelled; commands already proposed may still apply). Returns at
    /// once; calling it again does nothing.
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
        if let Some(task) = self.accept_task.lock().take() {
            task.abort();
            tracing::info!(addr = %self.local_addr, "RESP server shut down");
        }
    }
}

impl Drop for RespServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let (mut stream, peer) = match accepted {
            Ok(it) => it,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let counters = &shared.counters;
        if counters.connected.load(Ordering::Relaxed) >= shared.config.max_clients as u64 {
            counters.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "max clients reached; connection refused");
            tokio::spawn(async move {
                let _ = stream
                    .write_all(b"-ERR max number of clients reached\r\n")
                    .await;
                let _ = stream.shutdown().await;
            });
            continue;
        }
        counters.connected.fetch_add(1, Ordering::Relaxed);
        counters.total_connections.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let guard = ClientGuard(Arc::clone(&shared));
        tokio::spawn(serve(stream, guard, shutdown.clone()));
    }
}
