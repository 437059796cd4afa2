//! The Wing–Gong–Lowe search, as porcupine implements it, on one partition.
//!
//! The history is a list of call and return events in time order. The search walks it
//! from the front: at a call it tries to linearize that operation next (its output must
//! be accepted by the model in the current state); if so it *lifts* the call and its
//! return out of the list, pushes the operation on a stack and starts again from the
//! front. Reaching a return means the operation returning there should already have been
//! linearized: the search is stuck and backtracks, popping the last linearized operation,
//! putting its events back (*unlift*) and trying the next candidate after its call. The
//! list empties iff the history is linearizable; the stack empties on a return iff it is
//! not.
//!
//! Memoization (Lowe): the pair (set of linearized operations, model state) fully
//! determines what can still happen, so a pair seen before is not explored again.

use std::collections::HashSet;
use std::mem;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::bitset::{Bitset, FoldBuildHasher};
use super::history::Operation;
use super::model::Model;

/// How one partition's search ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Linearizable,
    /// Not linearizable. The longest sequence of (history) indices the search managed to
    /// linearize, in order.
    Illegal {
        longest_prefix: Vec<usize>,
    },
    /// The deadline passed, or another partition asked everyone to stop.
    Stopped,
}

/// When to give up.
pub(crate) struct Stop<'a> {
    pub(crate) deadline: Option<Instant>,
    pub(crate) cancel: &'a AtomicBool,
}

impl Stop<'_> {
    fn now(&self) -> bool {
        self.cancel.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// How many search steps run between two looks at the clock (tens of microseconds).
const STOP_CHECK_INTERVAL: u32 = 256;

const NIL: u32 = u32::MAX;
const HEAD: u32 = 0;

/// The events of a partition as a doubly-linked list over arrays. Node 0 is the head
/// sentinel; node `k + 1` is the `k`-th event in time order.
struct Events {
    next: Vec<u32>,
    prev: Vec<u32>,
    /// The partition-local index of the event's operation.
    op: Vec<u32>,
    /// For a call: its return node. For a return (and the head): `NIL`.
    matching: Vec<u32>,
}

impl Events {
    /// The events of `ops` (indices into `history`), in time order, calls before returns
    /// at the same instant, ties broken by position in `ops`.
    fn new<I, O>(history: &[Operation<I, O>], ops: &[usize]) -> Self {
        let n = ops.len();
        assert!(
            n < (u32::MAX / 2) as usize,
            "partition of {n} operations is too large"
        );
        // (time, is_return, local index)
        let mut events: Vec<(u64, bool, u32)> = Vec::with_capacity(2 * n);
        for (local, &i) in ops.iter().enumerate() {
            let op = &history[i];
            assert!(
                op.call <= op.ret,
                "operation {i} returns (at {}) before it is called (at {})",
                op.ret,
                op.call
            );
            events.push((op.call, false, local as u32));
            events.push((op.ret, true, local as u32));
        }
        events.sort_unstable();

        let len = 2 * n + 1;
        let mut list = Events {
            next: Vec::with_capacity(len),
            prev: Vec::with_capacity(len),
            op: Vec::with_capacity(len),
            matching: vec![NIL; len],
        };
        let mut call_node = vec![NIL; n];
        list.op.push(NIL);
        for (k, &(_, is_return, local)) in events.iter().enumerate() {
            let node = k as u32 + 1;
            list.op.push(local);
            if is_return {
                list.matching[call_node[local as usize] as usize] = node;
            } else {
                call_node[local as usize] = node;
            }
        }
        for node in 0..len as u32 {
            list.prev.push(if node == HEAD { NIL } else { node - 1 });
            list.next.push(if node as usize + 1 == len {
                NIL
            } else {
                node + 1
            });
        }
        list
    }

    #[inline]
    fn unlink(&mut self, node: u32) {
        let (prev, next) = (self.prev[node as usize], self.next[node as usize]);
        self.next[prev as usize] = next;
        if next != NIL {
            self.prev[next as usize] = prev;
        }
    }

    /// Takes a call and its return out of the list.
    #[inline]
    fn lift(&mut self, call: u32) {
        self.unlink(call);
        self.unlink(self.matching[call as usize]);
    }

    /// Puts back a call and its return, undoing the matching `lift`. Their own links were
    /// left untouched by `lift`, and every lift since has been undone, so they still name
    /// the right neighbours.
    #[inline]
    fn unlift(&mut self, call: u32) {
        let ret = self.matching[call as usize];
        for node in [ret, call] {
            let (prev, next) = (self.prev[node as usize], self.next[node as usize]);
            self.next[prev as usize] = node;
            if next != NIL {
                self.prev[next as usize] = node;
            }
        }
    }
}

/// Checks the operations `ops` (indices into `history`) against `model`.
pub(crate) fn check_partition<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    ops: &[usize],
    stop: &Stop<'_>,
) -> Outcome {
    if ops.is_empty() {
        return Outcome::Linearizable;
    }
    let mut list = Events::new(history, ops);
    let mut linearized = Bitset::new(ops.len());
    let mut cache: HashSet<(Bitset, M::State), FoldBuildHasher> =
        HashSet::with_hasher(FoldBuildHasher);
    // The linearized calls, with the state before each.
    let mut calls: Vec<(u32, M::State)> = Vec::new();
    let mut longest: Vec<u32> = Vec::new();
    let mut state = model.init();
    let mut entry = list.next[HEAD as usize];
    let mut steps: u32 = 0;

    while list.next[HEAD as usize] != NIL {
        steps = steps.wrapping_add(1);
        if steps % STOP_CHECK_INTERVAL == 0 && stop.now() {
            return Outcome::Stopped;
        }
        // `entry` is never NIL here: a call is always followed by its return, and a
        // return always leads to a backtrack.
        let e = entry as usize;
        if list.matching[e] != NIL {
            let local = list.op[e] as usize;
            let op = &history[ops[local]];
            let Some(new_state) = model.step(&state, &op.input, &op.output) else {
                entry = list.next[e];
                continue;
            };
            linearized.set(local);
            let key = (linearized, new_state);
            if cache.contains(&key) {
                linearized = key.0;
                linearized.clear(local);
                entry = list.next[e];
            } else {
                cache.insert(key.clone());
                let (lin, new_state) = key;
                linearized = lin;
                calls.push((entry, mem::replace(&mut state, new_state)));
                list.lift(entry);
                entry = list.next[HEAD as usize];
            }
        } else {
            // A return whose operation is not linearized yet: stuck.
            if calls.len() > longest.len() {
                longest.clear();
                longest.extend(calls.iter().map(|&(call, _)| call));
            }
            let Some((call, previous)) = calls.pop() else {
                let longest_prefix = longest
                    .iter()
                    .map(|&node| ops[list.op[node as usize] as usize])
                    .collect();
                return Outcome::Illegal { longest_prefix };
            };
            state = previous;
            linearized.clear(list.op[call as usize] as usize);
            list.unlift(call);
            entry = list.next[call as usize];
        }
    }
    Outcome::Linearizable
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(call: u64, ret: u64) -> Operation<(), ()> {
        Operation::new(0, (), call, (), ret)
    }

    fn order(list: &Events) -> Vec<u32> {
        let mut out = Vec::new();
        let mut node = list.next[HEAD as usize];
        while node != NIL {
            out.push(node);
            assert_eq!(list.next[list.prev[node as usize] as usize], node);
            node = list.next[node as usize];
        }
        out
    }

    #[test]
    fn events_are_time_ordered_calls_first_on_ties() {
        // op0 [5, 10], op1 [10, 20], op2 [0, 30]
        let history = [op(5, 10), op(10, 20), op(0, 30)];
        let list = Events::new(&history, &[0, 1, 2]);
        let seq: Vec<(u32, bool)> = order(&list)
            .into_iter()
            .map(|n| (list.op[n as usize], list.matching[n as usize] == NIL))
            .collect();
        assert_eq!(
            seq,
            vec![
                (2, false),
                (0, false),
                (1, false),
                (0, true),
                (1, true),
                (2, true)
            ]
        );
    }

    #[test]
    fn lift_and_unlift_restore_the_list() {
        let history = [op(0, 10), op(1, 2), op(3, 20), op(4, 5)];
        let mut list = Events::new(&history, &[0, 1, 2, 3]);
        let original = order(&list);
        let calls: Vec<u32> = original
            .iter()
            .copied()
            .filter(|&n| list.matching[n as usize] != NIL)
            .collect();
        // Lift in some order, unlift in reverse, checking the list at every stage.
        let lifted = [calls[1], calls[3], calls[0]];
        let mut snapshots = vec![order(&list)];
        for &c in &lifted {
            list.lift(c);
            let now = order(&list);
            assert!(!now.contains(&c) && !now.contains(&list.matching[c as usize]));
            snapshots.push(now);
        }
        assert_eq!(snapshots.last().map(Vec::len), Some(2));
        for &c in lifted.iter().rev() {
            snapshots.pop();
            list.unlift(c);
            assert_eq!(Some(&order(&list)), snapshots.last());
        }
        assert_eq!(order(&list), original);
    }

    #[test]
    #[should_panic(expected = "returns (at 3) before it is called (at 4)")]
    fn rejects_return_before_call() {
        let history = [op(0, 1), op(4, 3)];
        let _ = Events::new(&history, &[0, 1]);
    }
}
