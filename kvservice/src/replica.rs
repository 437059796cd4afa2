//! [`Replica`]: one member of a replicated KV service — a Raft node (from
//! `raftkv-consensus`) and the [`Rsm`] that applies its log — plus the adapter that lets
//! the RSM drive the node through [`RaftHandle`].

use std::sync::Arc;
use std::time::Duration;

use raftkv_consensus::node::{ApplyItem, ApplyStream, Node, NodeError, NodeHandle, NodeOptions};
use raftkv_consensus::transport::Transport;
use raftkv_consensus::{Config, ProposeError, Role};
use raftkv_storage::{Persister, SnapshotMeta};

use crate::command::{Command, Op, Reply};
use crate::error::KvError;
pub use crate::proposal_limit::DEFAULT_MAX_PENDING_PROPOSALS;
use crate::proposal_limit::{ProposalLimit, ProposalPermit};
use crate::rsm::{
    ApplyMsg, Leadership, LeadershipWatcher, ProposeCallback, RaftHandle, ReadIndexCallback,
    ReadMode, Rsm, RsmConfig,
};

/// Everything a replica needs to know.
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    /// Raft protocol settings (id, members, timeouts).
    pub raft: Config,
    /// Runtime settings (tick length, RNG seed, queues).
    pub node: NodeOptions,
    /// State machine settings (max_raft_state, timeouts, read mode).
    pub rsm: RsmConfig,
    /// Most client writes proposed through [`Replica::admit_write`] and not yet
    /// answered; more are refused with [`KvError::Busy`]. Default
    /// [`DEFAULT_MAX_PENDING_PROPOSALS`].
    pub max_pending_proposals: usize,
}

/// The consensus node, seen through the narrow interface the RSM uses.
#[derive(Debug, Clone)]
pub struct NodeRaft(pub NodeHandle);

impl RaftHandle for NodeRaft {
    fn propose(&self, data: Vec<u8>) -> Result<(u64, u64), KvError> {
        self.0.propose(data).map_err(node_error)
    }

    fn propose_batch(&self, batch: Vec<Vec<u8>>) -> Vec<Result<(u64, u64), KvError>> {
        self.0
            .propose_batch(batch)
            .into_iter()
            .map(|r| r.map_err(node_error))
            .collect()
    }

    /// The node calls `on_proposed` on its driver thread right after appending, before
    /// the round's status (and so any end of that leadership) is reported.
    fn propose_batch_with(&self, batch: Vec<Vec<u8>>, on_proposed: ProposeCallback) {
        self.0.propose_batch_with(batch, move |results| {
            on_proposed(results.into_iter().map(|r| r.map_err(node_error)).collect());
        });
    }

    fn read_index(&self, timeout: Duration) -> Result<u64, KvError> {
        self.0.read_index(timeout).map_err(node_error)
    }

    fn read_index_with(&self, timeout: Duration, on_read: ReadIndexCallback) {
        self.0
            .read_index_with(timeout, move |r| on_read(r.map_err(node_error)));
    }

    fn leadership(&self) -> Leadership {
        leadership(&self.0.status())
    }

    fn watch_leadership(&self, mut watcher: LeadershipWatcher) -> bool {
        self.0.watch_status(move |s| watcher(leadership(s)));
        true
    }

    fn commit_index(&self) -> u64 {
        self.0.status().commit
    }

    fn snapshot_taken(&self, meta: SnapshotMeta) {
        if let Err(e) = self.0.snapshot_taken(meta) {
            tracing::warn!(index = meta.index, error = %e, "could not tell raft about a snapshot");
        }
    }
}

fn leadership(s: &raftkv_consensus::Status) -> Leadership {
    Leadership {
        term: s.term,
        is_leader: s.role == Role::Leader,
        leader: s.leader,
    }
}

/// Maps a consensus error to what a KV caller can act on.
pub fn node_error(e: NodeError) -> KvError {
    if e.is_not_leader() {
        return KvError::WrongLeader {
            leader_hint: e.leader_hint(),
        };
    }
    match e {
        NodeError::Timeout { op, after, .. } => KvError::Timeout {
            what: op,
            waited_ms: after.as_millis() as u64,
        },
        NodeError::Rejected(ProposeError::TooLarge { len, max }) => KvError::TooLarge { len, max },
        NodeError::Rejected(ProposeError::TransferInProgress) => {
            KvError::WrongLeader { leader_hint: None }
        }
        NodeError::Overloaded { backlog } => KvError::Overloaded { backlog },
        NodeError::Stopped { .. } | NodeError::ShutdownTimedOut { .. } => KvError::Shutdown,
        other => KvError::Consensus(other.to_string()),
    }
}

/// Turns the node's apply stream into the RSM's.
fn apply_messages(stream: ApplyStream) -> impl Iterator<Item = ApplyMsg> + Send + 'static {
    std::iter::from_fn(move || {
        stream.recv().map(|item| match item {
            ApplyItem::Command { index, term, data } => ApplyMsg::Command { index, term, data },
            ApplyItem::Snapshot { index, term, data } => ApplyMsg::Snapshot {
                meta: SnapshotMeta { index, term },
                payload: Box::new(data),
            },
        })
    })
}

/// One member of the replicated KV service.
#[derive(Debug)]
pub struct Replica {
    node: NodeHandle,
    rsm: Rsm,
    persister: Arc<dyn Persister>,
    proposals: ProposalLimit,
}

impl Replica {
    /// Recovers from `persister` (snapshot first, then the log) and starts.
    pub fn start(
        config: ReplicaConfig,
        persister: Arc<dyn Persister>,
        transport: Arc<dyn Transport>,
    ) -> Result<Replica, KvError> {
        let (node, stream) =
            Node::start(config.raft, Arc::clone(&persister), transport, config.node).map_err(
                |e| match e {
                    NodeError::Recover(s) => KvError::Storage(s),
                    other => KvError::Consensus(other.to_string()),
                },
            )?;
        let rsm = match Rsm::start(
            Arc::new(NodeRaft(node.clone())),
            apply_messages(stream),
            Arc::clone(&persister),
            config.rsm,
        ) {
            Ok(rsm) => rsm,
            Err(e) => {
                let _ = node.shutdown();
                return Err(e);
            }
        };
        rsm.load_progress().log_while_loading(node.id());
        Ok(Replica {
            node,
            rsm,
            persister,
            proposals: ProposalLimit::new(config.max_pending_proposals),
        })
    }

    /// The Raft node.
    pub fn node(&self) -> &NodeHandle {
        &self.node
    }

    /// The replicated state machine.
    pub fn rsm(&self) -> &Rsm {
        &self.rsm
    }

    /// The persister.
    pub fn persister(&self) -> &Arc<dyn Persister> {
        &self.persister
    }

    /// Admits one client write to be proposed: hold the permit until its answer (or
    /// failure) is in. Refused with [`KvError::Busy`] while
    /// [`ReplicaConfig::max_pending_proposals`] writes are pending.
    pub fn admit_write(&self) -> Result<ProposalPermit, KvError> {
        self.proposals.admit()
    }

    /// Client writes admitted and not yet answered.
    pub fn pending_proposals(&self) -> usize {
        self.proposals.pending()
    }

    /// Serves one client command: reads as configured (ReadIndex or through the log),
    /// writes through the log.
    pub fn handle(&self, cmd: &Command) -> Result<Reply, KvError> {
        match &cmd.op {
            Op::Get { key } if self.read_mode() == ReadMode::ReadIndex => {
                self.rsm.read(key.clone(), cmd.client_id, cmd.seq)
            }
            op if !op.is_write() && self.read_mode() == ReadMode::ReadIndex => self
                .rsm
                .read_view(|sm| sm.query(op))
                .map(|reply| reply.unwrap_or(Reply::ErrNoKey)),
            _ => {
                let _permit = self.admit_write()?;
                self.rsm.submit(cmd.clone())
            }
        }
    }

    fn read_mode(&self) -> ReadMode {
        self.rsm.read_mode()
    }

    /// Stops the node, then the state machine (which fails every waiter).
    pub fn shutdown(&self) {
        if let Err(e) = self.node.shutdown() {
            tracing::warn!(id = self.node.id(), error = %e, "node shutdown");
        }
        self.rsm.shutdown();
    }
}
