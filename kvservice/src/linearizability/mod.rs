//! A linearizability checker for recorded client histories: porcupine's algorithm.
//!
//! A history is a set of [`Operation`]s, each with the interval `[call, ret]` in which a
//! client waited for it. It is *linearizable* with respect to a sequential [`Model`] if
//! there is a total order of its operations that respects real time (an operation that
//! returned before another was called comes first) in which every operation, applied to
//! the model in turn, gives the output that was recorded.
//!
//! The search is the Wing–Gong–Lowe algorithm as implemented by porcupine
//! (<https://github.com/anishathalye/porcupine>): depth-first over the call/return events,
//! with lift/unlift on a doubly-linked event list and a cache of the
//! (linearized-set bitset, model state) pairs already explored. The model
//! [partitions](Model::partition) the history into independent parts (for a KV store, one
//! per key), which are searched separately; linearizability is local, so the history is
//! linearizable iff every part is.
//!
//! Operations whose outcome the client never learned (a timeout, or an answer such as
//! `ErrMaybe` that does not say) are recorded with an output the model accepts in every
//! state and, when the client never got an answer at all, with
//! `ret = `[`UNKNOWN_RETURN`] (`u64::MAX`): they may then take effect at any point after
//! their call, including never (after everything else).
//!
//! The checker is exponential in the worst case (the problem is NP-complete), hence the
//! optional timeout, which yields [`CheckResult::Unknown`]. Linearizable histories are
//! cheap (the search rarely backtracks); proving a history *illegal* means exhausting
//! every linearization of the operations before the failure, whose number grows
//! exponentially with the concurrency within a partition, and every unknown-outcome
//! operation stays concurrent with everything after its call. A partition of 1,000
//! operations each overlapping ~10 others, with a few unknown outcomes, can take seconds
//! to refute; use a timeout.
//!
//! ```
//! use raftkv_kvservice::linearizability::{
//!     check_operations, CheckResult, KvInput, KvModel, KvOutput, Operation,
//! };
//!
//! let history = vec![
//!     // Client 1 creates "k" while client 2 reads it concurrently...
//!     Operation::new(1, KvInput::put("k", "a", 0), 0, KvOutput::Ok, 10),
//!     Operation::new(2, KvInput::get("k"), 5, KvOutput::ErrNoKey, 8),
//!     // ... and then reads it.
//!     Operation::new(2, KvInput::get("k"), 12, KvOutput::value("a", 1), 15),
//! ];
//! assert_eq!(check_operations(&KvModel, &history, None), CheckResult::Ok);
//!
//! // A read after the write completed must see it.
//! let stale = vec![
//!     Operation::new(1, KvInput::put("k", "a", 0), 0, KvOutput::Ok, 10),
//!     Operation::new(2, KvInput::get("k"), 11, KvOutput::ErrNoKey, 12),
//! ];
//! assert!(matches!(check_operations(&KvModel, &stale, None), CheckResult::Illegal { .. }));
//! ```

mod bitset;
mod history;
mod model;
mod partition;
mod search;
#[cfg(test)]
mod tests;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

pub use history::{OpId, Operation, Recorder, UNKNOWN_RETURN};
pub use model::{KvInput, KvModel, KvOutput, Model, Versioned};
pub use partition::partition_by_key;

use search::{Outcome, Stop};

/// The verdict on a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckResult {
    /// The history is linearizable.
    Ok,
    /// The history is not linearizable: its part number `partition` (an index into
    /// [`Model::partition`]'s result) is not.
    Illegal {
        /// The index of the partition that is not linearizable.
        partition: usize,
        /// For diagnostics: the longest sequence of operations (indices into the
        /// history) of that partition that the search could linearize, in linearization
        /// order, before every continuation failed. See [`explain`].
        longest_prefix: Vec<usize>,
    },
    /// The timeout expired before a verdict (and no partition was found illegal).
    Unknown,
}

impl CheckResult {
    /// Whether the history was found linearizable.
    pub fn is_ok(&self) -> bool {
        matches!(self, CheckResult::Ok)
    }

    /// Whether the history was found not linearizable.
    pub fn is_illegal(&self) -> bool {
        matches!(self, CheckResult::Illegal { .. })
    }
}

/// Checks whether `history` is linearizable with respect to `model`, one partition after
/// the other, giving up after `timeout` (`None`: never).
///
/// Returns the first illegal partition in [`Model::partition`] order, if any.
///
/// # Panics
///
/// If an operation has `ret < call`, or a partition names an index outside `history`.
pub fn check_operations<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    timeout: Option<Duration>,
) -> CheckResult {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let cancel = AtomicBool::new(false);
    let stop = Stop {
        deadline,
        cancel: &cancel,
    };
    for (partition, ops) in model.partition(history).iter().enumerate() {
        match search::check_partition(model, history, ops, &stop) {
            Outcome::Linearizable => {}
            Outcome::Illegal { longest_prefix } => {
                return CheckResult::Illegal {
                    partition,
                    longest_prefix,
                };
            }
            // The deadline is shared: the partitions left cannot be checked either.
            Outcome::Stopped => return CheckResult::Unknown,
        }
    }
    CheckResult::Ok
}

/// [`check_operations`] with the partitions checked by `threads` threads (0: one per
/// available core), largest first. As soon as one partition is found illegal the others
/// stop; the lowest-numbered illegal partition among those found is reported (with more
/// than one illegal partition, which one may vary between runs).
///
/// # Panics
///
/// As [`check_operations`].
pub fn check_operations_parallel<M>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    timeout: Option<Duration>,
    threads: usize,
) -> CheckResult
where
    M: Model + Sync,
    M::Input: Sync,
    M::Output: Sync,
{
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let partitions = model.partition(history);
    let mut order: Vec<usize> = (0..partitions.len()).collect();
    order.sort_by_key(|&p| std::cmp::Reverse(partitions[p].len()));
    let threads = match threads {
        0 => thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(partitions.len())
    .max(1);

    let cancel = AtomicBool::new(false);
    let next = AtomicUsize::new(0);
    let stopped = AtomicBool::new(false);
    let illegal: Mutex<Option<(usize, Vec<usize>)>> = Mutex::new(None);
    let worker = || {
        let stop = Stop {
            deadline,
            cancel: &cancel,
        };
        loop {
            let Some(&partition) = order.get(next.fetch_add(1, Ordering::Relaxed)) else {
                return;
            };
            if cancel.load(Ordering::Relaxed) {
                return;
            }
            match search::check_partition(model, history, &partitions[partition], &stop) {
                Outcome::Linearizable => {}
                Outcome::Illegal { longest_prefix } => {
                    cancel.store(true, Ordering::Relaxed);
                    let mut found = illegal.lock().unwrap_or_else(PoisonError::into_inner);
                    if found.as_ref().is_none_or(|(p, _)| partition < *p) {
                        *found = Some((partition, longest_prefix));
                    }
                }
                Outcome::Stopped => {
                    stopped.store(true, Ordering::Relaxed);
                    return;
                }
            }
        }
    };
    thread::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(worker);
        }
        worker();
    });

    match illegal.into_inner().unwrap_or_else(PoisonError::into_inner) {
        Some((partition, longest_prefix)) => CheckResult::Illegal {
            partition,
            longest_prefix,
        },
        None if stopped.load(Ordering::Relaxed) => CheckResult::Unknown,
        None => CheckResult::Ok,
    }
}

/// A human-readable account of `result` (as returned for `history` and `model`): for an
/// illegal history, the operations of the failing partition that could be linearized,
/// with the model state after each, then the operations left, marked with whether the
/// model would accept each one next.
pub fn explain<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    result: &CheckResult,
) -> String {
    let (partition, longest_prefix) = match result {
        CheckResult::Ok => return String::from("linearizable"),
        CheckResult::Unknown => return String::from("unknown: the check timed out"),
        CheckResult::Illegal {
            partition,
            longest_prefix,
        } => (*partition, longest_prefix),
    };
    let partitions = model.partition(history);
    let Some(ops) = partitions.get(partition) else {
        return format!(
            "not linearizable: partition {partition} (not a partition of this history)"
        );
    };
    let describe = |i: usize| {
        let op = &history[i];
        let ret = if op.is_outcome_unknown() {
            String::from("inf")
        } else {
            op.ret.to_string()
        };
        format!(
            "#{i} client {} [{}, {ret}] {}",
            op.client_id,
            op.call,
            model.describe_operation(&op.input, &op.output)
        )
    };

    let mut out = format!(
        "not linearizable: partition {partition} ({} operations); longest linearizable prefix: {} operations",
        ops.len(),
        longest_prefix.len()
    );
    let mut state = model.init();
    let _ = write!(out, "\n  initial state: {}", model.describe_state(&state));
    for &i in longest_prefix {
        let op = &history[i];
        match model.step(&state, &op.input, &op.output) {
            Some(next) => state = next,
            None => {
                let _ = write!(
                    out,
                    "\n  {} (rejected: prefix does not replay)",
                    describe(i)
                );
                continue;
            }
        }
        let _ = write!(
            out,
            "\n  {}  => {}",
            describe(i),
            model.describe_state(&state)
        );
    }
    let mut rest: Vec<usize> = ops
        .iter()
        .copied()
        .filter(|i| !longest_prefix.contains(i))
        .collect();
    rest.sort_by_key(|&i| (history[i].call, i));
    const SHOWN: usize = 20;
    let _ = write!(out, "\n  then stuck; operations left ({}):", rest.len());
    for &i in rest.iter().take(SHOWN) {
        let op = &history[i];
        let verdict = if model.step(&state, &op.input, &op.output).is_some() {
            "accepted next"
        } else {
            "impossible next"
        };
        let _ = write!(out, "\n  {}  ({verdict})", describe(i));
    }
    if rest.len() > SHOWN {
        let _ = write!(out, "\n  ... and {} more", rest.len() - SHOWN);
    }
    out
}
