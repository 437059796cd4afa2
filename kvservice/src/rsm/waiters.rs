//! [`Waiters`]: callers waiting for their command to apply.
//!
//! A waiter is keyed by its operation id (client id, sequence number), registered
//! *before* the command is proposed, and told the (index, term) the proposal got. The
//! apply loop answers it when that operation applies — at whatever index — and fails it
//! with `WrongLeader` when a different command applies at its index (another leader
//! overwrote the slot). Answers go through a one-slot channel, so the apply loop never
//! blocks on a waiter, and a waiter that gave up (timed out) is simply gone.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use crate::command::{ClientId, Reply};
use crate::error::KvError;

/// An operation id: (client id, sequence number).
pub(crate) type OpId = (ClientId, u64);

struct Waiter {
    slot: Option<u64>,
    tx: SyncSender<Result<Reply, KvError>>,
}

/// The table of pending waiters.
#[derive(Default)]
pub(crate) struct Waiters {
    by_op: HashMap<OpId, Waiter>,
    by_index: BTreeMap<u64, OpId>,
    applied: u64,
}

impl Waiters {
    /// Starts tracking from `applied` (after restoring a snapshot).
    pub(crate) fn new(applied: u64) -> Self {
        Self {
            applied,
            ..Self::default()
        }
    }

    /// Number of waiters (for leak checks).
    pub(crate) fn len(&self) -> usize {
        self.by_op.len()
    }

    /// Registers a waiter for `op` before it is proposed. A waiter already registered
    /// for the same op (a caller retrying while its first attempt still waits) is failed.
    pub(crate) fn register(&mut self, op: OpId) -> Receiver<Result<Reply, KvError>> {
        let (tx, rx) = sync_channel(1);
        if let Some(old) = self.by_op.insert(op, Waiter { slot: None, tx }) {
            if let Some(i) = old.slot {
                self.by_index.remove(&i);
            }
            let _ = old
                .tx
                .try_send(Err(KvError::WrongLeader { leader_hint: None }));
        }
        rx
    }

    /// Records the log slot the proposal of `op` got. If the apply loop is already past
    /// it without having answered `op`, another command took the slot: fail now.
    pub(crate) fn proposed(&mut self, op: OpId, index: u64) {
        let Some(w) = self.by_op.get_mut(&op) else {
            return;
        };
        if index <= self.applied {
            if let Some(w) = self.by_op.remove(&op) {
                let _ =
                    w.tx.try_send(Err(KvError::WrongLeader { leader_hint: None }));
            }
            return;
        }
        w.slot = Some(index);
        if let Some(other) = self.by_index.insert(index, op)
            && other != op
            && let Some(w) = self.by_op.remove(&other)
        {
            let _ =
                w.tx.try_send(Err(KvError::WrongLeader { leader_hint: None }));
        }
    }

    /// Forgets `op` (its caller gave up).
    pub(crate) fn cancel(&mut self, op: OpId) {
        if let Some(w) = self.by_op.remove(&op)
            && let Some(i) = w.slot
            && self.by_index.get(&i) == Some(&op)
        {
            self.by_index.remove(&i);
        }
    }

    /// The apply loop applied `op` (if any) at `index` with `reply`.
    pub(crate) fn applied(&mut self, index: u64, op: Option<OpId>, reply: Option<&Reply>) {
        self.applied = index;
        if let (Some(op), Some(reply)) = (op, reply)
            && let Some(w) = self.by_op.remove(&op)
        {
            if let Some(i) = w.slot
                && self.by_index.get(&i) == Some(&op)
            {
                self.by_index.remove(&i);
            }
            let _ = w.tx.try_send(Ok(reply.clone()));
        }
        self.fail_through(index);
    }

    /// A snapshot replaced the state through `index`: every waiter at or below it is
    /// failed (a retry with the same sequence number is answered from the dedup table).
    pub(crate) fn snapshot_installed(&mut self, index: u64) {
        self.applied = self.applied.max(index);
        self.fail_through(index);
    }

    /// Fails every waiter (shutdown).
    pub(crate) fn fail_all(&mut self, make: impl Fn() -> KvError) {
        for (_, w) in self.by_op.drain() {
            let _ = w.tx.try_send(Err(make()));
        }
        self.by_index.clear();
    }

    fn fail_through(&mut self, index: u64) {
        while let Some((&i, &op)) = self.by_index.first_key_value() {
            if i > index {
                break;
            }
            self.by_index.remove(&i);
            if let Some(w) = self.by_op.remove(&op) {
                let _ =
                    w.tx.try_send(Err(KvError::WrongLeader { leader_hint: None }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answered_at_its_index_and_failed_when_overwritten() {
        let mut w = Waiters::new(0);
        let a = w.register((1, 1));
        let b = w.register((2, 1));
        w.proposed((1, 1), 1);
        w.proposed((2, 1), 2);
        w.applied(1, Some((1, 1)), Some(&Reply::Written { version: 1 }));
        assert!(matches!(
            a.try_recv(),
            Ok(Ok(Reply::Written { version: 1 }))
        ));
        // A different command lands at index 2: the waiter for (2, 1) fails.
        w.applied(2, Some((3, 1)), Some(&Reply::Written { version: 2 }));
        assert!(matches!(b.try_recv(), Ok(Err(KvError::WrongLeader { .. }))));
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn slot_already_passed_fails_at_once_and_cancel_leaves_nothing() {
        let mut w = Waiters::new(0);
        let a = w.register((1, 1));
        w.applied(1, None, None);
        w.applied(2, None, None);
        w.proposed((1, 1), 2);
        assert!(matches!(a.try_recv(), Ok(Err(KvError::WrongLeader { .. }))));
        let _b = w.register((1, 2));
        w.proposed((1, 2), 3);
        w.cancel((1, 2));
        assert_eq!(w.len(), 0);
        // Applying with nobody waiting does not block or panic.
        w.applied(3, Some((1, 2)), Some(&Reply::Deleted { existed: false }));
    }

    #[test]
    fn dropped_receivers_never_block_the_apply_loop() {
        let mut w = Waiters::new(0);
        for seq in 1..=1000 {
            drop(w.register((1, seq)));
            w.proposed((1, seq), seq);
        }
        w.applied(1000, None, None);
        assert_eq!(w.len(), 0);
    }
}
