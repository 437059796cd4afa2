//! Tests of the checker, the KV model and the recorder.

use std::collections::HashMap;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::bitset::{Bitset, fold_hash};
use super::*;

type KvOp = Operation<KvInput, KvOutput>;

fn op(client: u64, input: KvInput, call: u64, output: KvOutput, ret: u64) -> KvOp {
    Operation::new(client, input, call, output, ret)
}

fn get(key: &str) -> KvInput {
    KvInput::get(key)
}

fn put(key: &str, value: &str, version: u64) -> KvInput {
    KvInput::put(key, value, version)
}

fn set(key: &str, value: &str) -> KvInput {
    KvInput::set(key, value)
}

fn del(key: &str) -> KvInput {
    KvInput::delete(key)
}

fn val(value: &str, version: u64) -> KvOutput {
    KvOutput::value(value, version)
}

/// Checks with both entry points, which must agree.
fn check(history: &[KvOp]) -> CheckResult {
    let result = check_operations(&KvModel, history, None);
    let parallel = check_operations_parallel(&KvModel, history, None, 2);
    assert_eq!(
        result.is_ok(),
        parallel.is_ok(),
        "sequential {result:?} and parallel {parallel:?} checks disagree"
    );
    result
}

fn assert_linearizable(history: &[KvOp]) {
    let result = check(history);
    assert!(
        result.is_ok(),
        "expected linearizable, got {}",
        explain(&KvModel, history, &result)
    );
}

/// Asserts the history is illegal; returns (partition, longest_prefix).
fn assert_illegal(history: &[KvOp]) -> (usize, Vec<usize>) {
    match check(history) {
        CheckResult::Illegal {
            partition,
            longest_prefix,
        } => (partition, longest_prefix),
        other => panic!("expected an illegal history, got {other:?}"),
    }
}

/// An implementation of the KV contract written independently of [`KvModel::step`],
/// used to produce the answers of serial executions.
#[derive(Default, Debug)]
struct RefStore {
    map: HashMap<Vec<u8>, (Vec<u8>, u64)>,
}

impl RefStore {
    fn version(&self, key: &[u8]) -> u64 {
        self.map.get(key).map_or(0, |e| e.1)
    }

    fn apply(&mut self, input: &KvInput) -> KvOutput {
        match input {
            KvInput::Get { key } => match self.map.get(key) {
                Some((value, version)) => KvOutput::value(value.clone(), *version),
                None => KvOutput::ErrNoKey,
            },
            KvInput::Put {
                key,
                value,
                version,
            } => match self.map.get_mut(key) {
                None if *version == 0 => {
                    self.map.insert(key.clone(), (value.clone(), 1));
                    KvOutput::Ok
                }
                None => KvOutput::ErrNoKey,
                Some(entry) if entry.1 == *version => {
                    *entry = (value.clone(), version + 1);
                    KvOutput::Ok
                }
                Some(_) => KvOutput::ErrVersion,
            },
            KvInput::Set { key, value } => {
                let entry = self.map.entry(key.clone()).or_insert((Vec::new(), 0));
                *entry = (value.clone(), entry.1 + 1);
                KvOutput::Ok
            }
            KvInput::Delete { key } => KvOutput::Deleted {
                existed: self.map.remove(key).is_some(),
            },
        }
    }
}

// ---------------------------------------------------------------------------------------
// Building blocks.

#[test]
fn bitset_set_clear_and_hash() {
    let mut a = Bitset::new(130);
    let mut b = Bitset::new(130);
    for i in [0, 63, 64, 129] {
        a.set(i);
    }
    assert!(a.contains(0) && a.contains(63) && a.contains(64) && a.contains(129));
    assert!(!a.contains(1) && !a.contains(128));
    assert_eq!(a.count(), 4);
    a.clear(63);
    assert!(!a.contains(63));
    assert_eq!(a.count(), 3);
    for i in [129, 64, 0] {
        b.set(i);
    }
    assert_eq!(a, b);
    assert_eq!(fold_hash(&a), fold_hash(&b));
    b.set(5);
    assert_ne!(a, b);
    assert_ne!(fold_hash(&a), fold_hash(&b));
    // Single-bit sets hash apart, and so do byte strings differing only in length.
    let hashes: std::collections::HashSet<u64> = (0..130)
        .map(|i| {
            let mut s = Bitset::new(130);
            s.set(i);
            fold_hash(&s)
        })
        .collect();
    assert_eq!(hashes.len(), 130);
    assert_ne!(fold_hash(&b"a"[..]), fold_hash(&b"a\0"[..]));
}

#[test]
fn kv_model_steps() {
    let m = KvModel;
    let absent: Option<Versioned> = None;
    let a1 = Some(Versioned {
        value: b"a".to_vec(),
        version: 1,
    });
    let b2 = Some(Versioned {
        value: b"b".to_vec(),
        version: 2,
    });
    // Get.
    assert_eq!(m.step(&absent, &get("k"), &KvOutput::ErrNoKey), Some(None));
    assert_eq!(m.step(&absent, &get("k"), &val("a", 1)), None);
    assert_eq!(m.step(&a1, &get("k"), &val("a", 1)), Some(a1.clone()));
    assert_eq!(m.step(&a1, &get("k"), &val("a", 2)), None);
    assert_eq!(m.step(&a1, &get("k"), &val("b", 1)), None);
    assert_eq!(m.step(&a1, &get("k"), &KvOutput::ErrNoKey), None);
    let unversioned = KvOutput::Value {
        value: b"a".to_vec(),
        version: None,
    };
    assert_eq!(m.step(&a1, &get("k"), &unversioned), Some(a1.clone()));
    assert_eq!(m.step(&b2, &get("k"), &unversioned), None);
    assert_eq!(m.step(&a1, &get("k"), &KvOutput::Unknown), Some(a1.clone()));
    assert_eq!(m.step(&a1, &get("k"), &KvOutput::Ok), None);
    // Conditional put.
    assert_eq!(
        m.step(&absent, &put("k", "a", 0), &KvOutput::Ok),
        Some(a1.clone())
    );
    assert_eq!(m.step(&absent, &put("k", "a", 1), &KvOutput::Ok), None);
    assert_eq!(
        m.step(&absent, &put("k", "a", 1), &KvOutput::ErrNoKey),
        Some(None)
    );
    assert_eq!(
        m.step(&absent, &put("k", "a", 0), &KvOutput::ErrNoKey),
        None
    );
    assert_eq!(
        m.step(&absent, &put("k", "a", 1), &KvOutput::ErrVersion),
        None
    );
    assert_eq!(
        m.step(&a1, &put("k", "b", 1), &KvOutput::Ok),
        Some(b2.clone())
    );
    assert_eq!(m.step(&a1, &put("k", "b", 0), &KvOutput::Ok), None);
    assert_eq!(
        m.step(&a1, &put("k", "b", 0), &KvOutput::ErrVersion),
        Some(a1.clone())
    );
    assert_eq!(m.step(&a1, &put("k", "b", 1), &KvOutput::ErrVersion), None);
    assert_eq!(m.step(&a1, &put("k", "b", 2), &KvOutput::ErrNoKey), None);
    // ErrMaybe and Unknown: applied iff the version matches.
    for out in [KvOutput::ErrMaybe, KvOutput::Unknown] {
        assert_eq!(m.step(&a1, &put("k", "b", 1), &out), Some(b2.clone()));
        assert_eq!(m.step(&a1, &put("k", "b", 5), &out), Some(a1.clone()));
        assert_eq!(m.step(&absent, &put("k", "b", 5), &out), Some(None));
    }
    // Set.
    assert_eq!(
        m.step(&absent, &set("k", "a"), &KvOutput::Ok),
        Some(a1.clone())
    );
    assert_eq!(m.step(&a1, &set("k", "b"), &KvOutput::Ok), Some(b2.clone()));
    assert_eq!(
        m.step(&a1, &set("k", "b"), &KvOutput::Unknown),
        Some(b2.clone())
    );
    assert_eq!(m.step(&a1, &set("k", "b"), &KvOutput::ErrMaybe), None);
    assert_eq!(m.step(&a1, &set("k", "b"), &KvOutput::ErrVersion), None);
    // Delete.
    let existed = |existed| KvOutput::Deleted { existed };
    assert_eq!(m.step(&a1, &del("k"), &existed(true)), Some(None));
    assert_eq!(m.step(&a1, &del("k"), &existed(false)), None);
    assert_eq!(m.step(&absent, &del("k"), &existed(false)), Some(None));
    assert_eq!(m.step(&absent, &del("k"), &existed(true)), None);
    assert_eq!(m.step(&a1, &del("k"), &KvOutput::Ok), Some(None));
    assert_eq!(m.step(&absent, &del("k"), &KvOutput::Unknown), Some(None));
    assert_eq!(m.step(&a1, &del("k"), &KvOutput::ErrNoKey), None);
}

#[test]
fn kv_model_partitions_by_key_in_first_appearance_order() {
    let history = vec![
        op(0, get("b"), 0, KvOutput::ErrNoKey, 1),
        op(0, get("a"), 2, KvOutput::ErrNoKey, 3),
        op(0, set("b", "x"), 4, KvOutput::Ok, 5),
        op(0, del("c"), 6, KvOutput::Ok, 7),
        op(0, put("a", "y", 0), 8, KvOutput::Ok, 9),
    ];
    assert_eq!(
        KvModel.partition(&history),
        vec![vec![0, 2], vec![1, 4], vec![3]]
    );
}

// ---------------------------------------------------------------------------------------
// Linearizable histories.

#[test]
fn empty_history_is_linearizable() {
    assert_eq!(check(&[]), CheckResult::Ok);
    assert_eq!(explain(&KvModel, &[], &CheckResult::Ok), "linearizable");
}

#[test]
fn sequential_history_is_linearizable() {
    let ops = [
        (put("k", "a", 0), KvOutput::Ok),
        (get("k"), val("a", 1)),
        (put("k", "b", 1), KvOutput::Ok),
        (put("k", "c", 1), KvOutput::ErrVersion),
        (get("k"), val("b", 2)),
        (put("j", "x", 1), KvOutput::ErrNoKey),
        (get("j"), KvOutput::ErrNoKey),
        (set("k", "z"), KvOutput::Ok),
        (get("k"), val("z", 3)),
        (del("k"), KvOutput::Deleted { existed: true }),
        (get("k"), KvOutput::ErrNoKey),
        (del("k"), KvOutput::Deleted { existed: false }),
        (put("k", "q", 0), KvOutput::Ok),
        (get("k"), val("q", 1)),
    ];
    let history: Vec<KvOp> = ops
        .into_iter()
        .enumerate()
        .map(|(i, (input, output))| {
            let t = 10 * i as u64;
            op(i as u64 % 3, input, t, output, t + 5)
        })
        .collect();
    assert_linearizable(&history);

    // The same history with any one answer changed to another plausible one is not.
    let wrong = [
        (1, val("a", 2)),
        (3, KvOutput::Ok),
        (4, val("c", 2)),
        (6, val("x", 1)),
        (8, val("z", 2)),
        (10, val("z", 3)),
        (11, KvOutput::Deleted { existed: true }),
        (13, val("q", 4)),
    ];
    for (i, output) in wrong {
        let mut bad = history.clone();
        bad[i].output = output;
        let (_, prefix) = assert_illegal(&bad);
        assert!(
            !prefix.contains(&i),
            "{prefix:?} contains the impossible op {i}"
        );
    }
}

#[test]
fn concurrent_overlapping_puts_linearize_in_either_order() {
    // Two overlapping unconditional writes; a later read may see either, not a third.
    for (seen, version) in [("a", 2), ("b", 2)] {
        assert_linearizable(&[
            op(1, set("k", "a"), 0, KvOutput::Ok, 10),
            op(2, set("k", "b"), 5, KvOutput::Ok, 15),
            op(3, get("k"), 20, val(seen, version), 30),
        ]);
    }
    assert_illegal(&[
        op(1, set("k", "a"), 0, KvOutput::Ok, 10),
        op(2, set("k", "b"), 5, KvOutput::Ok, 15),
        op(3, get("k"), 20, val("b", 1), 30),
    ]);
    // Two overlapping creations: exactly one wins, and a later read sees the winner.
    let race = |out_a: KvOutput, out_b: KvOutput, seen: KvOutput| {
        vec![
            op(1, put("k", "a", 0), 0, out_a, 10),
            op(2, put("k", "b", 0), 5, out_b, 15),
            op(3, get("k"), 20, seen, 30),
        ]
    };
    assert_linearizable(&race(KvOutput::Ok, KvOutput::ErrVersion, val("a", 1)));
    assert_linearizable(&race(KvOutput::ErrVersion, KvOutput::Ok, val("b", 1)));
    assert_illegal(&race(KvOutput::Ok, KvOutput::ErrVersion, val("b", 1)));
    assert_illegal(&race(KvOutput::Ok, KvOutput::Ok, val("b", 1)));
    assert_illegal(&race(KvOutput::Ok, KvOutput::Ok, val("b", 2)));
    assert_illegal(&race(
        KvOutput::ErrVersion,
        KvOutput::ErrVersion,
        KvOutput::ErrNoKey,
    ));
}

#[test]
fn concurrent_get_sees_either_value() {
    for seen in [val("a", 1), val("b", 2)] {
        assert_linearizable(&[
            op(1, put("k", "a", 0), 0, KvOutput::Ok, 5),
            op(1, put("k", "b", 1), 10, KvOutput::Ok, 30),
            op(2, get("k"), 15, seen, 25),
        ]);
    }
    // A get overlapping a creation may see the key absent or present.
    for seen in [KvOutput::ErrNoKey, val("a", 1)] {
        assert_linearizable(&[
            op(1, put("k", "a", 0), 0, KvOutput::Ok, 10),
            op(2, get("k"), 5, seen, 8),
        ]);
    }
    // A call at the very instant of another's return overlaps it.
    assert_linearizable(&[
        op(1, put("k", "a", 0), 0, KvOutput::Ok, 10),
        op(2, get("k"), 10, KvOutput::ErrNoKey, 12),
    ]);
}

// ---------------------------------------------------------------------------------------
// Non-linearizable histories.

#[test]
fn read_of_an_overwritten_value_is_illegal() {
    // set a, then (no overlap) set b, then a read returns a.
    assert_illegal(&[
        op(1, set("k", "a"), 0, KvOutput::Ok, 10),
        op(2, set("k", "b"), 20, KvOutput::Ok, 30),
        op(3, get("k"), 40, val("a", 1), 50),
    ]);
    // Control: the same read overlapping the overwrite is fine.
    assert_linearizable(&[
        op(1, set("k", "a"), 0, KvOutput::Ok, 10),
        op(2, set("k", "b"), 20, KvOutput::Ok, 30),
        op(3, get("k"), 25, val("a", 1), 50),
    ]);
}

#[test]
fn stale_read_after_completed_put_is_illegal() {
    assert_illegal(&[
        op(1, put("k", "a", 0), 0, KvOutput::Ok, 10),
        op(1, put("k", "b", 1), 20, KvOutput::Ok, 30),
        op(2, get("k"), 31, val("a", 1), 40),
    ]);
    // Control: a read that started before the second put returned may be stale.
    assert_linearizable(&[
        op(1, put("k", "a", 0), 0, KvOutput::Ok, 10),
        op(1, put("k", "b", 1), 20, KvOutput::Ok, 30),
        op(2, get("k"), 29, val("a", 1), 40),
    ]);
}

#[test]
fn gets_observing_versions_in_the_wrong_order_are_illegal() {
    let history = |first: KvOutput, second: KvOutput| {
        vec![
            op(1, put("k", "a", 0), 0, KvOutput::Ok, 10),
            // A slow overwrite, concurrent with both reads.
            op(1, put("k", "b", 1), 20, KvOutput::Ok, 100),
            op(2, get("k"), 30, first, 40),
            op(3, get("k"), 50, second, 60),
        ]
    };
    assert_linearizable(&history(val("a", 1), val("b", 2)));
    assert_linearizable(&history(val("a", 1), val("a", 1)));
    assert_linearizable(&history(val("b", 2), val("b", 2)));
    assert_illegal(&history(val("b", 2), val("a", 1)));
    // Overlapping reads may observe the versions in either order.
    assert_linearizable(&[
        op(1, put("k", "a", 0), 0, KvOutput::Ok, 10),
        op(1, put("k", "b", 1), 20, KvOutput::Ok, 100),
        op(2, get("k"), 30, val("b", 2), 60),
        op(3, get("k"), 40, val("a", 1), 50),
    ]);
}

#[test]
fn lost_acknowledged_put_is_illegal() {
    // Acknowledged creation, then the key is missing.
    assert_illegal(&[
        op(1, put("k", "a", 0), 0, KvOutput::Ok, 10),
        op(2, get("k"), 20, KvOutput::ErrNoKey, 30),
    ]);
    // Acknowledged creation, then another creation also succeeds: one of them was lost.
    assert_illegal(&[
        op(1, put("k", "a", 0), 0, KvOutput::Ok, 10),
        op(2, put("k", "b", 0), 20, KvOutput::Ok, 30),
    ]);
    // Acknowledged update, then the version did not move.
    assert_illegal(&[
        op(1, set("k", "a"), 0, KvOutput::Ok, 10),
        op(1, set("k", "b"), 20, KvOutput::Ok, 30),
        op(2, put("k", "c", 1), 40, KvOutput::Ok, 50),
    ]);
}

#[test]
fn illegal_reports_the_partition_and_the_longest_prefix() {
    let history = vec![
        op(1, set("a", "x"), 0, KvOutput::Ok, 10),
        op(2, get("a"), 20, val("x", 1), 30),
        op(1, set("b", "y"), 0, KvOutput::Ok, 10),
        op(2, get("b"), 20, KvOutput::ErrNoKey, 30),
    ];
    let result = check(&history);
    assert_eq!(
        result,
        CheckResult::Illegal {
            partition: 1,
            longest_prefix: vec![2]
        }
    );
    let text = explain(&KvModel, &history, &result);
    assert!(text.contains("partition 1 (2 operations)"), "{text}");
    assert!(
        text.contains("#2 client 1 [0, 10] set(\"b\", \"y\") -> Ok  => \"y\" v1"),
        "{text}"
    );
    assert!(
        text.contains("#3 client 2 [20, 30] get(\"b\") -> ErrNoKey  (impossible next)"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------
// Uncertain outcomes.

#[test]
fn err_maybe_is_accepted_applied_or_not() {
    // Applied: a later read sees it.
    assert_linearizable(&[
        op(1, put("k", "a", 0), 0, KvOutput::ErrMaybe, 10),
        op(2, get("k"), 20, val("a", 1), 30),
    ]);
    // Not applied: another client created the key first, so the version mismatched.
    assert_linearizable(&[
        op(2, set("k", "w"), 0, KvOutput::Ok, 5),
        op(1, put("k", "a", 0), 10, KvOutput::ErrMaybe, 20),
        op(2, get("k"), 30, val("w", 1), 40),
    ]);
    // Applied, then overwritten by a put that read its version.
    assert_linearizable(&[
        op(1, put("k", "a", 0), 0, KvOutput::ErrMaybe, 10),
        op(2, get("k"), 20, val("a", 1), 30),
        op(2, put("k", "b", 1), 40, KvOutput::Ok, 50),
        op(2, get("k"), 60, val("b", 2), 70),
    ]);
    // Concurrent with a creation: either order, but consistently.
    let race = |seen: KvOutput| {
        vec![
            op(1, put("k", "a", 0), 0, KvOutput::ErrMaybe, 100),
            op(2, set("k", "w"), 10, KvOutput::Ok, 20),
            op(2, get("k"), 30, val("w", 1), 40),
            op(3, get("k"), 110, seen, 120),
        ]
    };
    // The set went first (version 1), so the put found version 1 and did not apply.
    assert_linearizable(&race(val("w", 1)));
    assert_illegal(&race(val("a", 2)));
    assert_illegal(&race(val("a", 1)));
    // The version matched throughout (the key stayed absent and nobody else wrote), so
    // the retry cannot have seen a mismatch: the first attempt applied.
    assert_illegal(&[
        op(1, put("k", "a", 0), 0, KvOutput::ErrMaybe, 10),
        op(2, get("k"), 20, KvOutput::ErrNoKey, 30),
    ]);
}

#[test]
fn unknown_outcome_is_accepted_applied_or_not() {
    let history = |reads: &[KvOutput]| {
        let mut h = vec![Operation::unknown_outcome(
            1,
            set("k", "a"),
            0,
            KvOutput::Unknown,
        )];
        for (i, seen) in reads.iter().enumerate() {
            let t = 10 + 20 * i as u64;
            h.push(op(2, get("k"), t, seen.clone(), t + 10));
        }
        h
    };
    assert!(history(&[])[0].is_outcome_unknown());
    assert_eq!(history(&[])[0].ret, UNKNOWN_RETURN);
    // Applied, not (yet) applied, applied late.
    assert_linearizable(&history(&[val("a", 1)]));
    assert_linearizable(&history(&[KvOutput::ErrNoKey]));
    assert_linearizable(&history(&[
        KvOutput::ErrNoKey,
        KvOutput::ErrNoKey,
        val("a", 1),
    ]));
    // But once seen it cannot be undone, and it applies once.
    assert_illegal(&history(&[val("a", 1), KvOutput::ErrNoKey]));
    assert_illegal(&history(&[val("a", 2)]));
    // An unknown conditional put applies only if its version matches.
    assert_linearizable(&[
        op(2, put("k", "w", 0), 0, KvOutput::Ok, 5),
        Operation::unknown_outcome(1, put("k", "a", 1), 10, KvOutput::Unknown),
        op(2, get("k"), 20, val("a", 2), 30),
    ]);
    assert_illegal(&[
        op(2, put("k", "w", 0), 0, KvOutput::Ok, 5),
        Operation::unknown_outcome(1, put("k", "a", 7), 10, KvOutput::Unknown),
        op(2, get("k"), 20, val("a", 2), 30),
    ]);
    // An unknown read constrains nothing.
    assert_linearizable(&[
        op(1, set("k", "a"), 0, KvOutput::Ok, 5),
        Operation::unknown_outcome(2, get("k"), 1, KvOutput::Unknown),
    ]);
}

#[test]
fn delete_restarts_the_version() {
    let history = |last: KvOutput| {
        vec![
            op(1, set("k", "a"), 0, KvOutput::Ok, 10),
            op(1, set("k", "b"), 12, KvOutput::Ok, 18),
            op(2, del("k"), 20, KvOutput::Deleted { existed: true }, 30),
            op(1, put("k", "c", 2), 40, KvOutput::ErrNoKey, 50),
            op(1, put("k", "c", 0), 60, KvOutput::Ok, 70),
            op(2, get("k"), 80, last, 90),
        ]
    };
    assert_linearizable(&history(val("c", 1)));
    assert_linearizable(&history(KvOutput::Value {
        value: b"c".to_vec(),
        version: None,
    }));
    assert_illegal(&history(val("c", 3)));
    assert_illegal(&history(KvOutput::ErrNoKey));
    // Deleting reports whether the key existed.
    assert_illegal(&[
        op(1, set("k", "a"), 0, KvOutput::Ok, 10),
        op(2, del("k"), 20, KvOutput::Deleted { existed: false }, 30),
    ]);
    assert_illegal(&[
        op(1, del("k"), 0, KvOutput::Ok, 10),
        op(2, del("k"), 20, KvOutput::Deleted { existed: true }, 30),
    ]);
}

// ---------------------------------------------------------------------------------------
// Another model: genericity and the default (single) partition.

/// A shared counter: `Some(n)` increments and returns the new value `n`; `None` reads.
struct Counter;

impl Model for Counter {
    type State = u64;
    type Input = bool; // true: increment
    type Output = u64;

    fn init(&self) -> u64 {
        0
    }

    fn step(&self, state: &u64, increment: &bool, output: &u64) -> Option<u64> {
        let next = if *increment { state + 1 } else { *state };
        (next == *output).then_some(next)
    }
}

#[test]
fn a_custom_model_with_the_default_partition() {
    let h = |ops: &[(bool, u64, u64, u64)]| -> Vec<Operation<bool, u64>> {
        ops.iter()
            .map(|&(inc, out, call, ret)| Operation::new(0, inc, call, out, ret))
            .collect()
    };
    assert_eq!(
        Counter.partition(&h(&[(true, 1, 0, 1), (true, 2, 2, 3)])),
        vec![vec![0, 1]]
    );
    // Overlapping increments may return 1 and 2 in either order.
    assert!(check_operations(&Counter, &h(&[(true, 2, 0, 10), (true, 1, 5, 15)]), None).is_ok());
    // Not both 1.
    assert_eq!(
        check_operations(&Counter, &h(&[(true, 1, 0, 10), (true, 1, 5, 15)]), None),
        CheckResult::Illegal {
            partition: 0,
            longest_prefix: vec![0]
        }
    );
    // Reads go forward.
    let reads = h(&[
        (true, 1, 0, 1),
        (true, 2, 2, 3),
        (false, 2, 4, 5),
        (false, 1, 6, 7),
    ]);
    assert!(check_operations(&Counter, &reads, None).is_illegal());
    assert!(check_operations_parallel(&Counter, &reads, None, 0).is_illegal());
    let text = explain(&Counter, &reads, &check_operations(&Counter, &reads, None));
    assert!(text.contains("<operation>"), "{text}");
}

// ---------------------------------------------------------------------------------------
// Timeouts.

/// `n` mutually concurrent writes of distinct values and a concurrent read of a value
/// never written: not linearizable, and the search must visit every (subset, last value)
/// pair to find out, about n·2^(n-1) states.
fn pathological(n: u64) -> Vec<KvOp> {
    let mut history: Vec<KvOp> = (0..n)
        .map(|i| op(i, set("k", &format!("v{i}")), 0, KvOutput::Ok, 1_000))
        .collect();
    history.push(op(n, get("k"), 0, val("never-written", 1), 1_000));
    history
}

#[test]
fn timeout_yields_unknown() {
    // Small enough to finish: the history really is illegal.
    assert!(check_operations(&KvModel, &pathological(8), None).is_illegal());
    // 40 writes: ~2·10^13 states; the tiny timeout must stop the search.
    let history = pathological(40);
    for parallel in [false, true] {
        let start = Instant::now();
        let timeout = Some(Duration::from_millis(50));
        let result = if parallel {
            check_operations_parallel(&KvModel, &history, timeout, 2)
        } else {
            check_operations(&KvModel, &history, timeout)
        };
        let elapsed = start.elapsed();
        assert_eq!(result, CheckResult::Unknown);
        assert!(
            elapsed < Duration::from_secs(5),
            "timed out only after {elapsed:?}"
        );
        assert_eq!(
            explain(&KvModel, &history, &result),
            "unknown: the check timed out"
        );
    }
}

#[test]
fn a_generous_timeout_does_not_change_the_verdict() {
    let history = pathological(6);
    assert!(check_operations(&KvModel, &history, Some(Duration::from_secs(60))).is_illegal());
    let ok = [op(1, set("k", "a"), 0, KvOutput::Ok, 10)];
    assert_eq!(
        check_operations(&KvModel, &ok, Some(Duration::from_secs(60))),
        CheckResult::Ok
    );
    // A timeout too large for the clock means no deadline.
    assert_eq!(
        check_operations(&KvModel, &ok, Some(Duration::MAX)),
        CheckResult::Ok
    );
}

// ---------------------------------------------------------------------------------------
// Histories of serial executions with widened intervals.

/// One operation of a generated serial execution.
#[derive(Clone, Debug)]
struct OpSpec {
    /// 0 get, 1 put, 2 set, 3 delete.
    kind: u8,
    key: u8,
    /// Put with the key's current version (else with `version`).
    current_version: bool,
    version: u8,
    /// How far before / after its serial point the operation's interval extends.
    before: u32,
    after: u32,
    /// 0: lost (never applied, outcome unknown); 1: applied, outcome unknown; 2: a put
    /// answered ErrMaybe; otherwise answered normally.
    fate: u8,
}

/// Serial points are this far apart; intervals extend up to a few of them either side.
const SPACING: u64 = 1_000;

/// Runs `specs` one after the other on a [`RefStore`] and records each operation with an
/// interval around its serial point: linearizable by construction (the serial order is a
/// witness). Every written value is unique.
fn serial_history(specs: &[OpSpec]) -> Vec<KvOp> {
    let mut store = RefStore::default();
    let mut history = Vec::with_capacity(specs.len());
    for (i, s) in specs.iter().enumerate() {
        let point = 1_000_000_000 + SPACING * i as u64;
        let key = format!("key{}", s.key).into_bytes();
        let value = format!("v{i}").into_bytes();
        let input = match s.kind % 4 {
            0 => KvInput::Get { key },
            1 => {
                let version = if s.current_version {
                    store.version(&key)
                } else {
                    u64::from(s.version)
                };
                KvInput::Put {
                    key,
                    value,
                    version,
                }
            }
            2 => KvInput::Set { key, value },
            _ => KvInput::Delete { key },
        };
        let call = point - u64::from(s.before);
        let ret = point + u64::from(s.after);
        let client = i as u64 % 7;
        history.push(match s.fate {
            0 => Operation::unknown_outcome(client, input, call, KvOutput::Unknown),
            1 => {
                store.apply(&input);
                Operation::unknown_outcome(client, input, call, KvOutput::Unknown)
            }
            2 if matches!(input, KvInput::Put { .. }) => {
                store.apply(&input);
                op(client, input, call, KvOutput::ErrMaybe, ret)
            }
            _ => {
                let output = store.apply(&input);
                op(client, input, call, output, ret)
            }
        });
    }
    history
}

/// Makes the read `i` return something no state can produce: a value never written, or
/// the value it read at a version never reached.
fn corrupt_read(history: &mut [KvOp], i: usize, keep_value: bool) {
    history[i].output = match &history[i].output {
        KvOutput::Value { value, .. } if keep_value => KvOutput::value(value.clone(), 1_000_000),
        _ => val("never-written", 1),
    };
}

/// Indices of the reads whose answer was received.
fn answered_reads(history: &[KvOp]) -> Vec<usize> {
    (0..history.len())
        .filter(|&i| {
            matches!(history[i].input, KvInput::Get { .. })
                && matches!(
                    history[i].output,
                    KvOutput::Value { .. } | KvOutput::ErrNoKey
                )
        })
        .collect()
}

fn op_spec(keys: u8, max_slack: u32) -> impl Strategy<Value = OpSpec> {
    (
        0u8..4,
        0..keys,
        any::<bool>(),
        0u8..4,
        0..=max_slack,
        0..=max_slack,
        0u8..20,
    )
        .prop_map(
            |(kind, key, current_version, version, before, after, fate)| OpSpec {
                kind,
                key,
                current_version,
                version,
                before,
                after,
                fate,
            },
        )
}

/// Every interleaving of `history` consistent with real time, tried one by one.
fn brute_force<M: Model>(model: &M, history: &[Operation<M::Input, M::Output>]) -> bool {
    fn go<M: Model>(
        model: &M,
        history: &[Operation<M::Input, M::Output>],
        done: &mut [bool],
        state: &M::State,
        left: usize,
    ) -> bool {
        if left == 0 {
            return true;
        }
        for i in 0..history.len() {
            if done[i] {
                continue;
            }
            // i can go next unless some other pending operation returned before i's call.
            let blocked =
                (0..history.len()).any(|j| !done[j] && j != i && history[j].ret < history[i].call);
            if blocked {
                continue;
            }
            if let Some(next) = model.step(state, &history[i].input, &history[i].output) {
                done[i] = true;
                if go(model, history, done, &next, left - 1) {
                    return true;
                }
                done[i] = false;
            }
        }
        false
    }
    go(
        model,
        history,
        &mut vec![false; history.len()],
        &model.init(),
        history.len(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A serial execution, however its intervals are widened, is linearizable; the same
    /// history with one read changed to an impossible answer is not, and the verdict
    /// points at that read's key.
    #[test]
    fn serial_executions_are_linearizable_and_a_corrupted_read_is_not(
        specs in prop::collection::vec(op_spec(3, 3 * SPACING as u32), 1..80),
        pick in any::<prop::sample::Index>(),
        keep_value in any::<bool>(),
    ) {
        let mut history = serial_history(&specs);
        let result = check(&history);
        prop_assert!(result.is_ok(), "{}", explain(&KvModel, &history, &result));

        let reads = answered_reads(&history);
        prop_assume!(!reads.is_empty());
        let i = reads[pick.index(reads.len())];
        corrupt_read(&mut history, i, keep_value);
        match check(&history) {
            CheckResult::Illegal { partition, longest_prefix } => {
                let partitions = KvModel.partition(&history);
                prop_assert!(partitions[partition].contains(&i));
                prop_assert!(!longest_prefix.contains(&i));
                prop_assert!(longest_prefix.iter().all(|j| partitions[partition].contains(j)));
            }
            other => prop_assert!(false, "corrupted read {i} accepted: {other:?}"),
        }
    }

    /// On small one-key histories with arbitrary answers, the search agrees with trying
    /// every real-time-respecting order.
    #[test]
    fn search_agrees_with_brute_force(
        specs in prop::collection::vec(op_spec(1, 4 * SPACING as u32), 1..8),
        corruptions in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8, 0u8..4, 0u64..4), 0..3),
    ) {
        let mut history = serial_history(&specs);
        let n = history.len();
        for (at, kind, value, version) in corruptions {
            let output = match kind {
                0 => KvOutput::ErrNoKey,
                1 => KvOutput::Ok,
                2 => KvOutput::ErrVersion,
                3 => KvOutput::ErrMaybe,
                4 => KvOutput::Deleted { existed: value % 2 == 0 },
                _ => val(&format!("v{}", value as usize % n), version),
            };
            history[at.index(n)].output = output;
        }
        let expected = brute_force(&KvModel, &history);
        let result = check(&history);
        prop_assert_eq!(result.is_ok(), expected, "{}", explain(&KvModel, &history, &result));
        prop_assert!(!result.is_ok() || !result.is_illegal());
    }
}

// ---------------------------------------------------------------------------------------
// Scale.

fn random_specs(
    rng: &mut SmallRng,
    n: usize,
    keys: u8,
    max_slack: u32,
    lost_per_mille: u32,
) -> Vec<OpSpec> {
    (0..n)
        .map(|_| OpSpec {
            kind: rng.gen_range(0..4),
            key: rng.gen_range(0..keys),
            current_version: rng.gen_bool(0.7),
            version: rng.gen_range(0..4),
            before: rng.gen_range(0..=max_slack),
            after: rng.gen_range(0..=max_slack),
            fate: match rng.gen_range(0..1000) {
                x if x < lost_per_mille => 0,
                x if x < 2 * lost_per_mille => 1,
                x if x < 50 => 2,
                _ => 3,
            },
        })
        .collect()
}

#[test]
fn ten_thousand_operations_over_a_hundred_keys() {
    let mut rng = SmallRng::seed_from_u64(0x5eed);
    // Each operation overlaps ~20 others (on all keys).
    let specs = random_specs(&mut rng, 10_000, 100, 10 * SPACING as u32, 5);
    let mut history = serial_history(&specs);
    assert_eq!(KvModel.partition(&history).len(), 100);

    let start = Instant::now();
    let result = check_operations(&KvModel, &history, None);
    let sequential = start.elapsed();
    assert!(result.is_ok(), "{}", explain(&KvModel, &history, &result));
    let start = Instant::now();
    let result = check_operations_parallel(&KvModel, &history, None, 0);
    let parallel = start.elapsed();
    assert!(result.is_ok(), "{}", explain(&KvModel, &history, &result));

    let reads = answered_reads(&history);
    let i = reads[reads.len() / 2];
    corrupt_read(&mut history, i, true);
    let start = Instant::now();
    let result = check_operations(&KvModel, &history, None);
    let illegal = start.elapsed();
    match result {
        CheckResult::Illegal { partition, .. } => {
            assert!(KvModel.partition(&history)[partition].contains(&i));
        }
        other => panic!("corrupted read {i} accepted: {other:?}"),
    }
    eprintln!(
        "10k ops / 100 keys: linearizable in {sequential:?} (parallel {parallel:?}), \
         illegal found in {illegal:?}"
    );
}

#[test]
fn two_thousand_operations_on_one_key() {
    let mut rng = SmallRng::seed_from_u64(7);
    // Each operation overlaps ~6 others, all on the same key.
    let specs = random_specs(&mut rng, 2_000, 1, 3 * SPACING as u32, 2);
    let mut history = serial_history(&specs);
    let start = Instant::now();
    let result = check_operations(&KvModel, &history, None);
    let elapsed = start.elapsed();
    assert!(result.is_ok(), "{}", explain(&KvModel, &history, &result));
    let reads = answered_reads(&history);
    let i = reads[reads.len() * 3 / 4];
    corrupt_read(&mut history, i, false);
    assert!(check_operations(&KvModel, &history, None).is_illegal());
    eprintln!("2k ops / 1 key: linearizable in {elapsed:?}");
}

// ---------------------------------------------------------------------------------------
// Recording real concurrent executions.

#[test]
fn recorded_history_of_a_locked_store_is_linearizable() {
    let store = Mutex::new(RefStore::default());
    let recorder: Recorder<KvInput, KvOutput> = Recorder::new();
    thread::scope(|scope| {
        for client in 0..4u64 {
            let (store, recorder) = (&store, &recorder);
            scope.spawn(move || {
                let mut rng = SmallRng::seed_from_u64(client);
                for i in 0..300 {
                    let key = format!("k{}", rng.gen_range(0..3));
                    let value = format!("c{client}-{i}");
                    let input = match rng.gen_range(0..5) {
                        0 | 1 => get(&key),
                        2 => {
                            let version = store.lock().map_or(0, |s| s.version(key.as_bytes()));
                            put(&key, &value, version)
                        }
                        3 => set(&key, &value),
                        _ => del(&key),
                    };
                    let id = recorder.begin(client, input.clone());
                    let output = store.lock().map(|mut s| s.apply(&input));
                    let output = output.unwrap_or(KvOutput::Unknown);
                    match rng.gen_range(0..50) {
                        // The client gives up: the outcome stays unknown.
                        0 => recorder.end_unknown(id, KvOutput::Unknown),
                        // The client crashes before recording the answer.
                        1 => drop(id),
                        _ => recorder.end(id, output),
                    }
                }
            });
        }
    });
    let history = recorder.finish(|_| KvOutput::Unknown);
    assert_eq!(history.len(), 1200);
    assert!(history.iter().any(Operation::is_outcome_unknown));
    assert!(history.iter().all(|o| o.call <= o.ret));
    let result = check(&history);
    assert!(result.is_ok(), "{}", explain(&KvModel, &history, &result));
}

#[test]
fn recorded_history_of_a_store_with_stale_reads_is_illegal() {
    // Reads are served from a copy refreshed only every 10 operations.
    let mut store = RefStore::default();
    let mut stale: HashMap<Vec<u8>, (Vec<u8>, u64)> = HashMap::new();
    let recorder: Recorder<KvInput, KvOutput> = Recorder::new();
    for i in 0..100 {
        if i % 10 == 0 {
            stale = store.map.clone();
        }
        let input = if i % 2 == 0 {
            set("k", &format!("v{i}"))
        } else {
            get("k")
        };
        let id = recorder.begin(0, input.clone());
        let output = match &input {
            KvInput::Get { key } => match stale.get(key) {
                Some((value, version)) => KvOutput::value(value.clone(), *version),
                None => KvOutput::ErrNoKey,
            },
            _ => store.apply(&input),
        };
        recorder.end(id, output);
    }
    let history = recorder.finish(|_| KvOutput::Unknown);
    assert!(check(&history).is_illegal());
}
