//! [`Shared`]: the state every task of one transport reads, and the shutdown signal.

use std::sync::{Arc, PoisonError, RwLock};

use tokio::runtime::Handle;
use tokio::sync::watch;

use super::stats::Counters;
use super::{RequestHandler, TcpConfig};
use crate::node::NodeHandle;

/// State shared by the transport and its tasks.
pub(super) struct Shared {
    pub(super) config: TcpConfig,
    pub(super) runtime: Handle,
    pub(super) counters: Counters,
    node: RwLock<Option<NodeHandle>>,
    handler: RwLock<Option<Arc<dyn RequestHandler>>>,
    shutdown_tx: watch::Sender<bool>,
}

impl Shared {
    pub(super) fn new(config: TcpConfig, runtime: Handle) -> Self {
        Self {
            config,
            runtime,
            counters: Counters::default(),
            node: RwLock::new(None),
            handler: RwLock::new(None),
            shutdown_tx: watch::Sender::new(false),
        }
    }

    /// The attached node, if any.
    pub(super) fn node(&self) -> Option<NodeHandle> {
        self.node
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn set_node(&self, node: Option<NodeHandle>) {
        *self.node.write().unwrap_or_else(PoisonError::into_inner) = node;
    }

    /// The request handler, if one is set.
    pub(super) fn handler(&self) -> Option<Arc<dyn RequestHandler>> {
        self.handler
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn set_handler(&self, handler: Option<Arc<dyn RequestHandler>>) {
        *self.handler.write().unwrap_or_else(PoisonError::into_inner) = handler;
    }

    /// Signals every task to stop. Returns whether this call did it.
    pub(super) fn signal_shutdown(&self) -> bool {
        !self.shutdown_tx.send_replace(true)
    }

    pub(super) fn is_shut_down(&self) -> bool {
        *self.shutdown_tx.borrow()
    }

    /// A handle on the shutdown signal for one task.
    pub(super) fn shutdown_signal(&self) -> ShutdownSignal {
        ShutdownSignal(self.shutdown_tx.subscribe())
    }
}

/// Resolves once the transport shuts down.
#[derive(Debug, Clone)]
pub(super) struct ShutdownSignal(watch::Receiver<bool>);

impl ShutdownSignal {
    /// Waits for shutdown (returns at once if it already happened). Cancel safe.
    pub(super) async fn wait(&mut self) {
        // An error means the sender is gone: the transport is gone too.
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}
