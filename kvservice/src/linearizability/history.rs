//! Recorded client operations: what was asked, what was answered, and when.

use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// The `ret` of an operation whose outcome the client never learned (it timed out, or
/// gave up on a retry): it may take effect at any time after its call, including never,
/// so it is treated as still running when the history ends, as porcupine does.
///
/// Give such operations an output the model accepts in any state (for the
/// [`KvModel`](super::KvModel), [`KvOutput::Unknown`](super::KvOutput::Unknown)).
pub const UNKNOWN_RETURN: u64 = u64::MAX;

/// One operation of a history: a client called `input` at `call` and was answered
/// `output` at `ret`.
///
/// Times are in nanoseconds on any clock shared by all clients of the history (only their
/// order matters). The operation took effect at one instant of `[call, ret]`; two
/// operations overlap, and may be linearized in either order, unless one's `ret` is
/// strictly before the other's `call`. A `call` equal to another operation's `ret` counts
/// as overlapping it (the search orders calls before returns at the same time), which is
/// the conservative choice for clocks of limited resolution.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Operation<I, O> {
    /// The client that issued the operation (for diagnostics; the checker does not use
    /// it).
    pub client_id: u64,
    /// What was asked.
    pub input: I,
    /// When it was called (ns), at or before the request could first take effect.
    pub call: u64,
    /// What was answered.
    pub output: O,
    /// When the answer was received (ns), or [`UNKNOWN_RETURN`] if it never was.
    pub ret: u64,
}

impl<I, O> Operation<I, O> {
    /// An operation that was called at `call` and answered `output` at `ret`.
    pub fn new(client_id: u64, input: I, call: u64, output: O, ret: u64) -> Self {
        Operation {
            client_id,
            input,
            call,
            output,
            ret,
        }
    }

    /// An operation called at `call` whose outcome was never learned: its `ret` is
    /// [`UNKNOWN_RETURN`]. `output` should be one the model accepts in any state.
    pub fn unknown_outcome(client_id: u64, input: I, call: u64, output: O) -> Self {
        Operation::new(client_id, input, call, output, UNKNOWN_RETURN)
    }

    /// Whether the client never learned the outcome (`ret == UNKNOWN_RETURN`).
    pub fn is_outcome_unknown(&self) -> bool {
        self.ret == UNKNOWN_RETURN
    }
}

/// Records a history from concurrent clients, timestamping calls and returns with one
/// monotonic clock.
///
/// Call [`begin`](Recorder::begin) right before sending a request and
/// [`end`](Recorder::end) right after its answer arrives: the recorded interval must
/// contain the instant the operation took effect. An operation that is neither ended nor
/// [`end_unknown`](Recorder::end_unknown)ed when the history is
/// [`finish`](Recorder::finish)ed is recorded as having an unknown outcome.
#[derive(Debug)]
pub struct Recorder<I, O> {
    start: Instant,
    ops: Mutex<Vec<Slot<I, O>>>,
}

#[derive(Debug)]
struct Slot<I, O> {
    client_id: u64,
    input: I,
    call: u64,
    done: Option<(O, u64)>,
}

/// Names an operation begun on a [`Recorder`], to end it.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "an operation that is never ended is recorded with an unknown outcome"]
pub struct OpId(usize);

impl<I, O> Default for Recorder<I, O> {
    fn default() -> Self {
        Recorder::new()
    }
}

impl<I, O> Recorder<I, O> {
    /// An empty history whose clock starts now.
    pub fn new() -> Self {
        Recorder {
            start: Instant::now(),
            ops: Mutex::new(Vec::new()),
        }
    }

    fn now(&self) -> u64 {
        // Saturate below UNKNOWN_RETURN: a finite ret must stay finite (after 584 years).
        u64::try_from(self.start.elapsed().as_nanos())
            .map_or(UNKNOWN_RETURN - 1, |t| t.min(UNKNOWN_RETURN - 1))
    }

    /// Records that `client_id` is about to send `input`.
    pub fn begin(&self, client_id: u64, input: I) -> OpId {
        // The time is taken before the lock: an earlier call only widens the interval.
        let call = self.now();
        let mut ops = self.ops.lock().unwrap_or_else(PoisonError::into_inner);
        ops.push(Slot {
            client_id,
            input,
            call,
            done: None,
        });
        OpId(ops.len() - 1)
    }

    /// Records that the operation `id` was answered `output` (now).
    pub fn end(&self, id: OpId, output: O) {
        let mut ops = self.ops.lock().unwrap_or_else(PoisonError::into_inner);
        // The time is taken under the lock, after the answer: a later ret only widens.
        let ret = self.now();
        ops[id.0].done = Some((output, ret));
    }

    /// Records that the client gave up on `id` without learning its outcome; `output`
    /// should be one the model accepts in any state. The operation's `ret` is
    /// [`UNKNOWN_RETURN`].
    pub fn end_unknown(&self, id: OpId, output: O) {
        let mut ops = self.ops.lock().unwrap_or_else(PoisonError::into_inner);
        ops[id.0].done = Some((output, UNKNOWN_RETURN));
    }

    /// The history, in the order the operations were begun. Operations never ended get
    /// the output `unknown_output(&input)` and `ret = UNKNOWN_RETURN`.
    pub fn finish(self, mut unknown_output: impl FnMut(&I) -> O) -> Vec<Operation<I, O>> {
        let ops = self
            .ops
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        ops.into_iter()
            .map(|slot| {
                let (output, ret) = match slot.done {
                    Some(done) => done,
                    None => (unknown_output(&slot.input), UNKNOWN_RETURN),
                };
                Operation::new(slot.client_id, slot.input, slot.call, output, ret)
            })
            .collect()
    }
}
