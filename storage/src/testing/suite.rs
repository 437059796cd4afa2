//! The conformance suite: the [`Persister`] contract, checked the same way on every
//! backend.
//!
//! [`run_all`] runs every case; each case is also a `pub fn` so that a test can run one
//! alone. Every case opens its own empty store through the [`Harness`], and every
//! assertion message starts with `[backend] case:`.

use std::io::{Read, Write};

use crate::error::StorageError;
use crate::persister::{Persister, Result};
use crate::testing::harness::Harness;
use crate::testing::model::{Model, Outcome};
use crate::testing::payload::{PayloadGen, SplitMix64, compare_stream};
use crate::types::{
    Entry, HARD_STATE_ACCOUNTED_SIZE, HardState, RecoveredState, SnapshotInfo, SnapshotMeta,
    WriteBatch,
};

/// One case of the suite.
pub type Case = fn(&mut dyn Harness);

/// Every case, by name, in the order [`run_all`] runs them.
pub const CASES: &[(&str, Case)] = &[
    ("empty_store", empty_store),
    (
        "first_append_must_start_at_one",
        first_append_must_start_at_one,
    ),
    (
        "gaps_and_overlaps_are_rejected",
        gaps_and_overlaps_are_rejected,
    ),
    ("truncate_at_first_index", truncate_at_first_index),
    ("truncate_above_last_index", truncate_above_last_index),
    ("truncate_and_replace_suffix", truncate_and_replace_suffix),
    (
        "truncate_at_or_below_snapshot_is_rejected",
        truncate_at_or_below_snapshot_is_rejected,
    ),
    (
        "empty_batch_and_hard_state_only",
        empty_batch_and_hard_state_only,
    ),
    (
        "invalid_terms_and_votes_are_rejected",
        invalid_terms_and_votes_are_rejected,
    ),
    (
        "recovery_after_reopen_equals_state_before",
        recovery_after_reopen_equals_state_before,
    ),
    (
        "snapshot_keeps_matching_suffix",
        snapshot_keeps_matching_suffix,
    ),
    (
        "snapshot_discards_conflicting_log",
        snapshot_discards_conflicting_log,
    ),
    (
        "snapshot_beyond_log_discards_it",
        snapshot_beyond_log_discards_it,
    ),
    ("snapshot_on_empty_store", snapshot_on_empty_store),
    ("stale_snapshot_is_rejected", stale_snapshot_is_rejected),
    (
        "log_writes_during_snapshot_write",
        log_writes_during_snapshot_write,
    ),
    (
        "successive_snapshots_and_restarts",
        successive_snapshots_and_restarts,
    ),
    ("compact_edges", compact_edges),
    ("raft_state_size_is_exact", raft_state_size_is_exact),
    (
        "snapshot_size_before_and_after",
        snapshot_size_before_and_after,
    ),
    ("large_snapshot_streams", large_snapshot_streams),
    (
        "reader_keeps_old_payload_across_commit",
        reader_keeps_old_payload_across_commit,
    ),
    (
        "dropped_writer_leaves_old_snapshot",
        dropped_writer_leaves_old_snapshot,
    ),
    (
        "concurrent_writes_leave_contiguous_log",
        concurrent_writes_leave_contiguous_log,
    ),
    ("rejected_calls_do_not_poison", rejected_calls_do_not_poison),
];

/// Runs every case in [`CASES`] against `h`.
pub fn run_all(h: &mut dyn Harness) {
    for (case, run) in CASES {
        eprintln!("[{}] conformance case {case}", h.name());
        run(h);
    }
}

/// Size of the payload [`large_snapshot_streams`] writes and reads back.
pub const LARGE_SNAPSHOT_BYTES: u64 = 64 << 20;

// ----- helpers -----

/// An entry whose payload varies in length with its index and term, so that size
/// arithmetic cannot pass by accident.
pub fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: format!("entry {index} of term {term}").into_bytes(),
    }
}

/// Entries `range` of `term`.
pub fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    range.map(|i| entry(i, term)).collect()
}

fn meta(index: u64, term: u64) -> SnapshotMeta {
    SnapshotMeta { index, term }
}

fn ok<T>(who: &str, what: &str, r: Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{who}: {what} failed: {e}"),
    }
}

fn append(who: &str, p: &dyn Persister, es: Vec<Entry>) {
    ok(who, "append", p.write(&WriteBatch::new().append(es)));
}

fn recover(who: &str, p: &dyn Persister) -> RecoveredState {
    ok(who, "recover", p.recover())
}

/// Writes `payload` as a snapshot for `meta` in chunks of `chunk` bytes and commits it.
pub fn install(p: &dyn Persister, meta: SnapshotMeta, payload: &[u8]) -> Result<SnapshotInfo> {
    let mut w = p.begin_snapshot(meta)?;
    for part in payload.chunks(1000) {
        w.write_all(part)
            .map_err(|e| StorageError::io("write snapshot payload", "<suite>", e))?;
    }
    w.commit()
}

/// The current snapshot's metadata and whole payload.
pub fn read_snapshot(who: &str, p: &dyn Persister) -> Option<(SnapshotMeta, Vec<u8>)> {
    let mut r = ok(who, "open snapshot", p.open_snapshot())?;
    let mut buf = Vec::new();
    if let Err(e) = r.read_to_end(&mut buf) {
        panic!("{who}: reading the snapshot payload failed: {e}");
    }
    assert_eq!(
        buf.len() as u64,
        r.payload_len(),
        "{who}: payload length differs from the reader's payload_len"
    );
    Some((r.meta(), buf))
}

fn expect_gap(who: &str, r: Result<()>, expected: u64, got: u64) {
    match r {
        Err(StorageError::LogGap {
            expected: e,
            got: g,
            ..
        }) if e == expected && g == got => {}
        other => panic!("{who}: want LogGap {{ expected: {expected}, got: {got} }}, got {other:?}"),
    }
}

fn expect_invalid<T: std::fmt::Debug>(who: &str, r: Result<T>) {
    match r {
        Err(StorageError::InvalidArgument { .. }) => {}
        other => panic!("{who}: want InvalidArgument, got {other:?}"),
    }
}

fn expect_stale<T: std::fmt::Debug>(who: &str, r: Result<T>, index: u64, current: u64) {
    match r {
        Err(StorageError::StaleSnapshot {
            index: i,
            current: c,
        }) if i == index && c == current => {}
        other => panic!(
            "{who}: want StaleSnapshot {{ index: {index}, current: {current} }}, got {other:?}"
        ),
    }
}

fn state(hard_state: HardState, snapshot: Option<SnapshotMeta>, es: Vec<Entry>) -> RecoveredState {
    RecoveredState {
        hard_state,
        snapshot,
        entries: es,
        skipped_snapshots: Vec::new(),
    }
}

fn hs(term: u64, voted_for: Option<u64>, commit: u64) -> HardState {
    HardState {
        term,
        voted_for,
        commit,
    }
}

/// Asserts that `p` recovers `want`, that recovery is idempotent, and that
/// `raft_state_size` and `snapshot_meta` agree with it.
fn assert_state(who: &str, p: &dyn Persister, want: &RecoveredState) {
    let got = recover(who, p);
    assert_eq!(&got, want, "{who}: recovered state");
    assert_eq!(&recover(who, p), want, "{who}: second recover() differs");
    let size =
        HARD_STATE_ACCOUNTED_SIZE + want.entries.iter().map(Entry::accounted_size).sum::<u64>();
    assert_eq!(p.raft_state_size(), size, "{who}: raft_state_size");
    assert_eq!(p.snapshot_meta(), want.snapshot, "{who}: snapshot_meta");
}

/// Asserts the state, restarts, and asserts it again on the new instance.
fn assert_state_survives(
    who: &str,
    h: &mut dyn Harness,
    p: Box<dyn Persister>,
    want: &RecoveredState,
) -> Box<dyn Persister> {
    assert_state(who, &*p, want);
    let p = h.reopen(p);
    assert_state(&format!("{who} (after restart)"), &*p, want);
    p
}

fn who(h: &dyn Harness, case: &str) -> String {
    format!("[{}] {case}", h.name())
}

// ----- cases -----

/// A new store is empty, and reports the backend's name.
pub fn empty_store(h: &mut dyn Harness) {
    let who = who(h, "empty_store");
    let p = h.open();
    assert_eq!(p.backend_name(), h.name(), "{who}: backend_name");
    assert_state(&who, &*p, &RecoveredState::default());
    assert_eq!(p.snapshot_size(), 0, "{who}: snapshot_size");
    assert!(
        ok(&who, "open snapshot", p.open_snapshot()).is_none(),
        "{who}: no snapshot yet"
    );
    let p = assert_state_survives(&who, h, p, &RecoveredState::default());
    drop(p);
}

/// The first entry of a new log is index 1; anything else is a gap.
pub fn first_append_must_start_at_one(h: &mut dyn Harness) {
    let who = who(h, "first_append_must_start_at_one");
    let p = h.open();
    expect_gap(
        &who,
        p.write(&WriteBatch::new().append([entry(2, 1)])),
        1,
        2,
    );
    expect_gap(
        &who,
        p.write(&WriteBatch::new().append([entry(0, 1)])),
        1,
        0,
    );
    assert_state(&who, &*p, &RecoveredState::default());
    append(&who, &*p, vec![entry(1, 1)]);
    let want = state(HardState::default(), None, vec![entry(1, 1)]);
    drop(assert_state_survives(&who, h, p, &want));
}

/// A batch that skips an index, repeats one, or is not contiguous inside is rejected
/// whole, and changes nothing.
pub fn gaps_and_overlaps_are_rejected(h: &mut dyn Harness) {
    let who = who(h, "gaps_and_overlaps_are_rejected");
    let p = h.open();
    append(&who, &*p, entries(1..=5, 1));
    expect_gap(
        &who,
        p.write(&WriteBatch::new().append([entry(7, 1)])),
        6,
        7,
    );
    expect_gap(
        &who,
        p.write(&WriteBatch::new().append([entry(5, 1)])),
        6,
        5,
    );
    expect_gap(
        &who,
        p.write(&WriteBatch::new().append([entry(6, 1), entry(8, 1)])),
        7,
        8,
    );
    // A rejected batch with a hard state must not store the hard state either.
    expect_gap(
        &who,
        p.write(
            &WriteBatch::new()
                .hard_state(hs(5, Some(1), 3))
                .append([entry(6, 1), entry(6, 1)]),
        ),
        7,
        6,
    );
    let want = state(HardState::default(), None, entries(1..=5, 1));
    let p = assert_state_survives(&who, h, p, &want);
    append(&who, &*p, vec![entry(6, 2)]);
    let mut es = entries(1..=5, 1);
    es.push(entry(6, 2));
    drop(assert_state_survives(
        &who,
        h,
        p,
        &state(HardState::default(), None, es),
    ));
}

/// Truncating from index 1 empties the log; the next entry is index 1 again.
pub fn truncate_at_first_index(h: &mut dyn Harness) {
    let who = who(h, "truncate_at_first_index");
    let p = h.open();
    append(&who, &*p, entries(1..=4, 1));
    ok(
        &who,
        "truncate",
        p.write(&WriteBatch::new().truncate_from(1)),
    );
    let p = assert_state_survives(&who, h, p, &RecoveredState::default());
    expect_gap(
        &who,
        p.write(&WriteBatch::new().append([entry(5, 1)])),
        1,
        5,
    );
    ok(
        &who,
        "truncate and append",
        p.write(&WriteBatch::new().truncate_from(1).append(entries(1..=2, 3))),
    );
    let want = state(HardState::default(), None, entries(1..=2, 3));
    drop(assert_state_survives(&who, h, p, &want));
}

/// Truncating above the last index removes nothing, and appends still continue the log.
pub fn truncate_above_last_index(h: &mut dyn Harness) {
    let who = who(h, "truncate_above_last_index");
    let p = h.open();
    append(&who, &*p, entries(1..=3, 1));
    ok(
        &who,
        "truncate above last",
        p.write(&WriteBatch::new().truncate_from(10)),
    );
    ok(
        &who,
        "truncate at last+1",
        p.write(&WriteBatch::new().truncate_from(4)),
    );
    let want = state(HardState::default(), None, entries(1..=3, 1));
    let p = assert_state_survives(&who, h, p, &want);
    expect_gap(
        &who,
        p.write(&WriteBatch::new().truncate_from(10).append([entry(10, 1)])),
        4,
        10,
    );
    ok(
        &who,
        "truncate above last and append",
        p.write(&WriteBatch::new().truncate_from(10).append([entry(4, 1)])),
    );
    let want = state(HardState::default(), None, entries(1..=4, 1));
    drop(assert_state_survives(&who, h, p, &want));
}

/// A truncation in the middle removes the suffix, and the batch's entries replace it.
pub fn truncate_and_replace_suffix(h: &mut dyn Harness) {
    let who = who(h, "truncate_and_replace_suffix");
    let p = h.open();
    append(&who, &*p, entries(1..=10, 1));
    ok(
        &who,
        "truncate at last",
        p.write(&WriteBatch::new().truncate_from(10).append([entry(10, 2)])),
    );
    ok(
        &who,
        "truncate and replace",
        p.write(
            &WriteBatch::new()
                .hard_state(hs(3, Some(2), 4))
                .truncate_from(6)
                .append(entries(6..=7, 3)),
        ),
    );
    let mut es = entries(1..=5, 1);
    es.extend(entries(6..=7, 3));
    let want = state(hs(3, Some(2), 4), None, es.clone());
    let p = assert_state_survives(&who, h, p, &want);
    // The truncated entries must not come back after a restart or a later append.
    append(&who, &*p, vec![entry(8, 3)]);
    es.push(entry(8, 3));
    drop(assert_state_survives(
        &who,
        h,
        p,
        &state(hs(3, Some(2), 4), None, es),
    ));
}

/// `truncate_from` at or below the snapshot index is invalid and changes nothing.
pub fn truncate_at_or_below_snapshot_is_rejected(h: &mut dyn Harness) {
    let who = who(h, "truncate_at_or_below_snapshot_is_rejected");
    let p = h.open();
    append(&who, &*p, entries(1..=8, 1));
    ok(&who, "install snapshot", install(&*p, meta(5, 1), b"five"));
    expect_invalid(&who, p.write(&WriteBatch::new().truncate_from(5)));
    expect_invalid(&who, p.write(&WriteBatch::new().truncate_from(1)));
    expect_invalid(
        &who,
        p.write(&WriteBatch::new().truncate_from(5).append(entries(5..=6, 2))),
    );
    let want = state(hs(0, None, 5), Some(meta(5, 1)), entries(6..=8, 1));
    let p = assert_state_survives(&who, h, p, &want);
    ok(
        &who,
        "truncate right after the snapshot",
        p.write(&WriteBatch::new().truncate_from(6).append([entry(6, 2)])),
    );
    let want = state(hs(0, None, 5), Some(meta(5, 1)), vec![entry(6, 2)]);
    drop(assert_state_survives(&who, h, p, &want));
}

/// An empty batch changes nothing; a batch with only a hard state stores it.
pub fn empty_batch_and_hard_state_only(h: &mut dyn Harness) {
    let who = who(h, "empty_batch_and_hard_state_only");
    let p = h.open();
    ok(
        &who,
        "empty batch on empty store",
        p.write(&WriteBatch::new()),
    );
    assert_state(&who, &*p, &RecoveredState::default());
    ok(
        &who,
        "hard state only",
        p.write(&WriteBatch::new().hard_state(hs(2, Some(3), 0))),
    );
    let want = state(hs(2, Some(3), 0), None, vec![]);
    let p = assert_state_survives(&who, h, p, &want);
    append(&who, &*p, entries(1..=3, 2));
    ok(&who, "empty batch", p.write(&WriteBatch::new()));
    ok(
        &who,
        "hard state only",
        p.write(&WriteBatch::new().hard_state(hs(4, None, 2))),
    );
    let want = state(hs(4, None, 2), None, entries(1..=3, 2));
    let p = assert_state_survives(&who, h, p, &want);
    // The hard state is replaced, not merged: a later one without a vote clears it.
    ok(
        &who,
        "hard state with vote",
        p.write(&WriteBatch::new().hard_state(hs(5, Some(1), 3))),
    );
    let want = state(hs(5, Some(1), 3), None, entries(1..=3, 2));
    drop(assert_state_survives(&who, h, p, &want));
}

/// Entries of term 0 and votes for node 0 are invalid.
pub fn invalid_terms_and_votes_are_rejected(h: &mut dyn Harness) {
    let who = who(h, "invalid_terms_and_votes_are_rejected");
    let p = h.open();
    expect_invalid(&who, p.write(&WriteBatch::new().append([entry(1, 0)])));
    expect_invalid(
        &who,
        p.write(&WriteBatch::new().hard_state(hs(1, Some(0), 0))),
    );
    expect_invalid(
        &who,
        p.write(
            &WriteBatch::new()
                .hard_state(hs(1, Some(0), 0))
                .append([entry(1, 1)]),
        ),
    );
    drop(assert_state_survives(
        &who,
        h,
        p,
        &RecoveredState::default(),
    ));
}

/// After any sequence of writes, a restart recovers exactly the state before it.
pub fn recovery_after_reopen_equals_state_before(h: &mut dyn Harness) {
    let who = who(h, "recovery_after_reopen_equals_state_before");
    let mut model = Model::new();
    let mut p = h.open();
    let mut rng = SplitMix64(0x5eed);
    for round in 0..6u64 {
        for _ in 0..5 {
            let last = model.last_index();
            let term = 1 + round;
            let truncate = (rng.next() % 3 == 0 && last > model.snapshot_index())
                .then(|| model.snapshot_index() + 1 + rng.next() % (last - model.snapshot_index()));
            let start = truncate.map_or(last + 1, |t| t.min(last + 1));
            let n = rng.next() % 4;
            let mut b = WriteBatch::new().append((start..start + n).map(|i| Entry {
                index: i,
                term,
                data: vec![(i % 251) as u8; (rng.next() % 300) as usize],
            }));
            b.truncate_from = truncate;
            if rng.next() % 2 == 0 {
                b.hard_state = Some(hs(term, Some(1 + rng.next() % 3), start.saturating_sub(1)));
            }
            assert_eq!(
                model.write(&b),
                Outcome::Ok,
                "{who}: model rejects its own batch"
            );
            ok(&who, "write", p.write(&b));
        }
        p = assert_state_survives(&format!("{who} round {round}"), h, p, &model.recovered());
    }
}

/// A snapshot whose index and term match the log keeps the entries after it.
pub fn snapshot_keeps_matching_suffix(h: &mut dyn Harness) {
    let who = who(h, "snapshot_keeps_matching_suffix");
    let p = h.open();
    let mut es = entries(1..=4, 1);
    es.extend(entries(5..=10, 2));
    append(&who, &*p, es);
    ok(
        &who,
        "hard state",
        p.write(&WriteBatch::new().hard_state(hs(2, Some(1), 3))),
    );
    let info = ok(&who, "install", install(&*p, meta(6, 2), b"state at six"));
    assert_eq!(info.meta, meta(6, 2), "{who}: SnapshotInfo.meta");
    assert_eq!(
        info.uncompressed_bytes, 12,
        "{who}: SnapshotInfo.uncompressed_bytes"
    );
    assert!(info.stored_bytes > 0, "{who}: SnapshotInfo.stored_bytes");
    let want = state(hs(2, Some(1), 6), Some(meta(6, 2)), entries(7..=10, 2));
    let p = assert_state_survives(&who, h, p, &want);
    assert_eq!(
        read_snapshot(&who, &*p),
        Some((meta(6, 2), b"state at six".to_vec())),
        "{who}: payload after restart"
    );
    // A commit above the snapshot stays as written.
    ok(
        &who,
        "hard state",
        p.write(&WriteBatch::new().hard_state(hs(2, Some(1), 9))),
    );
    append(&who, &*p, vec![entry(11, 3)]);
    let mut es = entries(7..=10, 2);
    es.push(entry(11, 3));
    drop(assert_state_survives(
        &who,
        h,
        p,
        &state(hs(2, Some(1), 9), Some(meta(6, 2)), es),
    ));
}

/// A snapshot whose term disagrees with the log's entry at its index discards the whole
/// log (Raft §7), and the log restarts right after the snapshot.
pub fn snapshot_discards_conflicting_log(h: &mut dyn Harness) {
    let who = who(h, "snapshot_discards_conflicting_log");
    let p = h.open();
    append(&who, &*p, entries(1..=10, 1));
    ok(&who, "install", install(&*p, meta(6, 2), b"leader's state"));
    let want = state(hs(0, None, 6), Some(meta(6, 2)), vec![]);
    let p = assert_state_survives(&who, h, p, &want);
    expect_gap(
        &who,
        p.write(&WriteBatch::new().append([entry(11, 2)])),
        7,
        11,
    );
    append(&who, &*p, entries(7..=8, 2));
    let want = state(hs(0, None, 6), Some(meta(6, 2)), entries(7..=8, 2));
    drop(assert_state_survives(&who, h, p, &want));
}

/// A snapshot beyond the end of the log supersedes all of it.
pub fn snapshot_beyond_log_discards_it(h: &mut dyn Harness) {
    let who = who(h, "snapshot_beyond_log_discards_it");
    let p = h.open();
    append(&who, &*p, entries(1..=3, 1));
    ok(&who, "install", install(&*p, meta(20, 4), b"far ahead"));
    let want = state(hs(0, None, 20), Some(meta(20, 4)), vec![]);
    let p = assert_state_survives(&who, h, p, &want);
    expect_gap(
        &who,
        p.write(&WriteBatch::new().append([entry(4, 4)])),
        21,
        4,
    );
    append(&who, &*p, vec![entry(21, 4)]);
    let want = state(hs(0, None, 20), Some(meta(20, 4)), vec![entry(21, 4)]);
    drop(assert_state_survives(&who, h, p, &want));
}

/// A snapshot can be the first thing a store holds (a follower catching up), and with
/// an empty payload.
pub fn snapshot_on_empty_store(h: &mut dyn Harness) {
    let who = who(h, "snapshot_on_empty_store");
    let p = h.open();
    ok(&who, "install", install(&*p, meta(5, 2), b""));
    let want = state(hs(0, None, 5), Some(meta(5, 2)), vec![]);
    let p = assert_state_survives(&who, h, p, &want);
    assert_eq!(
        read_snapshot(&who, &*p),
        Some((meta(5, 2), Vec::new())),
        "{who}: empty payload"
    );
    expect_gap(
        &who,
        p.write(&WriteBatch::new().append([entry(1, 1)])),
        6,
        1,
    );
    append(&who, &*p, vec![entry(6, 2)]);
    let want = state(hs(0, None, 5), Some(meta(5, 2)), vec![entry(6, 2)]);
    drop(assert_state_survives(&who, h, p, &want));
}

/// A snapshot not above the current one is rejected at commit and changes nothing.
pub fn stale_snapshot_is_rejected(h: &mut dyn Harness) {
    let who = who(h, "stale_snapshot_is_rejected");
    let p = h.open();
    append(&who, &*p, entries(1..=8, 1));
    ok(&who, "install", install(&*p, meta(6, 1), b"six"));
    expect_stale(&who, install(&*p, meta(6, 1), b"six again"), 6, 6);
    expect_stale(&who, install(&*p, meta(3, 1), b"three"), 3, 6);
    let want = state(hs(0, None, 6), Some(meta(6, 1)), entries(7..=8, 1));
    let p = assert_state_survives(&who, h, p, &want);
    assert_eq!(
        read_snapshot(&who, &*p),
        Some((meta(6, 1), b"six".to_vec())),
        "{who}: payload"
    );
    // Staleness is judged at commit: a writer begun before a newer commit is stale.
    let mut late = ok(&who, "begin", p.begin_snapshot(meta(7, 1)));
    late.write_all(b"seven").expect("write payload");
    ok(&who, "install 8", install(&*p, meta(8, 1), b"eight"));
    expect_stale(&who, late.commit(), 7, 8);
    let want = state(hs(0, None, 8), Some(meta(8, 1)), vec![]);
    drop(assert_state_survives(&who, h, p, &want));
}

/// The log can be written while a snapshot is being streamed; the commit then keeps the
/// entries written meanwhile.
pub fn log_writes_during_snapshot_write(h: &mut dyn Harness) {
    let who = who(h, "log_writes_during_snapshot_write");
    let p = h.open();
    append(&who, &*p, entries(1..=5, 1));
    let mut w = ok(&who, "begin", p.begin_snapshot(meta(4, 1)));
    w.write_all(b"four, part one; ").expect("write payload");
    append(&who, &*p, entries(6..=7, 1));
    ok(
        &who,
        "hard state",
        p.write(&WriteBatch::new().hard_state(hs(1, Some(2), 5))),
    );
    w.write_all(b"part two").expect("write payload");
    ok(&who, "commit", w.commit());
    let want = state(hs(1, Some(2), 5), Some(meta(4, 1)), entries(5..=7, 1));
    let p = assert_state_survives(&who, h, p, &want);
    assert_eq!(
        read_snapshot(&who, &*p),
        Some((meta(4, 1), b"four, part one; part two".to_vec())),
        "{who}: payload"
    );
}

/// Several snapshots in a row, with restarts and compaction between them: each one is
/// current in turn and the log always continues right after it.
pub fn successive_snapshots_and_restarts(h: &mut dyn Harness) {
    let who = who(h, "successive_snapshots_and_restarts");
    let mut p = h.open();
    let mut model = Model::new();
    for round in 1..=5u64 {
        let start = model.last_index() + 1;
        let b = WriteBatch::new()
            .hard_state(hs(round, Some(1), start))
            .append(entries(start..=start + 9, round));
        assert_eq!(model.write(&b), Outcome::Ok, "{who}: model");
        ok(&who, "write", p.write(&b));
        let m = meta(start + 4, round);
        let payload = format!("snapshot of round {round}").into_bytes();
        assert_eq!(
            model.install_snapshot(m, payload.clone()),
            Outcome::Ok,
            "{who}: model"
        );
        ok(&who, "install", install(&*p, m, &payload));
        if round % 2 == 0 {
            ok(&who, "compact", p.compact(m.index));
        }
        p = assert_state_survives(&format!("{who} round {round}"), h, p, &model.recovered());
        assert_eq!(
            read_snapshot(&who, &*p),
            Some((m, payload)),
            "{who} round {round}: payload"
        );
    }
}

/// `compact` accepts any index up to the snapshot's and never changes what is recovered.
pub fn compact_edges(h: &mut dyn Harness) {
    let who = who(h, "compact_edges");
    let p = h.open();
    ok(&who, "compact(0) without a snapshot", p.compact(0));
    expect_invalid(&who, p.compact(1));
    append(&who, &*p, entries(1..=10, 1));
    expect_invalid(&who, p.compact(5));
    ok(&who, "install", install(&*p, meta(6, 1), b"six"));
    expect_invalid(&who, p.compact(7));
    ok(&who, "compact below", p.compact(3));
    ok(&who, "compact again", p.compact(3));
    ok(&who, "compact through the snapshot", p.compact(6));
    let want = state(hs(0, None, 6), Some(meta(6, 1)), entries(7..=10, 1));
    let p = assert_state_survives(&who, h, p, &want);
    ok(&who, "compact after restart", p.compact(6));
    append(&who, &*p, vec![entry(11, 1)]);
    let mut es = entries(7..=10, 1);
    es.push(entry(11, 1));
    drop(assert_state_survives(
        &who,
        h,
        p,
        &state(hs(0, None, 6), Some(meta(6, 1)), es),
    ));
}

/// `raft_state_size` is the hard state's accounted size plus the accounted sizes of the
/// entries after the snapshot, exactly, through appends, truncations, snapshots and
/// restarts.
pub fn raft_state_size_is_exact(h: &mut dyn Harness) {
    let who = who(h, "raft_state_size_is_exact");
    let p = h.open();
    let size = |es: &[Entry]| {
        HARD_STATE_ACCOUNTED_SIZE + es.iter().map(|e| e.data.len() as u64 + 16).sum::<u64>()
    };
    assert_eq!(
        p.raft_state_size(),
        HARD_STATE_ACCOUNTED_SIZE,
        "{who}: empty"
    );
    ok(
        &who,
        "hard state",
        p.write(&WriteBatch::new().hard_state(hs(1, Some(1), 0))),
    );
    assert_eq!(
        p.raft_state_size(),
        HARD_STATE_ACCOUNTED_SIZE,
        "{who}: hard state only"
    );
    let es: Vec<Entry> = (1..=6)
        .map(|i| Entry {
            index: i,
            term: 1,
            data: vec![7; (i * 10) as usize],
        })
        .collect();
    append(&who, &*p, es.clone());
    assert_eq!(
        p.raft_state_size(),
        HARD_STATE_ACCOUNTED_SIZE + 6 * 16 + 210,
        "{who}: six entries"
    );
    assert_eq!(p.raft_state_size(), size(&es), "{who}: six entries");
    ok(
        &who,
        "truncate",
        p.write(&WriteBatch::new().truncate_from(5)),
    );
    assert_eq!(
        p.raft_state_size(),
        size(&es[..4]),
        "{who}: after truncation"
    );
    append(
        &who,
        &*p,
        vec![Entry {
            index: 5,
            term: 2,
            data: vec![],
        }],
    );
    let mut now = es[..4].to_vec();
    now.push(Entry {
        index: 5,
        term: 2,
        data: vec![],
    });
    assert_eq!(
        p.raft_state_size(),
        size(&now),
        "{who}: after empty-payload entry"
    );
    ok(&who, "install", install(&*p, meta(2, 1), b"two"));
    assert_eq!(
        p.raft_state_size(),
        size(&now[2..]),
        "{who}: after snapshot at 2"
    );
    let p = h.reopen(p);
    assert_eq!(p.raft_state_size(), size(&now[2..]), "{who}: after restart");
    ok(&who, "compact", p.compact(2));
    assert_eq!(p.raft_state_size(), size(&now[2..]), "{who}: after compact");
    ok(
        &who,
        "install conflicting",
        install(&*p, meta(4, 9), b"four"),
    );
    assert_eq!(
        p.raft_state_size(),
        HARD_STATE_ACCOUNTED_SIZE,
        "{who}: after conflicting snapshot"
    );
    let p = h.reopen(p);
    assert_eq!(
        p.raft_state_size(),
        HARD_STATE_ACCOUNTED_SIZE,
        "{who}: after restart"
    );
}

/// `snapshot_size` is 0 without a snapshot and positive with one, also after a restart.
pub fn snapshot_size_before_and_after(h: &mut dyn Harness) {
    let who = who(h, "snapshot_size_before_and_after");
    let p = h.open();
    append(&who, &*p, entries(1..=3, 1));
    assert_eq!(p.snapshot_size(), 0, "{who}: before any snapshot");
    let payload = PayloadGen::to_vec(11, 100_000);
    let info = ok(&who, "install", install(&*p, meta(2, 1), &payload));
    assert_eq!(
        info.uncompressed_bytes, 100_000,
        "{who}: uncompressed_bytes"
    );
    assert!(p.snapshot_size() > 0, "{who}: snapshot_size after commit");
    assert_eq!(
        p.snapshot_size(),
        info.stored_bytes,
        "{who}: snapshot_size vs stored_bytes"
    );
    let stored = info.stored_bytes;
    let p = h.reopen(p);
    assert_eq!(
        p.snapshot_size(),
        stored,
        "{who}: snapshot_size after restart"
    );
    // A dropped writer does not change it.
    let mut w = ok(&who, "begin", p.begin_snapshot(meta(3, 1)));
    w.write_all(&payload).expect("write payload");
    drop(w);
    assert_eq!(
        p.snapshot_size(),
        stored,
        "{who}: snapshot_size after a dropped writer"
    );
}

/// A 64 MiB payload written in small chunks reads back byte for byte, in small chunks,
/// after a restart.
pub fn large_snapshot_streams(h: &mut dyn Harness) {
    let who = who(h, "large_snapshot_streams");
    const SEED: u64 = 0x644d_6942;
    let p = h.open();
    append(&who, &*p, entries(1..=3, 1));
    let mut w = ok(&who, "begin", p.begin_snapshot(meta(2, 1)));
    let mut source = PayloadGen::new(SEED, LARGE_SNAPSHOT_BYTES);
    let mut sizes = SplitMix64(SEED);
    let mut buf = vec![0u8; 8192];
    while source.remaining() > 0 {
        let want = 1 + (sizes.next() % buf.len() as u64) as usize;
        let n = source.read(&mut buf[..want]).expect("generator");
        if let Err(e) = w.write_all(&buf[..n]) {
            panic!("{who}: writing the payload failed: {e}");
        }
    }
    let info = ok(&who, "commit", w.commit());
    assert_eq!(
        info.uncompressed_bytes, LARGE_SNAPSHOT_BYTES,
        "{who}: uncompressed_bytes"
    );
    assert!(p.snapshot_size() > 0, "{who}: snapshot_size");
    let p = h.reopen(p);
    let mut r = ok(&who, "open snapshot", p.open_snapshot())
        .unwrap_or_else(|| panic!("{who}: no snapshot after restart"));
    assert_eq!(r.meta(), meta(2, 1), "{who}: reader meta");
    assert_eq!(r.payload_len(), LARGE_SNAPSHOT_BYTES, "{who}: payload_len");
    if let Err(e) = compare_stream(&mut r, SEED, LARGE_SNAPSHOT_BYTES, 4093) {
        panic!("{who}: payload read back differs: {e}");
    }
    assert_state(
        &who,
        &*p,
        &state(hs(0, None, 2), Some(meta(2, 1)), vec![entry(3, 1)]),
    );
}

/// A reader opened before a newer snapshot is committed still reads the old payload.
pub fn reader_keeps_old_payload_across_commit(h: &mut dyn Harness) {
    let who = who(h, "reader_keeps_old_payload_across_commit");
    let p = h.open();
    append(&who, &*p, entries(1..=9, 1));
    let old = PayloadGen::to_vec(1, 300_000);
    let new = PayloadGen::to_vec(2, 200_000);
    ok(&who, "install old", install(&*p, meta(3, 1), &old));
    let mut r = ok(&who, "open", p.open_snapshot()).unwrap_or_else(|| panic!("{who}: no snapshot"));
    let mut head = vec![0u8; 1000];
    r.read_exact(&mut head).expect("read head");
    ok(&who, "install new", install(&*p, meta(6, 1), &new));
    // And one more, so that a backend keeping two snapshots removes the reader's file.
    ok(&who, "install newest", install(&*p, meta(9, 1), b"nine"));
    let mut rest = Vec::new();
    if let Err(e) = r.read_to_end(&mut rest) {
        panic!("{who}: reading the old payload after newer commits failed: {e}");
    }
    head.extend(rest);
    assert_eq!(r.meta(), meta(3, 1), "{who}: old reader's meta");
    assert!(head == old, "{who}: old reader's payload differs");
    assert_eq!(
        read_snapshot(&who, &*p),
        Some((meta(9, 1), b"nine".to_vec())),
        "{who}: a new reader sees the newest"
    );
}

/// Dropping a snapshot writer without committing leaves the previous snapshot current,
/// also after a restart, and a later snapshot still commits.
pub fn dropped_writer_leaves_old_snapshot(h: &mut dyn Harness) {
    let who = who(h, "dropped_writer_leaves_old_snapshot");
    let p = h.open();
    append(&who, &*p, entries(1..=9, 1));
    let mut w = ok(&who, "begin", p.begin_snapshot(meta(2, 1)));
    w.write_all(b"never committed").expect("write payload");
    drop(w);
    let want = state(HardState::default(), None, entries(1..=9, 1));
    assert_state(&who, &*p, &want);
    assert!(
        ok(&who, "open", p.open_snapshot()).is_none(),
        "{who}: no snapshot"
    );
    ok(&who, "install", install(&*p, meta(4, 1), b"four"));
    let mut w = ok(&who, "begin", p.begin_snapshot(meta(7, 1)));
    w.write_all(&PayloadGen::to_vec(3, 50_000))
        .expect("write payload");
    drop(w);
    let want = state(hs(0, None, 4), Some(meta(4, 1)), entries(5..=9, 1));
    let p = assert_state_survives(&who, h, p, &want);
    assert_eq!(
        read_snapshot(&who, &*p),
        Some((meta(4, 1), b"four".to_vec())),
        "{who}: payload"
    );
    ok(
        &who,
        "install after dropped writer",
        install(&*p, meta(7, 1), b"seven"),
    );
    let want = state(hs(0, None, 7), Some(meta(7, 1)), entries(8..=9, 1));
    let p = assert_state_survives(&who, h, p, &want);
    assert_eq!(
        read_snapshot(&who, &*p),
        Some((meta(7, 1), b"seven".to_vec())),
        "{who}: payload"
    );
}

/// Writers on several threads, each appending at the index it believes is next and
/// retrying on a gap, leave one contiguous log holding every acknowledged entry once.
pub fn concurrent_writes_leave_contiguous_log(h: &mut dyn Harness) {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 40;
    let who = who(h, "concurrent_writes_leave_contiguous_log");
    let p = h.open();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let p = &*p;
            let who = &who;
            s.spawn(move || {
                let mut next = 1;
                for seq in 0..PER_THREAD {
                    loop {
                        let e = Entry {
                            index: next,
                            term: 1,
                            data: format!("{t}:{seq}").into_bytes(),
                        };
                        let b = WriteBatch::new()
                            .hard_state(hs(1, Some(t + 1), 0))
                            .append([e]);
                        match p.write(&b) {
                            Ok(()) => {
                                next += 1;
                                break;
                            }
                            Err(StorageError::LogGap { expected, .. }) => next = expected,
                            Err(e) => panic!("{who}: thread {t} write failed: {e}"),
                        }
                    }
                }
            });
        }
    });
    let check = |who: &str, r: &RecoveredState| {
        let n = THREADS * PER_THREAD;
        assert_eq!(r.entries.len() as u64, n, "{who}: entry count");
        let mut next_seq = vec![0u64; THREADS as usize];
        for (i, e) in r.entries.iter().enumerate() {
            assert_eq!(e.index, i as u64 + 1, "{who}: log not contiguous");
            let text = String::from_utf8(e.data.clone()).expect("utf-8 payload");
            let (t, seq) = text.split_once(':').expect("t:seq");
            let t: usize = t.parse().expect("thread");
            let seq: u64 = seq.parse().expect("seq");
            assert_eq!(
                seq, next_seq[t],
                "{who}: thread {t}'s entries out of order or repeated"
            );
            next_seq[t] += 1;
        }
        assert!(
            matches!(r.hard_state.voted_for, Some(v) if (1..=THREADS).contains(&v)),
            "{who}: hard state {:?}",
            r.hard_state
        );
    };
    let before = recover(&who, &*p);
    check(&who, &before);
    assert_eq!(
        p.raft_state_size(),
        HARD_STATE_ACCOUNTED_SIZE
            + before
                .entries
                .iter()
                .map(Entry::accounted_size)
                .sum::<u64>(),
        "{who}: raft_state_size"
    );
    let p = h.reopen(p);
    let after = recover(&who, &*p);
    assert_eq!(after, before, "{who}: state after restart");
}

/// Calls rejected by validation leave the store writable.
pub fn rejected_calls_do_not_poison(h: &mut dyn Harness) {
    let who = who(h, "rejected_calls_do_not_poison");
    let p = h.open();
    append(&who, &*p, entries(1..=6, 1));
    ok(&who, "install", install(&*p, meta(3, 1), b"three"));
    expect_gap(
        &who,
        p.write(&WriteBatch::new().append([entry(9, 1)])),
        7,
        9,
    );
    expect_invalid(&who, p.write(&WriteBatch::new().truncate_from(2)));
    expect_invalid(&who, p.write(&WriteBatch::new().append([entry(7, 0)])));
    expect_invalid(
        &who,
        p.write(&WriteBatch::new().hard_state(hs(1, Some(0), 0))),
    );
    expect_invalid(&who, p.compact(4));
    expect_stale(&who, install(&*p, meta(2, 1), b"two"), 2, 3);
    ok(
        &who,
        "write after rejections",
        p.write(&WriteBatch::new().append([entry(7, 1)])),
    );
    ok(
        &who,
        "snapshot after rejections",
        install(&*p, meta(5, 1), b"five"),
    );
    let want = state(hs(0, None, 5), Some(meta(5, 1)), entries(6..=7, 1));
    drop(assert_state_survives(&who, h, p, &want));
}
