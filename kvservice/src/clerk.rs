//! [`Clerk`]: the client. It finds the leader through hints, retries with backoff, and
//! keeps exactly-once semantics by re-sending a request with the same sequence number.

use std::time::{Duration, Instant};

use bytes::Bytes;
use raftkv_storage::NodeId;

use crate::command::{ClientId, Command, Op, Reply};
use crate::error::KvError;

/// How a clerk reaches the servers. `None` means the request or its reply was lost
/// (the server may or may not have executed it).
pub trait ClerkTransport: Send + Sync {
    /// The servers' ids, in the order the clerk tries them.
    fn servers(&self) -> Vec<NodeId>;
    /// Sends `cmd` to `server` and waits for its answer.
    fn call(&self, server: NodeId, cmd: &Command) -> Option<Result<Reply, KvError>>;
}

/// A definite failure of a clerk operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClerkError {
    /// `put_if` with a version that does not match (it certainly did not apply).
    #[error("version mismatch: the key is at version {current}")]
    ErrVersion {
        /// The key's version when the put was tried.
        current: u64,
    },
    /// `put_if` with a non-zero version on a missing key.
    #[error("no such key")]
    ErrNoKey,
    /// The write may or may not have applied, and the service cannot tell any more (its
    /// session expired, or the clerk's deadline passed while retrying).
    #[error("the write may or may not have applied")]
    ErrMaybe,
    /// A read did not complete before the clerk's deadline.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// Retry settings.
#[derive(Debug, Clone)]
pub struct ClerkConfig {
    /// First backoff after a failed round over the servers.
    pub backoff_min: Duration,
    /// Longest backoff.
    pub backoff_max: Duration,
    /// Give up after this long (`None`: retry forever, as the lab's clerk does).
    pub deadline: Option<Duration>,
}

impl Default for ClerkConfig {
    fn default() -> Self {
        Self {
            backoff_min: Duration::from_millis(5),
            backoff_max: Duration::from_millis(200),
            deadline: Some(Duration::from_secs(30)),
        }
    }
}

/// A client with its own session. Not shared between threads: each thread makes its own
/// clerk (they are cheap), so sequence numbers stay in order.
pub struct Clerk<T: ClerkTransport> {
    transport: T,
    client_id: ClientId,
    next_seq: u64,
    leader: Option<NodeId>,
    config: ClerkConfig,
}

impl<T: ClerkTransport> Clerk<T> {
    /// A clerk with session id `client_id` (non-zero, unique among clients).
    pub fn new(transport: T, client_id: ClientId, config: ClerkConfig) -> Self {
        assert_ne!(client_id, 0, "client id 0 means no session");
        Self {
            transport,
            client_id,
            next_seq: 1,
            leader: None,
            config,
        }
    }

    /// The session id.
    pub fn client_id(&self) -> ClientId {
        self.client_id
    }

    /// The value and version of `key` (version 0 and `None` when absent).
    pub fn get(&mut self, key: impl Into<Bytes>) -> Result<(Option<Bytes>, u64), ClerkError> {
        let key = key.into();
        match self.run(Op::Get { key })? {
            (Reply::Value { value, version }, _) => Ok((value, version)),
            (other, _) => unreachable_reply("get", &other),
        }
    }

    /// Stores `value` unconditionally; returns the new version.
    pub fn put(
        &mut self,
        key: impl Into<Bytes>,
        value: impl Into<Bytes>,
    ) -> Result<u64, ClerkError> {
        let op = Op::Put {
            key: key.into(),
            value: value.into(),
        };
        match self.run(op)? {
            (Reply::Written { version }, _) => Ok(version),
            (other, _) => unreachable_reply("put", &other),
        }
    }

    /// Stores `value` if the key is at `version` (0: absent). Returns the new version.
    pub fn put_if(
        &mut self,
        key: impl Into<Bytes>,
        value: impl Into<Bytes>,
        version: u64,
    ) -> Result<u64, ClerkError> {
        let op = Op::PutIf {
            key: key.into(),
            value: value.into(),
            version,
        };
        match self.run(op)? {
            (Reply::Written { version }, _) => Ok(version),
            // With the dedup table, even a retransmission's ErrVersion is exact: the
            // server answers a retry with the first attempt's recorded reply.
            (Reply::ErrVersion { current }, _) => Err(ClerkError::ErrVersion { current }),
            (Reply::ErrNoKey, _) => Err(ClerkError::ErrNoKey),
            (other, _) => unreachable_reply("put_if", &other),
        }
    }

    /// Removes `key`; returns whether it existed.
    pub fn delete(&mut self, key: impl Into<Bytes>) -> Result<bool, ClerkError> {
        match self.run(Op::Delete { key: key.into() })? {
            (Reply::Deleted { existed }, _) => Ok(existed),
            (other, _) => unreachable_reply("delete", &other),
        }
    }

    /// Sends `op` until some server gives a definite answer. Returns the reply and
    /// whether it took more than one attempt.
    fn run(&mut self, op: Op) -> Result<(Reply, bool), ClerkError> {
        let is_write = op.is_write();
        let cmd = Command::in_session(self.client_id, &mut self.next_seq, op);
        let started = Instant::now();
        let mut backoff = self.config.backoff_min;
        let mut attempts = 0u64;
        loop {
            let servers = self.transport.servers();
            let order = self.try_order(&servers);
            for server in order {
                attempts += 1;
                match self.transport.call(server, &cmd) {
                    // Only writes are deduplicated, so only writes can hear this: the
                    // session is gone and an earlier attempt may have applied.
                    Some(Ok(Reply::SessionExpired | Reply::StaleRequest { .. })) => {
                        return Err(ClerkError::ErrMaybe);
                    }
                    Some(Ok(reply)) => {
                        self.leader = Some(server);
                        return Ok((reply, attempts > 1));
                    }
                    Some(Err(KvError::WrongLeader { leader_hint })) => {
                        if let Some(hint) = leader_hint.filter(|h| *h != server) {
                            self.leader = Some(hint);
                            if let Some(Ok(reply)) = self.try_hint(hint, &cmd, &mut attempts) {
                                return Ok((reply, attempts > 1));
                            }
                        }
                    }
                    // Lost, timed out, or the server is shutting down: try the next one.
                    Some(Err(_)) | None => {}
                }
                if let Some(limit) = self.config.deadline
                    && started.elapsed() >= limit
                {
                    return Err(if is_write {
                        ClerkError::ErrMaybe
                    } else {
                        ClerkError::Timeout(started.elapsed())
                    });
                }
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(self.config.backoff_max);
        }
    }

    fn try_hint(
        &mut self,
        hint: NodeId,
        cmd: &Command,
        attempts: &mut u64,
    ) -> Option<Result<Reply, KvError>> {
        *attempts += 1;
        self.transport.call(hint, cmd)
    }

    /// The known leader first, then the others in order.
    fn try_order(&self, servers: &[NodeId]) -> Vec<NodeId> {
        let mut order = Vec::with_capacity(servers.len());
        if let Some(l) = self.leader.filter(|l| servers.contains(l)) {
            order.push(l);
        }
        order.extend(servers.iter().copied().filter(|s| Some(*s) != self.leader));
        order
    }
}

fn unreachable_reply<T>(op: &str, reply: &Reply) -> Result<T, ClerkError> {
    // The state machine answers each operation kind with a fixed set of replies; any
    // other reply means the server and the clerk disagree on the protocol.
    tracing::error!(op, ?reply, "reply does not match the operation");
    Err(ClerkError::ErrMaybe)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use parking_lot::Mutex;
    use rand::{Rng, SeedableRng, rngs::SmallRng};

    use super::*;
    use crate::state_machine::KvStateMachine;

    /// Three "servers" sharing one state machine; server 1 leads. Requests and replies
    /// are lost at random (a lost reply still executed), and followers answer with a
    /// leader hint.
    struct Lossy {
        sm: Mutex<KvStateMachine>,
        index: AtomicU64,
        rng: Mutex<SmallRng>,
        loss: f64,
    }

    impl ClerkTransport for &Lossy {
        fn servers(&self) -> Vec<NodeId> {
            vec![3, 2, 1]
        }

        fn call(&self, server: NodeId, cmd: &Command) -> Option<Result<Reply, KvError>> {
            if self.rng.lock().gen_bool(self.loss) {
                return None;
            }
            if server != 1 {
                return Some(Err(KvError::WrongLeader {
                    leader_hint: Some(1),
                }));
            }
            let index = self.index.fetch_add(1, Ordering::SeqCst) + 1;
            let reply = self.sm.lock().apply(index, 1, cmd);
            if self.rng.lock().gen_bool(self.loss) {
                return None;
            }
            Some(Ok(reply))
        }
    }

    #[test]
    fn retries_through_loss_stay_exactly_once() {
        let seed = 0x5eed;
        let net = Lossy {
            sm: Mutex::new(KvStateMachine::new()),
            index: AtomicU64::new(0),
            rng: Mutex::new(SmallRng::seed_from_u64(seed)),
            loss: 0.3,
        };
        let config = ClerkConfig {
            backoff_min: Duration::from_micros(10),
            backoff_max: Duration::from_micros(100),
            deadline: None,
        };
        let mut clerk = Clerk::new(&net, 42, config);
        let mut version = 0;
        for i in 0..200u64 {
            version = clerk.put_if("k", format!("v{i}"), version).expect("put_if");
            assert_eq!(
                version,
                i + 1,
                "seed {seed}: every put_if applied exactly once"
            );
        }
        assert_eq!(
            clerk.get("k").expect("get"),
            (Some(Bytes::from("v199")), 200)
        );
        assert_eq!(
            clerk.put_if("k", "stale", 3),
            Err(ClerkError::ErrVersion { current: 200 })
        );
        assert_eq!(clerk.put_if("missing", "x", 1), Err(ClerkError::ErrNoKey));
        assert!(clerk.delete("k").expect("delete"));
        assert_eq!(clerk.get("k").expect("get"), (None, 0));
    }

    #[test]
    fn a_fresh_session_may_read_before_its_first_write() {
        let net = Lossy {
            sm: Mutex::new(KvStateMachine::new()),
            index: AtomicU64::new(0),
            rng: Mutex::new(SmallRng::seed_from_u64(3)),
            loss: 0.0,
        };
        let mut clerk = Clerk::new(&net, 11, ClerkConfig::default());
        assert_eq!(clerk.get("k").expect("get"), (None, 0));
        assert_eq!(clerk.get("k").expect("get"), (None, 0));
        assert_eq!(clerk.put_if("k", "v", 0), Ok(1));
    }

    #[test]
    fn a_deadline_turns_an_unanswerable_write_into_err_maybe() {
        let net = Lossy {
            sm: Mutex::new(KvStateMachine::new()),
            index: AtomicU64::new(0),
            rng: Mutex::new(SmallRng::seed_from_u64(1)),
            loss: 1.0,
        };
        let config = ClerkConfig {
            backoff_min: Duration::from_millis(1),
            backoff_max: Duration::from_millis(2),
            deadline: Some(Duration::from_millis(20)),
        };
        let mut clerk = Clerk::new(&net, 7, config);
        assert_eq!(clerk.put("k", "v"), Err(ClerkError::ErrMaybe));
        assert!(matches!(clerk.get("k"), Err(ClerkError::Timeout(_))));
    }
}
