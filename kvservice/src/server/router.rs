//! [`Router`]: runs a connection's commands where they can be served — here if this
//! member leads, else at the leader through the [`Forwarder`] (or, in
//! [`Redirect::Moved`] mode, nowhere: the client is sent to the leader) — and retries
//! transient failures within the retry budget, keeping each command's (client id,
//! sequence number).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use raftkv_consensus::Role;
use raftkv_storage::NodeId;

use super::config::Redirect;
use super::exec::{ExecError, execute_batch_async};
use super::forward::{Forwarder, decode_forward_reply, encode_forward_request};
use super::session::Session;
use crate::command::{Command, Reply};
use crate::replica::Replica;

/// First pause between attempts; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(2);
const MAX_BACKOFF: Duration = Duration::from_millis(100);
/// A forwarded call gets at least this long, even near the end of the budget.
const MIN_FORWARD_TIMEOUT: Duration = Duration::from_secs(1);
/// Times one batch may start a new session after finding its session expired.
const MAX_RENEWALS: u32 = 3;
/// Redis Cluster's error when no master serves the slot: in MOVED mode, no leader.
pub(crate) const CLUSTERDOWN: &str = "CLUSTERDOWN The cluster is down";

/// Why a command got no reply from the state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The final error message (`ERR ...`, without the `-`).
    Error(String),
    /// [`Redirect::Moved`]: another member leads; it serves clients at `addr`. The
    /// connection answers `-MOVED <slot> <addr>` with the slot of the command's key.
    Moved {
        /// The leader's client address, `host:port`.
        addr: String,
    },
}

/// One command of a batch and, once known, its outcome.
#[derive(Debug)]
pub(crate) struct Unit {
    pub(crate) cmd: Command,
    /// The reply, or why there is none.
    pub(crate) outcome: Option<Result<Reply, Refusal>>,
    /// An earlier attempt failed in a way that may have applied it.
    uncertain: bool,
    last_error: Option<ExecError>,
}

impl Unit {
    pub(crate) fn new(cmd: Command) -> Self {
        Self {
            cmd,
            outcome: None,
            uncertain: false,
            last_error: None,
        }
    }
}

/// Where commands go, and how they are retried.
pub(crate) struct Router {
    replica: Arc<Replica>,
    forwarder: Option<Arc<dyn Forwarder>>,
    retry_budget: Duration,
    peer_addrs: BTreeMap<NodeId, String>,
    redirect: Redirect,
    client_addrs: BTreeMap<NodeId, String>,
    /// The last leader seen (0: none yet).
    last_leader: AtomicU64,
}

/// Where a [`Router`] sends commands and how long it retries them.
pub(crate) struct Routes {
    pub(crate) forwarder: Option<Arc<dyn Forwarder>>,
    pub(crate) retry_budget: Duration,
    /// Raft addresses, for messages and `INFO`.
    pub(crate) peer_addrs: BTreeMap<NodeId, String>,
    pub(crate) redirect: Redirect,
    /// Client addresses, for `MOVED` and `CLUSTER`.
    pub(crate) client_addrs: BTreeMap<NodeId, String>,
}

impl Router {
    pub(crate) fn new(replica: Arc<Replica>, routes: Routes) -> Self {
        Self {
            replica,
            forwarder: routes.forwarder,
            retry_budget: routes.retry_budget,
            peer_addrs: routes.peer_addrs,
            redirect: routes.redirect,
            client_addrs: routes.client_addrs,
            last_leader: AtomicU64::new(0),
        }
    }

    /// How a follower answers (forward, or MOVED).
    pub(crate) fn redirect(&self) -> Redirect {
        self.redirect
    }

    /// Every member's client address (empty unless configured).
    pub(crate) fn client_addrs(&self) -> &BTreeMap<NodeId, String> {
        &self.client_addrs
    }

    /// Every member's Raft address, as configured (may be empty).
    pub(crate) fn peer_addrs(&self) -> &BTreeMap<NodeId, String> {
        &self.peer_addrs
    }

    /// In MOVED mode, when another member is the leader now and its client address is
    /// known: that address.
    fn moved_to(&self) -> Option<&str> {
        if self.redirect != Redirect::Moved {
            return None;
        }
        let status = self.replica.node().status();
        let leader = status.leader.filter(|&l| l != status.id)?;
        self.client_addrs.get(&leader).map(String::as_str)
    }

    pub(crate) fn replica(&self) -> &Arc<Replica> {
        &self.replica
    }

    pub(crate) fn peer_addr(&self, id: NodeId) -> Option<&str> {
        self.peer_addrs.get(&id).map(String::as_str)
    }

    /// The leader this member knows now, or else the last one it saw.
    pub(crate) fn known_leader(&self) -> Option<NodeId> {
        match self.replica.node().status().leader {
            Some(l) => {
                self.note_leader(l);
                Some(l)
            }
            None => self.last_leader(),
        }
    }

    fn last_leader(&self) -> Option<NodeId> {
        Some(self.last_leader.load(Ordering::Relaxed)).filter(|&l| l != 0)
    }

    fn note_leader(&self, id: NodeId) {
        self.last_leader.store(id, Ordering::Relaxed);
    }

    /// `node 2 at 127.0.0.1:7002`, or `node 2` when its address is unknown.
    pub(crate) fn describe(&self, id: NodeId) -> String {
        match self.peer_addr(id) {
            Some(addr) => format!("node {id} at {addr}"),
            None => format!("node {id}"),
        }
    }

    /// Runs every unit without an outcome, in order, retrying transient failures until
    /// the retry budget runs out; then every unit has an outcome.
    pub(crate) async fn execute(&self, session: &mut Session, units: &mut [Unit]) {
        let deadline = Instant::now() + self.retry_budget;
        let mut backoff = MIN_BACKOFF;
        let mut hint: Option<NodeId> = None;
        let mut batch_error: Option<ExecError> = None;
        let mut renewals = 0;
        loop {
            let pending: Vec<usize> = (0..units.len())
                .filter(|&i| units[i].outcome.is_none())
                .collect();
            if pending.is_empty() {
                return;
            }
            if let Some(addr) = self.moved_to() {
                // Nothing pending runs here any more: the client goes to the leader.
                for &i in &pending {
                    units[i].outcome = Some(Err(Refusal::Moved { addr: addr.into() }));
                }
                return;
            }
            let cmds = pending.iter().map(|&i| units[i].cmd.clone()).collect();
            let results = self.attempt(cmds, hint, deadline).await;
            let mut transient = false;
            let mut expired: Option<usize> = None;
            for (k, (&i, result)) in pending.iter().zip(results).enumerate() {
                let unit = &mut units[i];
                match result {
                    Ok(Reply::SessionExpired) if expired.is_none() => {
                        if unit.uncertain || renewals >= MAX_RENEWALS {
                            unit.outcome = Some(Err(Refusal::Error(
                                "ERR session expired: the write may or may not have applied".into(),
                            )));
                        } else {
                            expired = Some(k);
                        }
                    }
                    Ok(reply) => unit.outcome = Some(Ok(reply)),
                    Err(e) if e.is_retryable() => {
                        transient = true;
                        unit.uncertain |= e.may_have_applied();
                        if let ExecError::WrongLeader {
                            leader_hint: Some(h),
                        } = e
                        {
                            hint = Some(h);
                            self.note_leader(h);
                        }
                        if e != ExecError::NotAttempted {
                            tracing::debug!(error = %e, "command failed; will retry");
                            batch_error = Some(e.clone());
                            unit.last_error = Some(e);
                        }
                    }
                    Err(e) => unit.outcome = Some(Err(Refusal::Error(e.redis_error()))),
                }
            }
            if let Some(k) = expired {
                // The replicas no longer know this session (idle past its TTL, or
                // evicted): none of these commands applied, so they can run again
                // under a new session.
                renewals += 1;
                session.renew();
                tracing::debug!("client session expired; starting a new one");
                for &i in &pending[k..] {
                    if units[i].outcome.is_none() {
                        units[i].cmd = session.command(units[i].cmd.op.clone());
                    }
                }
                continue;
            }
            if !transient {
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                for &i in &pending {
                    let unit = &mut units[i];
                    if unit.outcome.is_none() {
                        let e = unit.last_error.as_ref().or(batch_error.as_ref());
                        unit.outcome = Some(Err(Refusal::Error(self.final_error(e))));
                    }
                }
                return;
            }
            tokio::time::sleep(backoff.min(deadline - now)).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// The message for a command still failing when the budget ran out.
    fn final_error(&self, e: Option<&ExecError>) -> String {
        let no_leader = matches!(
            e,
            None | Some(
                ExecError::WrongLeader { .. }
                    | ExecError::NoLeader
                    | ExecError::Unreachable { .. }
                    | ExecError::NotAttempted
            )
        );
        if no_leader && self.redirect == Redirect::Moved {
            return CLUSTERDOWN.into();
        }
        match e {
            None
            | Some(
                ExecError::WrongLeader { .. }
                | ExecError::NoLeader
                | ExecError::Unreachable { .. }
                | ExecError::NotAttempted,
            ) => match self.known_leader() {
                Some(l) => format!(
                    "ERR no reachable leader (last known leader: {})",
                    self.describe(l)
                ),
                None => "ERR no reachable leader (no leader known)".into(),
            },
            Some(e @ ExecError::Timeout { .. }) => {
                format!("ERR {e}; a write may or may not have applied")
            }
            Some(e) => format!("ERR {e}"),
        }
    }

    /// One attempt at `cmds`: here if this member leads, else at the leader it knows
    /// (or `hint`), through the forwarder.
    async fn attempt(
        &self,
        cmds: Vec<Command>,
        hint: Option<NodeId>,
        deadline: Instant,
    ) -> Vec<Result<Reply, ExecError>> {
        let n = cmds.len();
        let all = |e: ExecError| (0..n).map(|_| Err(e.clone())).collect::<Vec<_>>();
        let me = self.replica.node().id();
        let status = self.replica.node().status();
        if let Some(l) = status.leader {
            self.note_leader(l);
        }
        if status.role == Role::Leader {
            return execute_batch_async(&self.replica, &cmds).await;
        }
        if self.redirect == Redirect::Moved {
            // Never forwarded: `execute` redirects once a leader is known.
            return all(ExecError::NoLeader);
        }
        let Some(to) = status
            .leader
            .filter(|&l| l != me)
            .or(hint.filter(|&h| h != me))
        else {
            return all(ExecError::NoLeader);
        };
        let Some(forwarder) = &self.forwarder else {
            return all(ExecError::Unreachable {
                to,
                detail: "forwarding is not configured".into(),
            });
        };
        let request = match encode_forward_request(&cmds) {
            Ok(r) => r,
            Err(e) => return all(ExecError::Failed(e)),
        };
        let timeout = deadline
            .saturating_duration_since(Instant::now())
            .max(MIN_FORWARD_TIMEOUT);
        match tokio::time::timeout(timeout, forwarder.call(to, request)).await {
            Ok(Ok(bytes)) => decode_forward_reply(&bytes, n)
                .unwrap_or_else(|detail| all(ExecError::Unreachable { to, detail })),
            Ok(Err(detail)) => all(ExecError::Unreachable { to, detail }),
            Err(_) => all(ExecError::Unreachable {
                to,
                detail: format!("no answer within {} ms", timeout.as_millis()),
            }),
        }
    }
}
