//! Recording a client history over RESP for the linearizability checker: each
//! operation's call and return on one monotonic clock, its outcome mapped to the
//! [`KvModel`](raftkv::kvservice::linearizability::KvModel)'s outputs.
//!
//! * A definite answer (a value, nil, `+OK`, `-ERRVERSION`, `-ERRNOKEY`, a `DEL` count)
//!   is recorded with its return time.
//! * A write whose outcome the client never learned (timeout, broken connection, or any
//!   other `-ERR`, e.g. `no reachable leader` or `may or may not have applied`) is
//!   recorded as indeterminate: `KvOutput::Unknown` with `ret = UNKNOWN_RETURN`, so it
//!   may take effect at any time after its call, or never.
//! * A read that got no definite answer changes nothing, so it is left out.
//! * A request that was never sent (the connection could not be made) is left out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use raftkv::client::RespClient;
use raftkv::kvservice::linearizability::{KvInput, KvOutput, Operation};
use raftkv::kvservice::resp::Value;

/// The history's operation type.
pub type KvOp = Operation<KvInput, KvOutput>;

/// How an operation ended, for the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A definite answer.
    Ok,
    /// No effect for sure (a read without an answer).
    Failed,
    /// A write that may or may not have applied.
    Indeterminate,
}

/// A history shared by the client threads.
#[derive(Debug)]
pub struct History {
    start: Instant,
    ops: Mutex<Vec<KvOp>>,
    /// Definite answers.
    pub ok: AtomicU64,
    /// Requests that certainly had no effect (not sent, or reads without an answer).
    pub failed: AtomicU64,
    /// Writes of unknown outcome.
    pub indeterminate: AtomicU64,
}

impl Default for History {
    fn default() -> Self {
        History {
            start: Instant::now(),
            ops: Mutex::new(Vec::new()),
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            indeterminate: AtomicU64::new(0),
        }
    }
}

/// The RESP command for `input`.
pub fn command_of(input: &KvInput) -> Vec<Vec<u8>> {
    match input {
        KvInput::Get { key } => vec![b"VGET".to_vec(), key.clone()],
        KvInput::Put {
            key,
            value,
            version,
        } => vec![
            b"VSET".to_vec(),
            key.clone(),
            value.clone(),
            version.to_string().into_bytes(),
        ],
        KvInput::Set { key, value } => vec![b"SET".to_vec(), key.clone(), value.clone()],
        KvInput::Delete { key } => vec![b"DEL".to_vec(), key.clone()],
    }
}

/// The model's output for a RESP reply to `input`, if the reply is a definite answer.
pub fn output_of(input: &KvInput, reply: &Value) -> Option<KvOutput> {
    let err = |prefix: &[u8]| matches!(reply, Value::Error(e) if e.starts_with(prefix));
    match input {
        KvInput::Get { .. } => match reply {
            Value::Array(Some(items)) => match items.as_slice() {
                [Value::BulkString(None), Value::Integer(0)] => Some(KvOutput::ErrNoKey),
                [Value::BulkString(Some(v)), Value::Integer(ver)] if *ver > 0 => {
                    Some(KvOutput::value(v.to_vec(), *ver as u64))
                }
                _ => panic!("malformed VGET reply {reply:?}"),
            },
            _ => None,
        },
        KvInput::Put { .. } => match reply {
            Value::SimpleString(s) if &s[..] == b"OK" => Some(KvOutput::Ok),
            _ if err(b"ERRVERSION") => Some(KvOutput::ErrVersion),
            _ if err(b"ERRNOKEY") => Some(KvOutput::ErrNoKey),
            _ => None,
        },
        KvInput::Set { .. } => match reply {
            Value::SimpleString(s) if &s[..] == b"OK" => Some(KvOutput::Ok),
            _ => None,
        },
        KvInput::Delete { .. } => match reply {
            Value::Integer(n) => Some(KvOutput::Deleted { existed: *n > 0 }),
            _ => None,
        },
    }
}

impl History {
    /// Nanoseconds since the history began.
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Runs `input` on `conn` as `client`, records it, and returns the reply (or the
    /// error that made its outcome unknown).
    pub fn run(
        &self,
        client: u64,
        conn: &mut RespClient,
        input: KvInput,
    ) -> (Outcome, Result<Value, String>) {
        let args = command_of(&input);
        let call = self.now();
        let reply = conn.command(&args).map_err(|e| e.to_string());
        let ret = self.now();
        let output = reply.as_ref().ok().and_then(|r| output_of(&input, r));
        let is_read = matches!(input, KvInput::Get { .. });
        let definite = output.is_some();
        let outcome = match output {
            Some(output) => {
                self.ops
                    .lock()
                    .push(Operation::new(client, input, call, output, ret));
                Outcome::Ok
            }
            None if is_read => Outcome::Failed,
            None => {
                self.ops.lock().push(Operation::unknown_outcome(
                    client,
                    input,
                    call,
                    KvOutput::Unknown,
                ));
                Outcome::Indeterminate
            }
        };
        self.count(outcome);
        let reply = reply.and_then(|r| match r {
            Value::Error(ref e) if !definite => Err(String::from_utf8_lossy(e).into()),
            r => Ok(r),
        });
        (outcome, reply)
    }

    /// Counts an outcome (also for requests never sent: [`Outcome::Failed`]).
    pub fn count(&self, outcome: Outcome) {
        let c = match outcome {
            Outcome::Ok => &self.ok,
            Outcome::Failed => &self.failed,
            Outcome::Indeterminate => &self.indeterminate,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The operations recorded so far.
    pub fn ops(&self) -> Vec<KvOp> {
        self.ops.lock().clone()
    }

    /// How many operations were recorded.
    pub fn len(&self) -> usize {
        self.ops.lock().len()
    }
}
