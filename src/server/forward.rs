//! The glue between the KV service's forwarding and the Raft TCP transport: a
//! follower's [`TcpForwarder`] sends a client batch to the leader as a transport
//! request, and the leader's [`ForwardHandler`] executes it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use raftkv_consensus::transport::tcp::{RequestHandler, TcpTransport};
use raftkv_kvservice::replica::Replica;
use raftkv_kvservice::server::{Forwarder, serve_forwarded};
use raftkv_storage::NodeId;

/// How long one forwarded batch may take on the leader before the follower retries.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(6);

/// Executes batches forwarded by followers on this member.
pub struct ForwardHandler {
    replica: Arc<Replica>,
}

impl ForwardHandler {
    /// Serves forwarded batches on `replica`.
    pub fn new(replica: Arc<Replica>) -> Self {
        Self { replica }
    }
}

impl RequestHandler for ForwardHandler {
    fn handle(&self, _from: NodeId, request: Bytes) -> Bytes {
        Bytes::from(serve_forwarded(&self.replica, &request))
    }
}

/// Sends batches to the leader over the Raft transport's request channel.
pub struct TcpForwarder {
    transport: Arc<TcpTransport>,
}

impl TcpForwarder {
    /// Forwards through `transport`.
    pub fn new(transport: Arc<TcpTransport>) -> Self {
        Self { transport }
    }
}

impl Forwarder for TcpForwarder {
    fn call(
        &self,
        to: NodeId,
        request: Vec<u8>,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send + 'static>> {
        let transport = Arc::clone(&self.transport);
        Box::pin(async move {
            transport
                .call(to, Bytes::from(request), FORWARD_TIMEOUT)
                .await
                .map(|b| b.to_vec())
                .map_err(|e| e.to_string())
        })
    }
}
