//! [`SessionTable`]: the exactly-once table. For each client, the last sequence number
//! applied and the reply it got, so a retried write is answered, not applied twice.
//!
//! The table is part of every snapshot (a restarted replica must still recognise a
//! retry). Idle sessions expire deterministically: by the log's own clock (the highest
//! proposer timestamp applied so far), and by a cap on the number of sessions that
//! evicts the longest idle first. Every replica applies the same log, so every replica
//! expires the same sessions at the same index.

use imbl::OrdMap;

use crate::command::{ClientId, Reply};

/// One client's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The highest sequence number applied.
    pub last_seq: u64,
    /// The reply to that request.
    pub last_reply: Reply,
    /// Log clock (ms) of the session's last request.
    pub last_active_ms: u64,
}

/// What the table says about an incoming request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// A new request: apply it.
    Apply,
    /// A retry of the last applied request: answer with this reply.
    Duplicate(Reply),
    /// Cannot be applied safely: answer with this error.
    Reject(Reply),
}

/// The exactly-once table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTable {
    by_client: OrdMap<ClientId, Session>,
    by_age: OrdMap<(u64, ClientId), ()>,
    ttl_ms: u64,
    max_sessions: usize,
}

/// Default session lifetime without requests: one hour of log time.
pub const DEFAULT_SESSION_TTL_MS: u64 = 3_600_000;
/// Default cap on sessions.
pub const DEFAULT_MAX_SESSIONS: usize = 1_000_000;

impl Default for SessionTable {
    fn default() -> Self {
        Self::new(DEFAULT_SESSION_TTL_MS, DEFAULT_MAX_SESSIONS)
    }
}

impl SessionTable {
    /// An empty table.
    pub fn new(ttl_ms: u64, max_sessions: usize) -> Self {
        assert!(
            max_sessions > 0,
            "a session table needs room for one session"
        );
        Self {
            by_client: OrdMap::new(),
            by_age: OrdMap::new(),
            ttl_ms,
            max_sessions,
        }
    }

    /// An empty table with the same expiry settings as `other`.
    pub fn new_like(other: &SessionTable) -> Self {
        Self::new(other.ttl_ms, other.max_sessions)
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.by_client.len()
    }

    /// True without sessions.
    pub fn is_empty(&self) -> bool {
        self.by_client.is_empty()
    }

    /// The session of `client`.
    pub fn get(&self, client: ClientId) -> Option<&Session> {
        self.by_client.get(&client)
    }

    /// Sessions in client order.
    pub fn iter(&self) -> impl Iterator<Item = (&ClientId, &Session)> {
        self.by_client.iter()
    }

    /// Decides what to do with request `seq` of `client`.
    pub fn admit(&self, client: ClientId, seq: u64) -> Admission {
        match self.by_client.get(&client) {
            Some(s) if seq == s.last_seq => Admission::Duplicate(s.last_reply.clone()),
            Some(s) if seq < s.last_seq => Admission::Reject(Reply::StaleRequest {
                last_seq: s.last_seq,
            }),
            Some(_) => Admission::Apply,
            // A client's first request carries seq 1. A higher number from an unknown
            // client means its session expired: an earlier attempt may have applied.
            None if seq <= 1 => Admission::Apply,
            None => Admission::Reject(Reply::SessionExpired),
        }
    }

    /// Records the reply to an applied request.
    pub fn record(&mut self, client: ClientId, seq: u64, reply: Reply, now_ms: u64) {
        if let Some(old) = self.by_client.get(&client) {
            self.by_age.remove(&(old.last_active_ms, client));
        }
        self.by_client.insert(
            client,
            Session {
                last_seq: seq,
                last_reply: reply,
                last_active_ms: now_ms,
            },
        );
        self.by_age.insert((now_ms, client), ());
        while self.by_client.len() > self.max_sessions {
            self.evict_oldest();
        }
    }

    /// Inserts a session as restored from a snapshot.
    pub(crate) fn restore(&mut self, client: ClientId, session: Session) {
        self.by_age.insert((session.last_active_ms, client), ());
        self.by_client.insert(client, session);
    }

    /// Drops sessions idle for longer than the TTL at log time `now_ms`.
    pub fn expire(&mut self, now_ms: u64) {
        let horizon = now_ms.saturating_sub(self.ttl_ms);
        while let Some(((ts, _), _)) = self.by_age.get_min()
            && *ts < horizon
        {
            self.evict_oldest();
        }
    }

    fn evict_oldest(&mut self) {
        if let Some(((ts, client), _)) = self.by_age.get_min().cloned() {
            self.by_age.remove(&(ts, client));
            self.by_client.remove(&client);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_stale_and_expired_requests() {
        let mut t = SessionTable::new(1000, 10);
        assert_eq!(t.admit(7, 1), Admission::Apply);
        t.record(7, 1, Reply::Written { version: 1 }, 0);
        assert_eq!(
            t.admit(7, 1),
            Admission::Duplicate(Reply::Written { version: 1 })
        );
        assert_eq!(t.admit(7, 2), Admission::Apply);
        t.record(7, 3, Reply::Written { version: 2 }, 10);
        assert_eq!(
            t.admit(7, 2),
            Admission::Reject(Reply::StaleRequest { last_seq: 3 })
        );
        t.expire(1011);
        assert!(t.get(7).is_none());
        assert_eq!(t.admit(7, 4), Admission::Reject(Reply::SessionExpired));
    }

    #[test]
    fn cap_evicts_the_longest_idle() {
        let mut t = SessionTable::new(u64::MAX, 2);
        t.record(1, 1, Reply::Deleted { existed: false }, 5);
        t.record(2, 1, Reply::Deleted { existed: false }, 6);
        t.record(1, 2, Reply::Deleted { existed: false }, 7);
        t.record(3, 1, Reply::Deleted { existed: false }, 8);
        assert_eq!(t.len(), 2);
        assert!(t.get(2).is_none(), "client 2 was idle longest");
        assert!(t.get(1).is_some() && t.get(3).is_some());
    }
}
