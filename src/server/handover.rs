//! Leadership handover before a graceful stop: a leader that is told to stop asks a
//! follower to take over (Raft's leader transfer: the follower is brought up to date,
//! then told to campaign at once), so that a rolling restart costs the cluster no
//! election timeout and its clients no unavailable window beyond one round trip.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use raftkv_consensus::Role;
use raftkv_consensus::node::NodeHandle;
use raftkv_storage::NodeId;

/// Hands leadership from `node` (if it leads) to one of `peers`, trying each in turn
/// for up to `per_peer`, within `budget` overall. Returns the member that took over, or
/// `None` if this node did not lead or no member took over in time (the stop goes on:
/// the others then elect a leader after their election timeout, as after a crash).
pub(crate) fn hand_over(
    node: &NodeHandle,
    peers: &[NodeId],
    per_peer: Duration,
    budget: Duration,
) -> Option<NodeId> {
    let me = node.id();
    if node.status().role != Role::Leader {
        return None;
    }
    let deadline = Instant::now() + budget;
    let (tx, rx) = mpsc::channel();
    node.watch_status(move |s| {
        // The receiver is gone once the handover is over; later reports are dropped.
        let _ = tx.send((s.role, s.leader));
    });
    for &to in peers.iter().filter(|&&p| p != me) {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if let Err(e) = node.transfer_leadership(to) {
            tracing::warn!(id = me, to, error = %e, "leadership transfer refused");
            if node.status().role != Role::Leader {
                return node.status().leader.filter(|&l| l != me);
            }
            continue;
        }
        tracing::info!(id = me, to, "handing leadership over before stopping");
        let until = (now + per_peer).min(deadline);
        loop {
            let status = node.status();
            if status.role != Role::Leader {
                let successor = status.leader.filter(|&l| l != me);
                tracing::info!(id = me, successor = ?successor, "leadership handed over");
                return successor.or(Some(to));
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            // Woken by the next status report (any change), or at the per-peer limit.
            match rx.recv_timeout(left) {
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
            }
        }
        tracing::warn!(id = me, to, "member did not take over in time");
    }
    None
}
