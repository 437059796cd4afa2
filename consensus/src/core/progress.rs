//! [`Progress`]: what a leader knows about one follower's log, and its flow control.
//!
//! * **Probe**: the leader does not know where the follower's log matches. It sends
//!   one AppendEntries at `next - 1` and waits for the answer (or the next heartbeat)
//!   before sending another.
//! * **Replicate**: the follower matched; the leader streams entries optimistically,
//!   advancing `next` as it sends, with at most `max_inflight_appends` appends not yet
//!   acknowledged.
//! * **Snapshot**: the follower needs entries the leader compacted away; a snapshot is
//!   being streamed and no appends are sent until it is answered.

use std::collections::VecDeque;

/// The replication state of one follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProgressState {
    Probe,
    Replicate,
    Snapshot,
}

/// A leader's view of one follower.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Progress {
    /// The follower's log matches the leader's through this index.
    pub(crate) matched: u64,
    /// The next index to send.
    pub(crate) next: u64,
    pub(crate) state: ProgressState,
    /// Probe: an AppendEntries is out; send no other until an answer or a heartbeat.
    pub(crate) probe_sent: bool,
    /// Replicate: last index of each un-acknowledged append, oldest first.
    inflight: VecDeque<u64>,
    /// Snapshot: the index of the snapshot being sent.
    pub(crate) pending_snapshot: u64,
    /// Snapshot: ticks since it was (re-)offered.
    pub(crate) snapshot_elapsed: u32,
    /// Heard from in the current CheckQuorum period.
    pub(crate) recent_active: bool,
    /// The highest ReadIndex round this follower acknowledged in the current term.
    pub(crate) read_ack: u64,
}

impl Progress {
    /// A follower the new leader knows nothing about: probe from `next`.
    pub(crate) fn new(next: u64) -> Self {
        Self {
            matched: 0,
            next,
            state: ProgressState::Probe,
            probe_sent: false,
            inflight: VecDeque::new(),
            pending_snapshot: 0,
            snapshot_elapsed: 0,
            recent_active: true,
            read_ack: 0,
        }
    }

    pub(crate) fn become_probe(&mut self) {
        self.state = ProgressState::Probe;
        self.next = self.matched + 1;
        self.probe_sent = false;
        self.inflight.clear();
        self.pending_snapshot = 0;
    }

    /// Probes again from `next` (after a rejection's hint).
    pub(crate) fn probe_from(&mut self, next: u64) {
        self.become_probe();
        self.next = next;
    }

    pub(crate) fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.next = self.matched + 1;
        self.probe_sent = false;
        self.inflight.clear();
        self.pending_snapshot = 0;
    }

    pub(crate) fn become_snapshot(&mut self, snapshot_index: u64) {
        self.state = ProgressState::Snapshot;
        self.probe_sent = false;
        self.inflight.clear();
        self.pending_snapshot = snapshot_index;
        self.snapshot_elapsed = 0;
    }

    /// Whether no AppendEntries carrying entries may be sent now.
    pub(crate) fn is_paused(&self, max_inflight: usize) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflight.len() >= max_inflight,
            ProgressState::Snapshot => true,
        }
    }

    /// Records an AppendEntries sent with entries through `last` (or none, if `last`
    /// is `None`).
    pub(crate) fn sent(&mut self, last: Option<u64>) {
        match self.state {
            ProgressState::Replicate => {
                if let Some(last) = last {
                    self.next = last + 1;
                    self.inflight.push_back(last);
                }
            }
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Snapshot => {}
        }
    }

    /// The follower matches through `index`. Returns whether `matched` moved.
    pub(crate) fn update_match(&mut self, index: u64) -> bool {
        let moved = index > self.matched;
        if moved {
            self.matched = index;
        }
        self.next = self.next.max(index + 1);
        while self.inflight.front().is_some_and(|&last| last <= index) {
            self.inflight.pop_front();
        }
        moved
    }

    #[cfg(test)]
    pub(crate) fn inflight_len(&self) -> usize {
        self.inflight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_sends_one_then_pauses() {
        let mut pr = Progress::new(5);
        assert!(!pr.is_paused(2));
        pr.sent(Some(7));
        assert!(pr.is_paused(2));
        assert_eq!(pr.next, 5, "probing does not move next optimistically");
    }

    #[test]
    fn replicate_window_fills_and_drains_with_acks() {
        let mut pr = Progress::new(5);
        pr.update_match(4);
        pr.become_replicate();
        pr.sent(Some(6));
        pr.sent(Some(9));
        assert_eq!((pr.next, pr.inflight_len()), (10, 2));
        assert!(pr.is_paused(2));
        assert!(pr.update_match(6));
        assert_eq!((pr.matched, pr.inflight_len()), (6, 1));
        assert!(!pr.is_paused(2));
        assert!(!pr.update_match(5), "stale acks do not move match back");
        assert_eq!((pr.matched, pr.next), (6, 10));
        pr.probe_from(8);
        assert_eq!(
            (pr.state, pr.next, pr.inflight_len()),
            (ProgressState::Probe, 8, 0)
        );
    }

    #[test]
    fn snapshot_state_pauses_and_probe_restarts_after_match() {
        let mut pr = Progress::new(3);
        pr.become_snapshot(10);
        assert!(pr.is_paused(8));
        pr.update_match(10);
        pr.become_probe();
        assert_eq!(
            (pr.state, pr.next, pr.pending_snapshot),
            (ProgressState::Probe, 11, 0)
        );
    }
}
