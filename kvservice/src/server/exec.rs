//! [`execute_batch`]: runs a batch of commands on the leader, in order; and
//! [`ExecError`], the serializable form of its failures.

use raftkv_storage::NodeId;
use serde::{Deserialize, Serialize};

use crate::command::{Command, Reply};
use crate::error::KvError;
use crate::replica::Replica;

/// Why a command of a batch got no answer from the state machine. Unlike
/// [`KvError`] it is serializable, so it travels back in a forwarded reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// The member is not the leader (or lost leadership before the command applied).
    #[error("not the leader (leader hint: {leader_hint:?})")]
    WrongLeader {
        /// The leader it believes in.
        leader_hint: Option<NodeId>,
    },
    /// The command did not apply in time (it may still apply).
    #[error("timed out after {waited_ms} ms waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        waited_ms: u64,
    },
    /// The member refuses proposals until its state machine catches up.
    #[error("overloaded: {backlog} applied entries wait for the state machine")]
    Overloaded {
        /// Entries waiting.
        backlog: u64,
    },
    /// The member is shutting down.
    #[error("the KV service is shut down")]
    Shutdown,
    /// Not run, because an earlier command of the batch failed with a transient error
    /// (later commands must wait for it to be retried).
    #[error("not attempted: an earlier command of the batch failed")]
    NotAttempted,
    /// The command is too large to replicate.
    #[error("request of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Its encoded size.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// No leader is known.
    #[error("no leader is known")]
    NoLeader,
    /// The leader could not be reached (the request may or may not have run there).
    #[error("cannot reach node {to}: {detail}")]
    Unreachable {
        /// The member tried.
        to: NodeId,
        /// Why.
        detail: String,
    },
    /// Any other failure (storage, consensus, codec); not retried.
    #[error("{0}")]
    Failed(String),
}

impl ExecError {
    /// True when the same command may succeed if retried (at the same or another
    /// member) with the same sequence number.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, ExecError::TooLarge { .. } | ExecError::Failed(_))
    }

    /// True when a write may have applied although it got this error.
    pub fn may_have_applied(&self) -> bool {
        matches!(
            self,
            ExecError::WrongLeader { .. }
                | ExecError::Timeout { .. }
                | ExecError::Shutdown
                | ExecError::Unreachable { .. }
        )
    }
}

impl From<KvError> for ExecError {
    fn from(e: KvError) -> Self {
        match e {
            KvError::WrongLeader { leader_hint } => ExecError::WrongLeader { leader_hint },
            KvError::Timeout { what, waited_ms } => ExecError::Timeout {
                what: what.to_string(),
                waited_ms,
            },
            KvError::Shutdown => ExecError::Shutdown,
            KvError::TooLarge { len, max } => ExecError::TooLarge {
                len: len as u64,
                max,
            },
            KvError::Overloaded { backlog } => ExecError::Overloaded {
                backlog: backlog as u64,
            },
            other => ExecError::Failed(other.to_string()),
        }
    }
}

/// Runs `cmds` on `replica` in order and answers each (blocking: call it from a
/// blocking thread). Meant for the leader; elsewhere every command fails fast with
/// [`ExecError::WrongLeader`].
///
/// Each maximal run of reads is served from one linearizable read barrier
/// ([`Rsm::read_view`](crate::rsm::Rsm::read_view)); each write is submitted and
/// waited for before the next command runs, so a session never has two writes in
/// flight (its dedup table entry covers the one retried). Once a command fails with a
/// retryable error (or its session turns out expired), the commands after it are not
/// run and get [`ExecError::NotAttempted`]: the caller retries from the failed one, in
/// order.
pub fn execute_batch(replica: &Replica, cmds: &[Command]) -> Vec<Result<Reply, ExecError>> {
    let mut out: Vec<Result<Reply, ExecError>> = Vec::with_capacity(cmds.len());
    let mut i = 0;
    let mut failed = false;
    while i < cmds.len() {
        if failed {
            out.push(Err(ExecError::NotAttempted));
            i += 1;
            continue;
        }
        if cmds[i].op.is_write() {
            let result = replica
                .rsm()
                .submit(cmds[i].clone())
                .map_err(ExecError::from);
            // A session unknown to the state machine stops the batch too: the caller
            // starts a new session and retries from this command.
            failed = match &result {
                Ok(reply) => *reply == Reply::SessionExpired,
                Err(e) => e.is_retryable(),
            };
            out.push(result);
            i += 1;
            continue;
        }
        let end = cmds[i..]
            .iter()
            .position(|c| c.op.is_write())
            .map_or(cmds.len(), |n| i + n);
        let reads = &cmds[i..end];
        match replica.rsm().read_view(|sm| {
            reads
                .iter()
                .map(|c| sm.query(&c.op).ok_or(()))
                .collect::<Vec<_>>()
        }) {
            Ok(replies) => out.extend(replies.into_iter().map(|r| {
                r.map_err(|()| ExecError::Failed("internal: a read answered as a write".into()))
            })),
            Err(e) => {
                let e = ExecError::from(e);
                failed = e.is_retryable();
                out.extend(reads.iter().map(|_| Err(e.clone())));
            }
        }
        i = end;
    }
    out
}
