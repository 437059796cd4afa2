//! [`TcpTransport`]: Raft traffic between processes over TCP, with an application
//! request/response channel on the same connections.
//!
//! # Wire
//!
//! Everything travels as the frames of [`frame`](super::frame) (12-byte header: length,
//! version, kind, flags, crc32), byte layouts in `storage/FORMAT.md`, section "Raft
//! wire frames (TCP transport)". Every connection opens with a Hello (magic, cluster
//! id, the dialer's node id); the acceptor checks it and closes the connection, with a
//! logged warning naming the peer address and the error, on a bad Hello (wrong magic,
//! wrong cluster, unknown node), a malformed or oversized frame (the decoder rejects an
//! oversized length before buffering, so memory stays bounded by
//! [`TcpConfig::max_frame_bytes`], and by 1 KiB until the Hello is checked; a Hello
//! must come within `handshake_timeout`) or any protocol violation.
//!
//! # Connection model
//!
//! * **Outbound links.** Each node dials each peer once (`peer::PeerLink`, one
//!   task per peer). That connection carries this node's Raft messages and requests to
//!   the peer, and the peer's responses to those requests back. The link redials after
//!   any failure with exponential backoff (`backoff_min` doubling to `backoff_max`,
//!   jittered in the upper half of each step; reset after a connection that lasted
//!   `backoff_max`).
//! * **Queues.** [`Transport::send`](crate::transport::Transport::send) never blocks:
//!   it drops (and counts) the message if the link is down, or if the peer's bounded
//!   queue (`queue_messages` messages, `queue_bytes` encoded bytes) is full; so a slow
//!   or dead peer only fills its own queue. The link's writer encodes and coalesces
//!   whatever is queued into one write of up to 256 KiB (`TCP_NODELAY` is set), and
//!   drops a connection whose write stalls for `write_timeout`. Messages queued when a
//!   connection breaks are dropped (stale by then). Requests have a queue of their own
//!   (`queue_requests`), served before messages, so a full Raft queue never holds a
//!   request back.
//! * **Inbound connections.** The listener accepts (at most `max_connections` at once),
//!   reads the Hello, and then serves either a message connection (Raft messages go to
//!   the attached node's [`NodeHandle::receive`](crate::node::NodeHandle::receive);
//!   requests run on a blocking thread and their responses are written back on the
//!   same socket) or, if the first frame is a `SnapshotBegin`, a snapshot stream. The
//!   reader never waits for a request handler: beyond `max_inflight_requests` per
//!   connection a request is answered at once with an "overloaded" error.
//!
//! # Snapshot streams
//!
//! Each snapshot goes on a connection of its own (`snapshot_send`), so a big one
//! never delays heartbeats: Hello, `SnapshotBegin` (sender, term, snapshot index and
//! term, payload length), `SnapshotChunk`s of up to
//! [`SNAPSHOT_CHUNK_BYTES`](crate::transport::SNAPSHOT_CHUNK_BYTES) (read from the
//! persister on a blocking thread, at most
//! [`SNAPSHOT_WINDOW_CHUNKS`](crate::transport::SNAPSHOT_WINDOW_CHUNKS) ahead of the
//! socket), `SnapshotEnd` (bytes sent, or an abort and its reason). The receiver
//! (`snapshot_recv`) feeds the chunks through a bounded channel to a `Read` passed
//! to [`NodeHandle::receive_snapshot`](crate::node::NodeHandle::receive_snapshot) on a
//! blocking thread; when the channel is full it stops reading the socket and TCP flow
//! control holds the sender. It answers with a `SnapshotAck` (installed, rejected, not
//! running, or failed with a message), possibly before the end if it declines early.
//! The sender reports exactly once through the stream's
//! [`SnapshotDone`](crate::transport::SnapshotDone): `Ok`, `Unreachable` (cannot
//! connect), `Rejected`, `Stopped`, `Io` (the payload could not be read or a write
//! failed), `Timeout` (no outcome within `snapshot_timeout` after the end) or
//! `Aborted` (anything else, including shutdown).
//!
//! # Requests
//!
//! [`TcpTransport::call`] gives the application (the KV layer forwarding client
//! commands to the leader) a request/response channel on the outbound link: each
//! request gets a transport-wide unique `u64` id, many may be in flight, and responses
//! are matched by id. The peer serves requests with its [`RequestHandler`] on a
//! blocking thread; without one it answers with an error response. A call fails fast
//! when the link is down and when its reply slot is lost with the connection.
//!
//! # Startup and shutdown
//!
//! [`Node::start`](crate::node::Node::start) needs the transport and inbound delivery
//! needs the node, so: [`TcpTransport::start`] binds and starts connecting,
//! `Node::start` takes the transport, and [`TcpTransport::attach`] hands it the
//! [`NodeHandle`](crate::node::NodeHandle) (Raft traffic arriving before that is
//! dropped). [`TcpTransport::shutdown`] stops the listener, every connection and
//! stream, and releases the node handle and request handler.

mod backoff;
mod config;
mod conn;
mod error;
mod handshake;
mod inbound;
mod peer;
mod secret;
mod shared;
mod snapshot_recv;
mod snapshot_send;
mod stats;
mod transport;

pub use config::{MIN_MAX_FRAME_BYTES, TcpConfig};
pub use error::TcpError;
pub use secret::ClusterSecret;
pub use stats::{PeerStats, TcpStats};
pub use transport::{RequestHandler, TcpTransport};
