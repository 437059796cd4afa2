//! How Raft nodes reach each other: the [`Transport`] trait, chunked snapshot streams
//! and an in-process network for tests and benchmarks.
//!
//! The node runtime ([`crate::node`]) hands every outgoing [`Message`] to a
//! [`Transport`] and feeds incoming ones to the receiving node through
//! [`NodeHandle::receive`](crate::node::NodeHandle::receive). Snapshots are too big
//! for one message: they travel as a stream of bounded chunks
//! ([`chunk`]) and end in
//! [`NodeHandle::receive_snapshot`](crate::node::NodeHandle::receive_snapshot) on the
//! receiving side.
//!
//! [`InProcessNetwork`] connects N nodes of one process, with fault injection
//! (disconnect, random drops from a seeded RNG) and counters. [`TcpTransport`]
//! ([`tcp`]) connects nodes in different processes, with the frames of [`frame`].

pub mod chunk;
pub mod frame;
mod inprocess;
pub mod tcp;
pub mod wire;

use std::fmt;

use raftkv_storage::{NodeId, SnapshotMeta, SnapshotReader, StorageError};

use crate::Message;

pub use inprocess::{InProcessNetwork, InProcessTransport, LinkStats};
pub use tcp::{RequestHandler, TcpConfig, TcpError, TcpStats, TcpTransport};

/// Payload bytes per snapshot chunk.
pub const SNAPSHOT_CHUNK_BYTES: usize = 64 * 1024;

/// Chunks a snapshot stream may have in flight (sent, not yet consumed by the
/// receiver). With [`SNAPSHOT_CHUNK_BYTES`] this bounds a stream's buffered memory to
/// `(SNAPSHOT_WINDOW_CHUNKS + 2) * SNAPSHOT_CHUNK_BYTES` (the window, plus one chunk
/// being read from the source and one being written into the receiver's persister).
pub const SNAPSHOT_WINDOW_CHUNKS: usize = 4;

/// Carries Raft traffic from one node to its peers.
///
/// # Contract
///
/// * **Best effort.** [`send`](Transport::send) may drop a message, deliver it late,
///   deliver it more than once, or reorder it relative to other messages. Raft
///   tolerates all of these; the transport never reports a loss.
/// * **Never blocks on a peer.** `send` and [`send_snapshot`](Transport::send_snapshot)
///   are called from the node's driver thread, which also ticks the election timer and
///   persists the log. They must return promptly however slow, dead or partitioned the
///   peer is: queue (with a bound, dropping beyond it) or hand off to another thread.
/// * **Snapshots stream in bounded memory.** `send_snapshot` reads `payload` in chunks
///   (of at most [`SNAPSHOT_CHUNK_BYTES`] for the provided implementations) with a
///   bounded number of chunks in flight, on a thread of its own, and the receiving side
///   passes them to
///   [`NodeHandle::receive_snapshot`](crate::node::NodeHandle::receive_snapshot) as a
///   reader, never holding the whole payload in memory.
/// * **Every snapshot stream reports its outcome exactly once** through its
///   [`SnapshotDone`]: `Ok(())` once the receiver has committed the snapshot durably and
///   stepped it into its core, an error otherwise. Dropping a `SnapshotDone` without
///   calling [`finish`](SnapshotDone::finish) reports
///   [`SnapshotStreamError::Abandoned`], so a transport cannot lose an outcome.
/// * **Serialization.** Messages are plain serde values; a transport that crosses a
///   process boundary encodes them with [`wire::encode_message`] and decodes them with
///   [`wire::decode_message`] (both go through `raftkv_storage::codec`).
pub trait Transport: Send + Sync {
    /// Sends `msg` to `msg.to`, best effort, without blocking.
    fn send(&self, msg: Message);

    /// Streams a snapshot payload from `from` to `to` in chunks, without blocking the
    /// caller, and reports the outcome through `done`.
    ///
    /// `term` is the sender's term when it decided to send, `meta` the snapshot's index
    /// and term (equal to `payload.meta()`).
    fn send_snapshot(
        &self,
        to: NodeId,
        term: u64,
        meta: SnapshotMeta,
        from: NodeId,
        payload: Box<dyn SnapshotReader>,
        done: SnapshotDone,
    );
}

/// Why a snapshot stream did not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotStreamError {
    /// The peer is unknown, disconnected or unreachable.
    #[error("node {to} is unreachable")]
    Unreachable {
        /// The intended receiver.
        to: NodeId,
    },
    /// The receiving core declined the offer (stale term, or it already holds
    /// everything up to the snapshot's index).
    #[error("snapshot at index {} (term {}) was declined by the receiver", meta.index, meta.term)]
    Rejected {
        /// The snapshot offered.
        meta: SnapshotMeta,
    },
    /// The stream broke off before its end.
    #[error("snapshot stream aborted: {reason}")]
    Aborted {
        /// Why.
        reason: String,
    },
    /// Reading or writing payload bytes failed.
    #[error("snapshot stream IO: {0}")]
    Io(#[from] std::io::Error),
    /// A persister refused to open, write or commit the snapshot.
    #[error("snapshot storage: {0}")]
    Storage(#[from] StorageError),
    /// The receiving node is not running.
    #[error("node {id} is not running")]
    Stopped {
        /// The receiving node.
        id: NodeId,
    },
    /// A step of the stream took longer than its limit.
    #[error("snapshot stream timed out while {during}")]
    Timeout {
        /// What was being waited for.
        during: &'static str,
    },
    /// The transport dropped the stream's [`SnapshotDone`] without reporting.
    #[error("the transport abandoned the snapshot stream")]
    Abandoned,
}

type DoneFn = Box<dyn FnOnce(Result<(), SnapshotStreamError>) + Send>;

/// Reports the outcome of one snapshot stream to the node that started it.
///
/// Call [`finish`](Self::finish) once; dropping it unfinished reports
/// [`SnapshotStreamError::Abandoned`].
pub struct SnapshotDone {
    report: Option<DoneFn>,
}

impl SnapshotDone {
    /// Wraps the callback that receives the outcome.
    pub fn new(report: impl FnOnce(Result<(), SnapshotStreamError>) + Send + 'static) -> Self {
        Self {
            report: Some(Box::new(report)),
        }
    }

    /// Reports the outcome.
    pub fn finish(mut self, outcome: Result<(), SnapshotStreamError>) {
        if let Some(report) = self.report.take() {
            report(outcome);
        }
    }
}

impl Drop for SnapshotDone {
    fn drop(&mut self) {
        if let Some(report) = self.report.take() {
            report(Err(SnapshotStreamError::Abandoned));
        }
    }
}

impl fmt::Debug for SnapshotDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotDone")
            .field("reported", &self.report.is_none())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn dropping_done_reports_abandoned_and_finish_reports_once() {
        let (tx, rx) = mpsc::channel();
        let tx2 = tx.clone();
        drop(SnapshotDone::new(move |r| tx.send(r).expect("send")));
        assert!(matches!(
            rx.recv().expect("outcome"),
            Err(SnapshotStreamError::Abandoned)
        ));
        SnapshotDone::new(move |r| tx2.send(r).expect("send")).finish(Ok(()));
        assert!(matches!(rx.recv().expect("outcome"), Ok(())));
        assert!(rx.recv().is_err(), "exactly one outcome per stream");
    }
}
