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
    /// The leader has its most writes pending ([`KvError::Busy`]): this one was not
    /// proposed. Not retried: the client hears `-BUSY` at once. (Last, so that the
    /// variants before it keep their encoding in forwarded replies.)
    #[error("too many pending proposals (at most {max} per member); try again later")]
    Busy {
        /// The leader's limit.
        max: u64,
    },
}

impl ExecError {
    /// True when the same command may succeed if retried (at the same or another
    /// member) with the same sequence number.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            ExecError::TooLarge { .. } | ExecError::Failed(_) | ExecError::Busy { .. }
        )
    }

    /// The Redis error line a client gets for this failure, without the `-`:
    /// `BUSY ...` for [`ExecError::Busy`], `ERR ...` otherwise.
    pub fn redis_error(&self) -> String {
        match self {
            ExecError::Busy { .. } => format!("BUSY {self}"),
            other => format!("ERR {other}"),
        }
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
            KvError::Busy { max } => ExecError::Busy { max: max as u64 },
            other => ExecError::Failed(other.to_string()),
        }
    }
}

/// Runs `cmds` on `replica` in order and answers each (blocking: call it from a
/// blocking thread; async callers use [`execute_batch_async`]). Meant for the leader;
/// elsewhere every command fails fast with [`ExecError::WrongLeader`].
///
/// A write is proposed only if the replica admits it ([`Replica::admit_write`]);
/// one refused gets [`ExecError::Busy`] and the batch carries on.
///
/// Each maximal run of reads is served from one linearizable read barrier
/// ([`Rsm::read_view`](crate::rsm::Rsm::read_view)); each write is submitted and
/// waited for before the next command runs, so a session never has two writes in
/// flight (its dedup table entry covers the one retried). Once a command fails with a
/// retryable error (or its session turns out expired), the commands after it are not
/// run and get [`ExecError::NotAttempted`]: the caller retries from the failed one, in
/// order.
pub fn execute_batch(replica: &Replica, cmds: &[Command]) -> Vec<Result<Reply, ExecError>> {
    let mut batch = BatchRun::new(cmds);
    while let Some(step) = batch.next_step() {
        match step {
            Step::Write(cmd) => {
                let result = replica
                    .admit_write()
                    .and_then(|_permit| replica.rsm().submit(cmd.clone()));
                batch.write_done(result);
            }
            Step::Reads(reads) => {
                let result = replica.rsm().read_view(|sm| query_all(sm, reads));
                batch.reads_done(reads.len(), result);
            }
        }
    }
    batch.out
}

/// [`execute_batch`] for async callers: the same contract, without blocking a thread.
pub async fn execute_batch_async(
    replica: &Replica,
    cmds: &[Command],
) -> Vec<Result<Reply, ExecError>> {
    let mut batch = BatchRun::new(cmds);
    while let Some(step) = batch.next_step() {
        match step {
            Step::Write(cmd) => {
                let result = match replica.admit_write() {
                    Ok(_permit) => replica.rsm().submit_async(cmd.clone()).await,
                    Err(busy) => Err(busy),
                };
                batch.write_done(result);
            }
            Step::Reads(reads) => {
                let result = replica
                    .rsm()
                    .read_view_async(|sm| query_all(sm, reads))
                    .await;
                batch.reads_done(reads.len(), result);
            }
        }
    }
    batch.out
}

fn query_all(sm: &crate::state_machine::KvStateMachine, reads: &[Command]) -> Vec<Option<Reply>> {
    reads.iter().map(|c| sm.query(&c.op)).collect()
}

/// What runs next in a batch.
enum Step<'a> {
    Write(&'a Command),
    Reads(&'a [Command]),
}

/// The progress of one batch through [`execute_batch`] or [`execute_batch_async`].
struct BatchRun<'a> {
    cmds: &'a [Command],
    next: usize,
    failed: bool,
    out: Vec<Result<Reply, ExecError>>,
}

impl<'a> BatchRun<'a> {
    fn new(cmds: &'a [Command]) -> Self {
        Self {
            cmds,
            next: 0,
            failed: false,
            out: Vec::with_capacity(cmds.len()),
        }
    }

    /// The next write, or the next maximal run of reads; `None` when done (after a
    /// failure the rest is answered with [`ExecError::NotAttempted`]).
    fn next_step(&mut self) -> Option<Step<'a>> {
        let cmds = self.cmds;
        if self.failed {
            while self.out.len() < cmds.len() {
                self.out.push(Err(ExecError::NotAttempted));
            }
            return None;
        }
        let i = self.next;
        if i >= cmds.len() {
            return None;
        }
        if cmds[i].op.is_write() {
            self.next = i + 1;
            return Some(Step::Write(&cmds[i]));
        }
        let end = cmds[i..]
            .iter()
            .position(|c| c.op.is_write())
            .map_or(cmds.len(), |n| i + n);
        self.next = end;
        Some(Step::Reads(&cmds[i..end]))
    }

    fn write_done(&mut self, result: Result<Reply, KvError>) {
        let result = result.map_err(ExecError::from);
        // A session unknown to the state machine stops the batch too: the caller
        // starts a new session and retries from this command.
        self.failed = match &result {
            Ok(reply) => *reply == Reply::SessionExpired,
            Err(e) => e.is_retryable(),
        };
        self.out.push(result);
    }

    fn reads_done(&mut self, n: usize, result: Result<Vec<Option<Reply>>, KvError>) {
        match result {
            Ok(replies) => self.out.extend(replies.into_iter().map(|r| {
                r.ok_or_else(|| ExecError::Failed("internal: a read answered as a write".into()))
            })),
            Err(e) => {
                let e = ExecError::from(e);
                self.failed = e.is_retryable();
                self.out.extend((0..n).map(|_| Err(e.clone())));
            }
        }
    }
}
