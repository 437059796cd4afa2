//! [`Waiters`]: callers waiting for their command to apply, and reads waiting for the
//! applied index to reach their read index.
//!
//! A command waiter is keyed by its operation id (client id, sequence number) and a
//! token of its own, registered *before* the command is proposed, and told the (index,
//! term) the proposal got. The apply loop answers it when that operation applies — at
//! whatever index — and fails it with `WrongLeader` when a different command applies at
//! its index (another leader overwrote the slot), when a snapshot covers its index, or
//! when the leadership it proposed under ends ([`Waiters::leadership_changed`]).
//!
//! Answers go through a [`Notify`]: a one-slot std channel for blocking callers or a
//! `tokio` oneshot for async ones. Sending never blocks, so neither the apply loop nor
//! the Raft driver (which records proposals and leadership changes through callbacks)
//! ever waits on a caller, and a caller that gave up is simply gone. The table's
//! methods return the answers to send ([`Completions`]) rather than sending under the
//! lock: the caller sends them once it released the lock, so that waking a thread or a
//! task never extends the critical section.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::SyncSender;

use tokio::sync::oneshot;

use crate::command::{ClientId, Reply};
use crate::error::KvError;
use crate::rsm::raft::Leadership;

/// An operation id: (client id, sequence number).
pub(crate) type OpId = (ClientId, u64);

/// What a command waiter is answered with.
pub(crate) type Answer = Result<Reply, KvError>;

/// What a read waiter is answered with.
pub(crate) type ReadAnswer = Result<(), KvError>;

/// Where an answer goes.
pub(crate) enum Notify<T> {
    /// A blocking caller (a one-slot channel: `try_send` never blocks).
    Sync(SyncSender<T>),
    /// An async caller.
    Async(oneshot::Sender<T>),
}

impl<T> Notify<T> {
    /// Delivers `value`; a caller that gave up is ignored.
    pub(crate) fn send(self, value: T) {
        match self {
            Notify::Sync(tx) => {
                let _ = tx.try_send(value);
            }
            Notify::Async(tx) => {
                let _ = tx.send(value);
            }
        }
    }

    /// True when the async caller is gone (always false for blocking ones, which are
    /// cancelled explicitly).
    fn is_closed(&self) -> bool {
        match self {
            Notify::Sync(_) => false,
            Notify::Async(tx) => tx.is_closed(),
        }
    }
}

/// Answers taken out of the table, to send after releasing its lock.
#[derive(Default)]
pub(crate) struct Completions {
    commands: Vec<(Notify<Answer>, Answer)>,
    reads: Vec<(Notify<ReadAnswer>, ReadAnswer)>,
}

impl Completions {
    /// Sends every answer. Call without holding the table's lock.
    pub(crate) fn send(&mut self) {
        for (notify, answer) in self.commands.drain(..) {
            notify.send(answer);
        }
        for (notify, answer) in self.reads.drain(..) {
            notify.send(answer);
        }
    }
}

struct Waiter {
    token: u64,
    /// The log index and term the proposal got, once known.
    slot: Option<(u64, u64)>,
    notify: Notify<Answer>,
}

/// Read waiters are pruned of callers that gave up once this many are queued (and
/// then again each time the count doubles).
const READ_PRUNE_AT: usize = 4096;

/// The table of pending waiters.
#[derive(Default)]
pub(crate) struct Waiters {
    by_op: HashMap<OpId, Waiter>,
    by_index: BTreeMap<u64, OpId>,
    applied: u64,
    next_token: u64,
    /// Reads waiting for `applied` to reach their index.
    reads: BTreeMap<u64, Vec<Notify<ReadAnswer>>>,
    read_count: usize,
    read_prune_at: usize,
    /// The latest term reported to [`leadership_changed`](Self::leadership_changed).
    known_term: u64,
    /// Shut down: new waiters fail at once.
    closed: bool,
}

fn wrong_leader() -> KvError {
    KvError::WrongLeader { leader_hint: None }
}

impl Waiters {
    /// Starts tracking from `applied` (after restoring a snapshot).
    pub(crate) fn new(applied: u64) -> Self {
        Self {
            applied,
            read_prune_at: READ_PRUNE_AT,
            ..Self::default()
        }
    }

    /// Number of command waiters (for leak checks).
    pub(crate) fn len(&self) -> usize {
        self.by_op.len()
    }

    /// Number of read waiters, including callers that gave up and are not pruned yet.
    pub(crate) fn reads_len(&self) -> usize {
        self.read_count
    }

    /// Registers a waiter for `op` before it is proposed; returns its token. A waiter
    /// already registered for the same op (a caller retrying while its first attempt
    /// still waits) is failed.
    pub(crate) fn register(
        &mut self,
        op: OpId,
        notify: Notify<Answer>,
        done: &mut Completions,
    ) -> u64 {
        self.next_token += 1;
        let token = self.next_token;
        if self.closed {
            done.commands.push((notify, Err(KvError::Shutdown)));
            return token;
        }
        let new = Waiter {
            token,
            slot: None,
            notify,
        };
        if let Some(old) = self.by_op.insert(op, new) {
            if let Some((i, _)) = old.slot {
                self.by_index.remove(&i);
            }
            done.commands.push((old.notify, Err(wrong_leader())));
        }
        token
    }

    /// Records the log slot (index, term) the proposal of `op` got. If the apply loop
    /// is already past it without having answered `op`, another command took the slot:
    /// fail now.
    pub(crate) fn proposed(
        &mut self,
        op: OpId,
        token: u64,
        index: u64,
        term: u64,
        done: &mut Completions,
    ) {
        let Some(w) = self.by_op.get_mut(&op).filter(|w| w.token == token) else {
            return;
        };
        if index <= self.applied {
            if let Some(w) = self.by_op.remove(&op) {
                done.commands.push((w.notify, Err(wrong_leader())));
            }
            return;
        }
        w.slot = Some((index, term));
        if let Some(other) = self.by_index.insert(index, op)
            && other != op
            && let Some(w) = self.by_op.remove(&other)
        {
            done.commands.push((w.notify, Err(wrong_leader())));
        }
    }

    /// Fails the waiter of `op` (its proposal was refused).
    pub(crate) fn fail(&mut self, op: OpId, token: u64, error: KvError, done: &mut Completions) {
        if let Some(w) = self.remove(op, token) {
            done.commands.push((w.notify, Err(error)));
        }
    }

    /// Forgets `op` (its caller gave up).
    pub(crate) fn cancel(&mut self, op: OpId, token: u64) {
        self.remove(op, token);
    }

    fn remove(&mut self, op: OpId, token: u64) -> Option<Waiter> {
        if self.by_op.get(&op).is_none_or(|w| w.token != token) {
            return None;
        }
        let w = self.by_op.remove(&op)?;
        if let Some((i, _)) = w.slot
            && self.by_index.get(&i) == Some(&op)
        {
            self.by_index.remove(&i);
        }
        Some(w)
    }

    /// The apply loop applied `op` (if any) at `index` with `reply`.
    pub(crate) fn applied(
        &mut self,
        index: u64,
        op: Option<OpId>,
        reply: Option<&Reply>,
        done: &mut Completions,
    ) {
        self.applied = index;
        if let (Some(op), Some(reply)) = (op, reply)
            && let Some(w) = self.by_op.remove(&op)
        {
            if let Some((i, _)) = w.slot
                && self.by_index.get(&i) == Some(&op)
            {
                self.by_index.remove(&i);
            }
            done.commands.push((w.notify, Ok(reply.clone())));
        }
        self.fail_through(index, done);
        self.release_reads(done);
    }

    /// A snapshot replaced the state through `index`: every waiter at or below it is
    /// failed (a retry with the same sequence number is answered from the dedup table).
    pub(crate) fn snapshot_installed(&mut self, index: u64, done: &mut Completions) {
        self.applied = self.applied.max(index);
        self.fail_through(index, done);
        self.release_reads(done);
    }

    /// The replica's leadership is now `l`: every waiter whose proposal was accepted
    /// in another term, or in any term if `l` is not a leadership, is failed with
    /// `WrongLeader` (the entry may still commit; a retry with the same sequence number
    /// is answered from the dedup table). Waiters whose proposal has no answer yet are
    /// left alone: the node answers them after this change.
    ///
    /// Reports older than one already seen (`l.term` lower) are ignored, so that
    /// pollers racing each other cannot undo a newer report.
    pub(crate) fn leadership_changed(&mut self, l: Leadership, done: &mut Completions) {
        if l.term < self.known_term {
            return;
        }
        self.known_term = l.term;
        if self.by_index.is_empty() {
            return;
        }
        let doomed: Vec<u64> = self
            .by_index
            .iter()
            .filter(|&(_, op)| {
                self.by_op
                    .get(op)
                    .and_then(|w| w.slot)
                    .is_some_and(|(_, term)| !l.is_leader || term != l.term)
            })
            .map(|(&i, _)| i)
            .collect();
        for i in doomed {
            if let Some(op) = self.by_index.remove(&i)
                && let Some(w) = self.by_op.remove(&op)
            {
                done.commands.push((
                    w.notify,
                    Err(KvError::WrongLeader {
                        leader_hint: l.leader.filter(|_| !l.is_leader),
                    }),
                ));
            }
        }
    }

    /// Answers `notify` once the applied index reaches `index` (at once if it has).
    pub(crate) fn wait_applied(
        &mut self,
        index: u64,
        notify: Notify<ReadAnswer>,
        done: &mut Completions,
    ) {
        if self.closed {
            done.reads.push((notify, Err(KvError::Shutdown)));
            return;
        }
        if index <= self.applied {
            done.reads.push((notify, Ok(())));
            return;
        }
        if self.read_count >= self.read_prune_at {
            self.prune_reads();
            self.read_prune_at = (self.read_count * 2).max(READ_PRUNE_AT);
        }
        self.reads.entry(index).or_default().push(notify);
        self.read_count += 1;
    }

    /// Drops the read waiters whose caller gave up.
    pub(crate) fn prune_reads(&mut self) {
        self.reads.retain(|_, v| {
            v.retain(|n| !n.is_closed());
            !v.is_empty()
        });
        self.read_count = self.reads.values().map(Vec::len).sum();
    }

    /// Fails every waiter (shutdown).
    pub(crate) fn fail_all(&mut self, make: impl Fn() -> KvError, done: &mut Completions) {
        self.closed = true;
        for (_, w) in self.by_op.drain() {
            done.commands.push((w.notify, Err(make())));
        }
        self.by_index.clear();
        for (_, reads) in std::mem::take(&mut self.reads) {
            for notify in reads {
                done.reads.push((notify, Err(make())));
            }
        }
        self.read_count = 0;
    }

    fn fail_through(&mut self, index: u64, done: &mut Completions) {
        while let Some((&i, &op)) = self.by_index.first_key_value() {
            if i > index {
                break;
            }
            self.by_index.remove(&i);
            if let Some(w) = self.by_op.remove(&op) {
                done.commands.push((w.notify, Err(wrong_leader())));
            }
        }
    }

    fn release_reads(&mut self, done: &mut Completions) {
        while let Some(entry) = self.reads.first_entry() {
            if *entry.key() > self.applied {
                break;
            }
            let reads = entry.remove();
            self.read_count -= reads.len();
            done.reads.extend(reads.into_iter().map(|n| (n, Ok(()))));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::{Receiver, sync_channel};

    fn sync() -> (Notify<Answer>, Receiver<Answer>) {
        let (tx, rx) = sync_channel(1);
        (Notify::Sync(tx), rx)
    }

    fn leader(term: u64) -> Leadership {
        Leadership {
            term,
            is_leader: true,
            leader: Some(1),
        }
    }

    #[test]
    fn answered_at_its_index_and_failed_when_overwritten() {
        let mut w = Waiters::new(0);
        let mut done = Completions::default();
        let (na, a) = sync();
        let (nb, b) = sync();
        let ta = w.register((1, 1), na, &mut done);
        let tb = w.register((2, 1), nb, &mut done);
        w.proposed((1, 1), ta, 1, 1, &mut done);
        w.proposed((2, 1), tb, 2, 1, &mut done);
        w.applied(
            1,
            Some((1, 1)),
            Some(&Reply::Written { version: 1 }),
            &mut done,
        );
        done.send();
        assert!(matches!(
            a.try_recv(),
            Ok(Ok(Reply::Written { version: 1 }))
        ));
        // A different command lands at index 2: the waiter for (2, 1) fails.
        w.applied(
            2,
            Some((3, 1)),
            Some(&Reply::Written { version: 2 }),
            &mut done,
        );
        assert!(b.try_recv().is_err(), "answers wait until sent");
        done.send();
        assert!(matches!(b.try_recv(), Ok(Err(KvError::WrongLeader { .. }))));
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn slot_already_passed_fails_at_once_and_cancel_leaves_nothing() {
        let mut w = Waiters::new(0);
        let mut done = Completions::default();
        let (na, a) = sync();
        let ta = w.register((1, 1), na, &mut done);
        w.applied(1, None, None, &mut done);
        w.applied(2, None, None, &mut done);
        w.proposed((1, 1), ta, 2, 1, &mut done);
        done.send();
        assert!(matches!(a.try_recv(), Ok(Err(KvError::WrongLeader { .. }))));
        let (nb, _b) = sync();
        let tb = w.register((1, 2), nb, &mut done);
        w.proposed((1, 2), tb, 3, 1, &mut done);
        w.cancel((1, 2), tb);
        assert_eq!(w.len(), 0);
        // Applying with nobody waiting does not block or panic.
        w.applied(
            3,
            Some((1, 2)),
            Some(&Reply::Deleted { existed: false }),
            &mut done,
        );
        done.send();
    }

    #[test]
    fn a_stale_token_cannot_cancel_or_record_a_newer_registration() {
        let mut w = Waiters::new(0);
        let mut done = Completions::default();
        let (n1, first) = sync();
        let (n2, second) = sync();
        let t1 = w.register((1, 1), n1, &mut done);
        let t2 = w.register((1, 1), n2, &mut done);
        done.send();
        assert!(
            matches!(first.try_recv(), Ok(Err(KvError::WrongLeader { .. }))),
            "a second registration of the op fails the first"
        );
        w.proposed((1, 1), t1, 5, 1, &mut done);
        w.cancel((1, 1), t1);
        assert_eq!(w.len(), 1, "the old caller's cancel leaves the new waiter");
        w.proposed((1, 1), t2, 1, 1, &mut done);
        w.applied(
            1,
            Some((1, 1)),
            Some(&Reply::Written { version: 1 }),
            &mut done,
        );
        done.send();
        assert!(matches!(second.try_recv(), Ok(Ok(_))));
    }

    #[test]
    fn dropped_receivers_never_block_the_apply_loop() {
        let mut w = Waiters::new(0);
        let mut done = Completions::default();
        for seq in 1..=1000 {
            let (n, rx) = sync();
            drop(rx);
            let t = w.register((1, seq), n, &mut done);
            w.proposed((1, seq), t, seq, 1, &mut done);
        }
        w.applied(1000, None, None, &mut done);
        done.send();
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn leadership_change_fails_waiters_of_other_terms_only() {
        let mut w = Waiters::new(0);
        let mut done = Completions::default();
        let (na, a) = sync();
        let (nb, b) = sync();
        let (nc, c) = sync();
        let ta = w.register((1, 1), na, &mut done);
        let tb = w.register((2, 1), nb, &mut done);
        let _tc = w.register((3, 1), nc, &mut done);
        w.proposed((1, 1), ta, 1, 1, &mut done);
        w.proposed((2, 1), tb, 2, 2, &mut done);
        // (3, 1) has no answer from the node yet.
        w.leadership_changed(leader(2), &mut done);
        done.send();
        assert!(matches!(a.try_recv(), Ok(Err(KvError::WrongLeader { .. }))));
        assert!(b.try_recv().is_err(), "proposed in the current term: waits");
        // An older report (a slow poller) changes nothing.
        w.leadership_changed(
            Leadership {
                term: 1,
                is_leader: false,
                leader: None,
            },
            &mut done,
        );
        done.send();
        assert!(b.try_recv().is_err());
        w.leadership_changed(
            Leadership {
                term: 2,
                is_leader: false,
                leader: Some(3),
            },
            &mut done,
        );
        done.send();
        assert!(matches!(
            b.try_recv(),
            Ok(Err(KvError::WrongLeader {
                leader_hint: Some(3)
            }))
        ));
        assert!(c.try_recv().is_err(), "not proposed yet: left alone");
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn reads_are_released_in_index_order_and_failed_on_shutdown() {
        let mut w = Waiters::new(3);
        let mut done = Completions::default();
        let mut rxs = Vec::new();
        for index in [2, 5, 4, 9] {
            let (tx, rx) = oneshot::channel();
            w.wait_applied(index, Notify::Async(tx), &mut done);
            rxs.push(rx);
        }
        done.send();
        assert!(matches!(rxs[0].try_recv(), Ok(Ok(()))), "already applied");
        assert_eq!(w.reads_len(), 3);
        w.applied(4, None, None, &mut done);
        w.snapshot_installed(5, &mut done);
        done.send();
        assert!(matches!(rxs[1].try_recv(), Ok(Ok(()))));
        assert!(matches!(rxs[2].try_recv(), Ok(Ok(()))));
        assert!(rxs[3].try_recv().is_err());
        w.fail_all(|| KvError::Shutdown, &mut done);
        done.send();
        assert!(matches!(rxs[3].try_recv(), Ok(Err(KvError::Shutdown))));
        assert_eq!(w.reads_len(), 0);
    }
}
