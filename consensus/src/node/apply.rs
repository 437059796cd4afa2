//! The apply stream: committed entries and installed snapshots, in index order, from
//! the driver thread to the state machine.
//!
//! # Backpressure
//!
//! The stream is a bounded channel. The driver never blocks on it: when it is full, the
//! driver keeps what the core produced in its own queue ([`ApplyQueue`]) and goes on
//! ticking, persisting and answering peers. The consumer wakes the driver when it frees
//! room (the first `recv` after the driver found the channel full sends it a wake-up),
//! so the queue drains without polling.
//!
//! That queue holds entries the core also still holds in its in-memory log (nothing
//! can be compacted before the consumer has applied and snapshotted it), so it at most
//! doubles memory that is already bounded by the log size. To stop it growing on the
//! leader, proposals are refused with
//! [`NodeError::Overloaded`](super::NodeError::Overloaded) while the queue is longer
//! than [`NodeOptions::max_apply_backlog`](super::NodeOptions::max_apply_backlog).

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError, TrySendError};
use std::time::Duration;

use raftkv_storage::SnapshotReader;

use super::driver::Input;

/// One item of the apply stream.
pub enum ApplyItem {
    /// A committed entry. Empty `data` is a leader's no-op: skip it, but count the index
    /// as applied.
    Command {
        /// Log index.
        index: u64,
        /// Term of the entry.
        term: u64,
        /// The proposed bytes.
        data: Vec<u8>,
    },
    /// Replace the state machine with this snapshot: it holds the state as of `index`.
    /// The next command, if any, is `index + 1`.
    Snapshot {
        /// The last index the snapshot covers.
        index: u64,
        /// The term of the entry at `index`.
        term: u64,
        /// The payload, streamed from the persister.
        data: Box<dyn SnapshotReader>,
    },
}

impl ApplyItem {
    /// The index of the entry, or the last index a snapshot covers.
    pub fn index(&self) -> u64 {
        match self {
            Self::Command { index, .. } | Self::Snapshot { index, .. } => *index,
        }
    }

    /// The term of the entry, or of the snapshot's last entry.
    pub fn term(&self) -> u64 {
        match self {
            Self::Command { term, .. } | Self::Snapshot { term, .. } => *term,
        }
    }
}

impl fmt::Debug for ApplyItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Command { index, term, data } => f
                .debug_struct("Command")
                .field("index", index)
                .field("term", term)
                .field("len", &data.len())
                .finish(),
            Self::Snapshot { index, term, data } => f
                .debug_struct("Snapshot")
                .field("index", index)
                .field("term", term)
                .field("payload_len", &data.payload_len())
                .finish(),
        }
    }
}

/// The consumer's end of a node's apply stream.
///
/// Items come in index order, each exactly once for this node instance: first, if the
/// node recovered a snapshot, that snapshot; then the commands after it (including
/// those recovered from the log up to the persisted commit index) and any snapshot
/// installed from the leader. The stream ends (`recv` returns `None`) once the node has
/// stopped and every item it produced has been taken.
///
/// A consumer that stops reading never blocks the node; see the module docs.
pub struct ApplyStream {
    rx: Receiver<ApplyItem>,
    blocked: Arc<AtomicBool>,
    wake: Sender<Input>,
}

impl ApplyStream {
    /// Waits for the next item; `None` once the node stopped and the stream is drained.
    pub fn recv(&self) -> Option<ApplyItem> {
        let item = self.rx.recv().ok();
        self.took_one();
        item
    }

    /// Like [`recv`](Self::recv), waiting at most `timeout`. `Err` tells a timeout apart
    /// from the end of the stream.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<ApplyItem, RecvTimeoutError> {
        let item = self.rx.recv_timeout(timeout);
        if item.is_ok() {
            self.took_one();
        }
        item
    }

    /// Takes the next item if one is ready.
    pub fn try_recv(&self) -> Result<ApplyItem, TryRecvError> {
        let item = self.rx.try_recv();
        if item.is_ok() {
            self.took_one();
        }
        item
    }

    fn took_one(&self) {
        if self.blocked.swap(false, Ordering::SeqCst) {
            // The driver found the channel full and waits for room. If it is gone, the
            // stream is ending anyway.
            let _ = self.wake.send(Input::ApplySpace);
        }
    }
}

impl Iterator for ApplyStream {
    type Item = ApplyItem;

    fn next(&mut self) -> Option<ApplyItem> {
        self.recv()
    }
}

impl fmt::Debug for ApplyStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApplyStream").finish_non_exhaustive()
    }
}

/// The driver's end: a bounded channel plus the overflow queue.
pub(crate) struct ApplyQueue {
    tx: SyncSender<ApplyItem>,
    blocked: Arc<AtomicBool>,
    pending: VecDeque<ApplyItem>,
    consumer_gone: bool,
}

impl ApplyQueue {
    /// A queue with a channel of `capacity` items, and its consumer end. `wake` is the
    /// driver's input queue.
    pub(crate) fn new(capacity: usize, wake: Sender<Input>) -> (Self, ApplyStream) {
        let (tx, rx) = std::sync::mpsc::sync_channel(capacity.max(1));
        let blocked = Arc::new(AtomicBool::new(false));
        (
            Self {
                tx,
                blocked: Arc::clone(&blocked),
                pending: VecDeque::new(),
                consumer_gone: false,
            },
            ApplyStream { rx, blocked, wake },
        )
    }

    /// Queues an item behind everything queued before.
    pub(crate) fn push(&mut self, item: ApplyItem) {
        if !self.consumer_gone {
            self.pending.push_back(item);
        }
    }

    /// Items produced but not yet taken by the channel.
    pub(crate) fn backlog(&self) -> usize {
        self.pending.len()
    }

    /// Moves queued items into the channel until it is full. Never blocks.
    pub(crate) fn flush(&mut self) {
        while let Some(item) = self.pending.pop_front() {
            match self.tx.try_send(item) {
                Ok(()) => {}
                Err(TrySendError::Full(item)) => {
                    // Ask the consumer for a wake-up, then look again: if it took an
                    // item between the failed send and the flag, this send succeeds;
                    // if it takes one later, it sees the flag and wakes us.
                    self.blocked.store(true, Ordering::SeqCst);
                    match self.tx.try_send(item) {
                        Ok(()) => {}
                        Err(TrySendError::Full(item)) => {
                            self.pending.push_front(item);
                            return;
                        }
                        Err(TrySendError::Disconnected(_)) => {
                            self.consumer_gone();
                            return;
                        }
                    }
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.consumer_gone();
                    return;
                }
            }
        }
    }

    fn consumer_gone(&mut self) {
        if !self.consumer_gone {
            tracing::debug!("apply stream dropped by its consumer; discarding applied items");
        }
        self.consumer_gone = true;
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn cmd(index: u64) -> ApplyItem {
        ApplyItem::Command {
            index,
            term: 1,
            data: vec![index as u8],
        }
    }

    #[test]
    fn a_full_channel_keeps_items_in_order_and_the_consumer_wakes_the_driver() {
        let (wake_tx, wake_rx) = mpsc::channel();
        let (mut q, stream) = ApplyQueue::new(2, wake_tx);
        for i in 1..=5 {
            q.push(cmd(i));
        }
        q.flush();
        assert_eq!(q.backlog(), 3, "two items fit the channel, three wait");
        assert!(
            wake_rx.try_recv().is_err(),
            "no wake-up before the consumer takes one"
        );
        assert_eq!(stream.recv().map(|i| i.index()), Some(1));
        assert!(
            matches!(wake_rx.try_recv(), Ok(Input::ApplySpace)),
            "taking an item from a full channel wakes the driver"
        );
        assert_eq!(stream.try_recv().map(|i| i.index()).ok(), Some(2));
        assert!(wake_rx.try_recv().is_err(), "one wake-up per full channel");
        // The driver flushes on the wake-up: 3 and 4 fit, 5 waits, 6 queues behind it.
        q.flush();
        q.push(cmd(6));
        q.flush();
        assert_eq!(q.backlog(), 2);
        let next = |s: &ApplyStream| s.recv_timeout(Duration::from_secs(1)).map(|i| i.index());
        assert_eq!(next(&stream), Ok(3));
        assert!(matches!(wake_rx.try_recv(), Ok(Input::ApplySpace)));
        assert_eq!(next(&stream), Ok(4));
        q.flush();
        assert_eq!(next(&stream), Ok(5));
        assert_eq!(next(&stream), Ok(6));
        assert_eq!(q.backlog(), 0);
        drop(q);
        assert!(
            stream.recv().is_none(),
            "the stream ends when the driver is gone"
        );
    }

    #[test]
    fn a_dropped_consumer_discards_instead_of_queueing() {
        let (wake_tx, _wake_rx) = mpsc::channel();
        let (mut q, stream) = ApplyQueue::new(1, wake_tx);
        drop(stream);
        for i in 1..=3 {
            q.push(cmd(i));
        }
        q.flush();
        assert_eq!(q.backlog(), 0);
        q.push(cmd(4));
        assert_eq!(q.backlog(), 0);
    }
}
